//! Stateless server nonces (RFC 9449 §8–9, README "Nonces"): an HMAC over a time window and,
//! with `scope: key` (the default), the proof key's thumbprint — a nonce one client obtained is
//! useless to another. Nonces of the previous, current and next window are accepted; a
//! successful response hands out the next one before the client's runs out (proactive
//! rotation), so a well-behaved client never sees `use_dpop_nonce` after its first request.
//!
//! Format: base64url of 18 bytes — the window's low byte, then 17 bytes of the tag. The byte
//! says which of the three accepted windows the nonce claims, so a check costs one HMAC per
//! configured secret, not three.

use crate::b64;
use crate::config::reader::{err, ConfigError, Section};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whose nonce it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceScope {
    /// Bound to the proof key's thumbprint.
    Key,
    /// One nonce per window for every client (the only kind before `scope` existed).
    Global,
}

/// The `nonce` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceConfig {
    /// The first signs; all verify (rotate a secret without a flood of `use_dpop_nonce`).
    pub secrets: Vec<Vec<u8>>,
    pub rotation_seconds: i64,
    pub scope: NonceScope,
    /// Hand out the next window's nonce when the current window ends within this many seconds.
    pub refresh_seconds: i64,
    /// Nonces on every route unless a rule says `nonce: false`; when false, only on rules that
    /// say `nonce: true`.
    pub enabled: bool,
}

impl NonceConfig {
    /// The section's keys (README configuration table, `nonce.*`).
    pub const KEYS: &'static [&'static str] = &[
        "secret",
        "secrets",
        "rotation_seconds",
        "scope",
        "refresh_seconds",
        "enabled",
    ];

    pub fn read(s: &Section<'_>) -> Result<NonceConfig, ConfigError> {
        s.only(Self::KEYS)?;
        let secrets = match (s.string("secret")?, s.strings("secrets")?) {
            (Some(_), Some(_)) => {
                return err(&s.key("secrets"), "give either secret or secrets, not both")
            }
            (Some(one), None) => {
                if one.len() < 16 {
                    return err(&s.key("secret"), "must be at least 16 characters");
                }
                vec![one]
            }
            (None, Some(list)) => {
                if list.is_empty() || list.len() > 8 {
                    return err(&s.key("secrets"), "must list 1 to 8 secrets");
                }
                if let Some(i) = list.iter().position(|x| x.len() < 16) {
                    return err(
                        &format!("{}[{i}]", s.key("secrets")),
                        "must be at least 16 characters",
                    );
                }
                list
            }
            (None, None) => return err(&s.key("secret"), "is required (or secrets)"),
        };
        let rotation_seconds = s.int_in("rotation_seconds", 300, 10, 86_400)?;
        Ok(NonceConfig {
            secrets: secrets.into_iter().map(String::into_bytes).collect(),
            rotation_seconds,
            scope: s
                .choice(
                    "scope",
                    &[("key", NonceScope::Key), ("global", NonceScope::Global)],
                )?
                .unwrap_or(NonceScope::Key),
            refresh_seconds: s.int_in(
                "refresh_seconds",
                30.min(rotation_seconds),
                0,
                rotation_seconds,
            )?,
            enabled: s.bool("enabled")?.unwrap_or(true),
        })
    }
}

const TAG_BYTES: usize = 17;

fn window(cfg: &NonceConfig, now: i64) -> i64 {
    now.div_euclid(cfg.rotation_seconds)
}

fn tag(cfg: &NonceConfig, secret: &[u8], window: i64, jkt: &str) -> [u8; TAG_BYTES] {
    let mut out = [0u8; TAG_BYTES];
    // new_from_slice cannot fail for HMAC (any key length); the zero tag is then never issued
    // by `issue` either, so nothing matches it in practice.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return out;
    };
    match cfg.scope {
        NonceScope::Key => {
            mac.update(b"dpop-guard nonce v2 key ");
            mac.update(&window.to_be_bytes());
            mac.update(jkt.as_bytes());
        }
        NonceScope::Global => {
            mac.update(b"dpop-guard nonce v2 global ");
            mac.update(&window.to_be_bytes());
        }
    }
    let full = mac.finalize().into_bytes();
    for (o, b) in out.iter_mut().zip(full.iter()) {
        *o = *b;
    }
    out
}

fn nonce_for(cfg: &NonceConfig, window: i64, jkt: &str) -> String {
    let secret = cfg.secrets.first().map_or(&[][..], Vec::as_slice);
    let mut bytes = [0u8; 1 + TAG_BYTES];
    bytes[0] = window as u8;
    for (o, b) in bytes.iter_mut().skip(1).zip(tag(cfg, secret, window, jkt)) {
        *o = b;
    }
    b64::encode(&bytes)
}

/// The window whose nonce to hand out now: the current one, or the next when the current ends
/// within `refresh_seconds`.
fn target_window(cfg: &NonceConfig, now: i64) -> i64 {
    let w = window(cfg, now);
    let ends_in = (w + 1) * cfg.rotation_seconds - now;
    if ends_in <= cfg.refresh_seconds {
        w + 1
    } else {
        w
    }
}

/// The nonce for a `use_dpop_nonce` reply to a proof signed by `jkt` (RFC 7638 thumbprint).
pub fn issue(cfg: &NonceConfig, jkt: &str, now: i64) -> String {
    nonce_for(cfg, target_window(cfg, now), jkt)
}

