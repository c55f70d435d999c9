//! The replay key: `dpop:jti:` + base64url(SHA-256(jkt + "." + jti)) (README "Replay service").

use std::fmt;

pub use replay_wire::{KEY_HASH_LEN, KEY_LEN, KEY_PREFIX};

/// A validated replay key, stored inline (no heap allocation).
///
/// Only [`ReplayKey::parse`] makes one, so every value matches
/// `^dpop:jti:[A-Za-z0-9_-]{43}$`. `Debug` never prints the key (keys are not logged).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; KEY_LEN]);

impl ReplayKey {
    /// Parses a key of that shape; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        if !replay_wire::is_key(s) {
            return None;
        }
        Some(Self(s.as_bytes().try_into().ok()?))
    }

    /// The whole key, e.g. for the Redis `SET`.
    pub fn as_str(&self) -> &str {
        // Always ASCII by construction; the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The 43 digest characters after the prefix (what the memory backend stores).
    pub fn digest(&self) -> [u8; KEY_HASH_LEN] {
        let mut out = [0u8; KEY_HASH_LEN];
        let (_, hash) = self.0.split_at(KEY_PREFIX.len());
        out.copy_from_slice(hash);
        out
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplayKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "dpop:jti:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_9";

    #[test]
    fn accepts_spec_shape() {
        assert_eq!(GOOD.len(), KEY_LEN);
        let k = ReplayKey::parse(GOOD).unwrap();
        assert_eq!(k.as_str(), GOOD);
        assert_eq!(&k.digest()[..], &GOOD.as_bytes()[9..]);
        assert_eq!(format!("{k:?}"), "ReplayKey(<redacted>)");
    }

    #[test]
    fn rejects_other_shapes() {
        let long = format!("{GOOD}A");
        let bad = [
            "",
            "dpop:jti:",
            &GOOD[..GOOD.len() - 1],
            long.as_str(),
            "dpop:jtx:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_9",
            "dpop:jti:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_=",
            "dpop:jti:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-+9",
            "dpop:jti:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123- 9",
            "DPOP:JTI:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_9",
        ];
        for b in bad {
            assert!(ReplayKey::parse(b).is_none(), "{b:?}");
        }
        // 52 bytes but multi-byte UTF-8 in the digest part
        let uni = "dpop:jti:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123é9";
        assert_eq!(uni.len(), KEY_LEN);
        assert!(ReplayKey::parse(uni).is_none());
    }
}
