//! The client side of DPoP (RFC 9449), written once for the `dpop` CLI, `dpop-bench`, the
//! emulator tier and the Rust tests: keys ([`SigningKey`]), JWS signing, proofs
//! ([`ProofSigner`], [`ProofClaims`]) and the `ath` hash of an access token.
//!
//! It does not depend on the filter: JWK members and thumbprints are computed here, so a test
//! that signs with this crate and verifies with `dpop-guard` checks one implementation against
//! another.

mod key;
mod proof;

pub use key::{Alg, KeyKind, SigningKey};
pub use proof::{ath, compact_jws, dpop_header, ProofClaims, ProofSigner};

use base64::Engine as _;
use rand_core::RngCore as _;

/// What went wrong, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

/// base64url without padding (RFC 7515 §2).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_rng() -> rand_core::OsRng {
    rand_core::OsRng
}

/// `n` bytes from the OS's randomness.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, ClientError> {
    let mut buf = vec![0u8; n];
    random_rng()
        .try_fill_bytes(&mut buf)
        .map_err(|e| ClientError(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

/// A fresh `jti`: 16 random bytes, base64url (RFC 9449 §4.2 asks for enough entropy that
/// collisions are negligible).
pub fn random_jti() -> Result<String, ClientError> {
    Ok(b64(&random_bytes(16)?))
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> Result<i64, ClientError> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ClientError("system clock is before 1970".into()))?;
    i64::try_from(d.as_secs()).map_err(|_| ClientError("system clock out of range".into()))
}
