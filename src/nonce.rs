//! Stateless server nonces (RFC 9449 §8–9, SPEC §6): HMAC of the current time window. The
//! current and the previous window are accepted, so a nonce lives 1–2 rotation periods.

use crate::b64;
use crate::config::NonceConfig;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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

/// Whether a proof's `nonce` is one we issued in this or the previous window.
pub fn is_valid(cfg: &NonceConfig, nonce: &str, now: i64) -> bool {
    let w = window(cfg, now);
    !nonce.is_empty() && (nonce == nonce_for(cfg, w) || nonce == nonce_for(cfg, w - 1))
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
