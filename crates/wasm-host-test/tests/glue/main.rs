//! The glue test tier: the BUILT dpop_guard.wasm (`make wasm`) under the proxy-wasm emulator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod batching;
mod common;
mod differential;
mod fault_scenarios;
mod faults;
mod handoff;
mod host_crypto;
mod introspection;
mod jwks;
mod malformed;
mod many_apis;
mod non_utf8;
mod replay;
mod smoke;
mod stream;
