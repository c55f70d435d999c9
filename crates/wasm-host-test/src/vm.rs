//! Loading the module, the VM lifecycle in Envoy's order, and one HTTP request at a time.
//!
//! This file only declares the parts and re-exports their public items:
//! - `wasm`: [`Wasm`], loading and linking the module;
//! - `trap`: [`Trap`] and [`StartError`], how calls into the guest fail;
//! - `lifecycle`: [`Vm`], instantiation, root contexts and every call into the guest;
//! - `request`: [`Request`], [`Outcome`], [`Exchange`] and the methods that drive a stream;
//! - `grpc`: the service side of the guest's gRPC streams ([`Vm::grpc_receive`],
//!   [`Vm::grpc_close`]).

mod grpc;
mod lifecycle;
mod request;
mod trap;
mod wasm;

pub use lifecycle::{Vm, DEFAULT_FUEL_PER_CALL};
pub use request::{Exchange, Outcome, Request};
pub use trap::{StartError, Trap};
pub use wasm::{Wasm, WASM_ENV};