/// A proof's nonce, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonceCheck {
    /// Not one we issued for this key in the previous, current or next window.
    Invalid,
    /// Accepted; `refresh` is the nonce a successful response should hand out (`DPoP-Nonce`),
    /// when the client's is about to run out or was signed with a retired secret.
    Valid { refresh: Option<String> },
}

/// Checks `nonce` from a proof signed by `jkt`. The tag is compared in constant time: a nonce
/// is a MAC, and a comparison that stops at the first differing byte would let a client find a
/// valid one byte by byte.
pub fn check(cfg: &NonceConfig, nonce: &str, jkt: &str, now: i64) -> NonceCheck {
    let Some(bytes) = b64::decode(nonce).filter(|b| b.len() == 1 + TAG_BYTES) else {
        return NonceCheck::Invalid;
    };
    let (Some(&low), Some(claimed)) = (bytes.first(), bytes.get(1..)) else {
        return NonceCheck::Invalid;
    };
    let w = window(cfg, now);
    let Some(nw) = [w - 1, w, w + 1].into_iter().find(|x| *x as u8 == low) else {
        return NonceCheck::Invalid;
    };
    let mut signed_by = None;
    for (i, secret) in cfg.secrets.iter().enumerate() {
        if constant_time_eq(claimed, &tag(cfg, secret, nw, jkt)) {
            signed_by = Some(i);
            break;
        }
    }
    let Some(secret_index) = signed_by else {
        return NonceCheck::Invalid;
    };
    let target = target_window(cfg, now);
    let refresh = (nw < target || secret_index != 0).then(|| nonce_for(cfg, target, jkt));
    NonceCheck::Valid { refresh }
}

/// Equal length and content, without an early exit on content (the length is public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scope: NonceScope) -> NonceConfig {
        NonceConfig {
            secrets: vec![b"0123456789abcdef".to_vec()],
            rotation_seconds: 300,
            scope,
            refresh_seconds: 30,
            enabled: true,
        }
    }

    const T: i64 = 1_000_200; // the start of window 3334

    #[test]
    fn windows_previous_current_next() {
        let c = cfg(NonceScope::Key);
        let n = issue(&c, "k1", T);
        assert_eq!(check(&c, &n, "k1", T), NonceCheck::Valid { refresh: None });
        // next window: still valid, and the response hands out that window's nonce
        let later = T + 300;
        match check(&c, &n, "k1", later) {
            NonceCheck::Valid { refresh: Some(r) } => {
                assert_eq!(r, issue(&c, "k1", later));
                assert_ne!(r, n);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(check(&c, &n, "k1", T + 600), NonceCheck::Invalid);
        // a nonce for the next window is accepted now
        let early = issue(&c, "k1", T + 300);
        assert!(matches!(
            check(&c, &early, "k1", T),
            NonceCheck::Valid { .. }
        ));
        assert_eq!(check(&c, "", "k1", T), NonceCheck::Invalid);
        assert_eq!(check(&c, "stale", "k1", T), NonceCheck::Invalid);
    }

    #[test]
    fn key_scope_binds_the_nonce_to_the_thumbprint() {
        let c = cfg(NonceScope::Key);
        let n = issue(&c, "k1", T);
        assert_eq!(check(&c, &n, "k2", T), NonceCheck::Invalid);
        let g = cfg(NonceScope::Global);
        let n = issue(&g, "k1", T);
        assert!(matches!(check(&g, &n, "k2", T), NonceCheck::Valid { .. }));
        // the two scopes never accept each other's nonces
        assert_eq!(check(&c, &n, "k1", T), NonceCheck::Invalid);
    }

    #[test]
    fn proactive_rotation_near_the_end_of_a_window() {
        let c = cfg(NonceScope::Key);
        let start = (T / 300) * 300;
        let n = issue(&c, "k", start + 10);
        assert_eq!(
            check(&c, &n, "k", start + 269),
            NonceCheck::Valid { refresh: None }
        );
        // 30 s before the window ends: the next window's nonce goes out, once
        let NonceCheck::Valid {
            refresh: Some(next),
        } = check(&c, &n, "k", start + 270)
        else {
            panic!("no refresh");
        };
        assert_eq!(issue(&c, "k", start + 270), next);
        assert_eq!(
            check(&c, &next, "k", start + 280),
            NonceCheck::Valid { refresh: None }
        );
        assert_eq!(
            check(&c, &next, "k", start + 310),
            NonceCheck::Valid { refresh: None }
        );
        // a client that always uses the latest nonce it saw is never refused
        let mut current = issue(&c, "k", start);
        for t in (start..start + 3000).step_by(7) {
            match check(&c, &current, "k", t) {
                NonceCheck::Valid { refresh } => current = refresh.unwrap_or(current),
                NonceCheck::Invalid => panic!("refused at {t}"),
            }
        }
    }

    #[test]
    fn secret_rotation_old_secret_verifies_and_is_replaced() {
        let old = cfg(NonceScope::Key);
        let n = issue(&old, "k", T);
        let mut rotated = old.clone();
        rotated.secrets.insert(0, b"fedcba9876543210".to_vec());
        let NonceCheck::Valid { refresh: Some(r) } = check(&rotated, &n, "k", T) else {
            panic!("old secret not accepted with a refresh");
        };
        assert_eq!(
            check(&rotated, &r, "k", T),
            NonceCheck::Valid { refresh: None }
        );
        let mut other = old.clone();
        other.secrets = vec![b"fedcba9876543210".to_vec()];
        assert_eq!(check(&other, &n, "k", T), NonceCheck::Invalid);
    }
}
