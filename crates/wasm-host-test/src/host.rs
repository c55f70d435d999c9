//! The host side of the proxy-wasm ABI 0.2.1 (and the WASI calls a Rust module makes), with
//! Envoy's semantics (proxy-wasm-cpp-host `exports.cc` + Envoy's `Context`) where they matter:
//! `copyToPointerSize` (an empty value is pointer 0, size 0), lower-cased header names on
//! lookup/add/replace/remove, the first value for `get_header_map_value`, replace = remove all +
//! add, shared-data CAS ignored for a missing key, counter ids 4, 8, 12, …
//!
//! Everything the guest does is recorded in [`HostState`]; every call can be made to fail with a
//! chosen status ([`Fault`]).
//!
//! This file only declares the parts and re-exports their public items:
//! - `state`: [`HostState`] and the per-stream [`Stream`];
//! - `fault`: fault injection ([`Fault`]);
//! - `imports`: the import table, the dispatcher every import goes through, [`CallRecord`];
//! - `memory`: guest memory access and argument decoding shared by the calls;
//! - one file per group of ABI calls: `general` (logging, clock, contexts; foreign functions
//!   in `foreign`: Envoy's `verify_signature`, [`VerifySignature`]), `properties`,
//!   `buffers`, `headers` (header maps), `stream` (stream control, local replies), `callouts`
//!   (HTTP and gRPC calls; gRPC streams in `grpc`: [`GrpcStream`]), `shared` (shared data and
//!   queues), `metrics`, `wasi`.

mod buffers;
mod callouts;
mod fault;
mod foreign;
mod general;
mod grpc;
mod headers;
mod imports;
mod memory;
mod metrics;
mod properties;
mod shared;
mod state;
mod stream;
mod wasi;

pub use callouts::{CalloutResponse, HttpCall};
pub use fault::Fault;
pub use foreign::{VerifySignature, VERIFY_SIGNATURE};
pub use general::LogEntry;
pub use grpc::{GrpcStream, GrpcStreamState};
pub use headers::{HeaderMap, HeaderOp};
pub use imports::CallRecord;
pub(crate) use imports::{dispatch, import_spec, ImportSpec};
pub use metrics::Metric;
pub use properties::property_path;
pub use state::{HostState, Stream};
pub use stream::LocalResponse;
pub use wasi::HostAbort;
