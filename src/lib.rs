//! dpop-guard: RFC 9449 DPoP enforcement for Envoy and Istio, as a proxy-wasm filter.
//!
//! Everything outside `host` is plain Rust with no proxy-wasm dependency, tested natively;
//! time always comes in as an argument.

pub mod authn;
pub mod b64;
pub mod config;
pub mod headers;
pub mod htu;
pub mod introspection;
pub mod jose;
pub mod json;
pub mod jwks;
pub mod metadata;
pub mod nonce;
pub mod origin;
pub mod outcome;
pub mod problem;
pub mod proof;
pub mod reason;
pub mod replay;
pub mod routes;
pub mod stage;
pub mod token;
pub mod upstream;

#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod host;

pub use proof::{verify_proof, ProofPolicy, RequestFacts, VerifiedProof};
pub use reason::{DenyReason, Problem};
