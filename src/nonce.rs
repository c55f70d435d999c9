//! Stateless server nonces (RFC 9449 §8–9): HMAC of the current time window. The
//! current and the previous window are accepted, so a nonce lives 1–2 rotation periods.

use crate::b64;
use crate::config::reader::{err, ConfigError, Section};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `nonce` section: present means server nonces are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceConfig {
    pub secret: Vec<u8>,
    pub rotation_seconds: i64,
}

impl NonceConfig {
    /// The section's keys (README configuration table, `nonce.*`).
    pub const KEYS: &'static [&'static str] = &["secret", "rotation_seconds"];

    pub fn read(s: &Section<'_>) -> Result<NonceConfig, ConfigError> {
        s.only(Self::KEYS)?;
        let secret = s.required_string("secret")?;
        if secret.len() < 16 {
            return err(&s.key("secret"), "must be at least 16 characters");
        }
        Ok(NonceConfig {
            secret: secret.into_bytes(),
            rotation_seconds: s.int_in("rotation_seconds", 300, 10, 86_400)?,
        })
    }
}

fn window(cfg: &NonceConfig, now: i64) -> i64 {
    now.div_euclid(cfg.rotation_seconds)
}

fn nonce_for(cfg: &NonceConfig, window: i64) -> String {
    // new_from_slice cannot fail for HMAC (any key length); fall back to an impossible nonce.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&cfg.secret) else {
        return String::new();
    };
    mac.update(b"dpop-guard nonce v1 ");
    mac.update(&window.to_be_bytes());
    let tag = mac.finalize().into_bytes();
    b64::encode(tag.get(..18).unwrap_or_default())
}

/// The nonce to hand out now (`DPoP-Nonce` header).
pub fn current(cfg: &NonceConfig, now: i64) -> String {
    nonce_for(cfg, window(cfg, now))
}

/// Whether a proof's `nonce` is one we issued in this or the previous window. Compared in
/// constant time: a nonce is a MAC, and a comparison that stops at the first differing byte
/// would let a client find a valid one byte by byte.
pub fn is_valid(cfg: &NonceConfig, nonce: &str, now: i64) -> bool {
    let w = window(cfg, now);
    let current = constant_time_eq(nonce.as_bytes(), nonce_for(cfg, w).as_bytes());
    let previous = constant_time_eq(nonce.as_bytes(), nonce_for(cfg, w - 1).as_bytes());
    !nonce.is_empty() && (current | previous)
}

/// Equal length and content, without an early exit on content (the length is public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let cfg = NonceConfig {
            secret: b"0123456789abcdef".to_vec(),
            rotation_seconds: 300,
        };
        let n = current(&cfg, 1_000_000);
        assert!(is_valid(&cfg, &n, 1_000_000));
        assert!(is_valid(&cfg, &n, 1_000_000 + 300));
        assert!(!is_valid(&cfg, &n, 1_000_000 + 600));
        assert!(!is_valid(&cfg, "", 1_000_000));
        let other = NonceConfig {
            secret: b"fedcba9876543210".to_vec(),
            rotation_seconds: 300,
        };
        assert!(!is_valid(&other, &n, 1_000_000));
    }
}
