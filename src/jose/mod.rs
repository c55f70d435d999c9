//! A small, closed JOSE layer: compact JWS, public JWKs, the algorithms we verify.
pub mod alg;
pub mod ed25519_fast;
pub mod jwk;
pub mod jws;
pub mod p256_fast;
pub mod rsa_fast;

pub use alg::{Alg, AlgSet};
pub use jwk::{JwkError, PublicJwk};
pub use jws::{CompactJws, JwsError};
