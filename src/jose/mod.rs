//! A small, closed JOSE layer: compact JWS, public JWKs, the algorithms we verify. The
//! signature arithmetic is `jose_verify`'s (crates/jose-verify: our variable-time verifiers).
pub mod alg;
pub mod host_crypto;
pub mod jwk;
pub mod jws;

pub use alg::{Alg, AlgSet};
pub use jwk::{JwkError, PublicJwk};
pub use jws::{CompactJws, JwsError};

/// Builds the verifiers' per-VM tables now (the Ed25519 base-point table: ≈ 480 KiB, a few
/// ms), so that the first request does not pay for it. Call from `on_configure`.
pub fn warm_up() {
    jose_verify::ed25519::warm_up();
}
