//! A small proxy-wasm host (ABI 0.2.1, Envoy semantics) on the `wasmi` interpreter, to run the
//! BUILT `dpop_guard.wasm` natively: the glue between the host and the pure core is exercised
//! with any bytes the host could hand over, any status a host call could return, and the
//! guest's action compared with `dpop_guard::authn::decide_headers` on the same facts.
//!
//! ```no_run
//! use proxy_wasm_emu::{Request, Vm, Wasm};
//! let wasm = Wasm::load_default().unwrap();
//! let mut vm = Vm::start(&wasm, br#"{"required": true}"#).unwrap();
//! let ex = vm.run(&Request::new(&[(":method", "GET"), (":path", "/x")])).unwrap();
//! assert_eq!(ex.local_reply().unwrap().status, 401);
//! ```

pub mod abi;
pub mod dpop;
pub mod host;
pub mod vm;

pub use abi::{serialize_pairs, status, Pairs};
pub use host::{
    CallRecord, Fault, GrpcStream, GrpcStreamState, HeaderOp, HostState, HttpCall, LocalResponse,
    VerifySignature,
};
pub use vm::{Exchange, Outcome, Request, StartError, Trap, Vm, Wasm, WASM_ENV};
