//! Remote signing keys for `keys` mode (README "Tokens: JWKS URI"), pure: the `jwks_uri`
//! settings, reading a fetched JWK Set, and when to fetch. The root context fetches at start
//! and every `jwks_refresh_seconds`; a token with an unknown `kid` triggers at most one extra
//! fetch per [`UNKNOWN_KID_REFRESH_SECONDS`]. The last good set is kept when a fetch fails.

use crate::config::reader::{err, ConfigError, Section};
use crate::jose::PublicJwk;
use crate::json::{parse_object, Json};

/// At most one unknown-`kid` refresh per this many seconds per VM.
pub const UNKNOWN_KID_REFRESH_SECONDS: i64 = 30;
/// While no fetch ever succeeded, retry this often.
pub const RETRY_SECONDS: i64 = 2;
/// A fetch without an answer after this long no longer blocks the next one.
pub const IN_FLIGHT_SECONDS: i64 = 10;
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Keys kept from one document.
pub const MAX_KEYS: usize = 32;

/// Where the keys come from: `access_token.jwks_uri` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    pub uri: String,
    pub cluster: String,
    pub authority: String,
    /// Path and query of `uri`.
    pub path: String,
    pub refresh_seconds: i64,
    pub timeout_ms: u32,
}

impl JwksSource {
    /// Reads `jwks_uri`, `jwks_cluster`, `jwks_authority`, `jwks_refresh_seconds` from the
    /// `access_token` section; `None` without `jwks_uri`.
    pub fn read(s: &Section<'_>) -> Result<Option<JwksSource>, ConfigError> {
        let Some(uri) = s.string("jwks_uri")? else {
            for k in ["jwks_cluster", "jwks_authority", "jwks_refresh_seconds"] {
                if s.has(k) {
                    return err(&s.key(k), "only applies with access_token.jwks_uri");
                }
            }
            return Ok(None);
        };
        let rest = uri
            .strip_prefix("https://")
            .or_else(|| uri.strip_prefix("http://"));
        let Some(rest) = rest.filter(|_| uri.bytes().all(|b| b > 0x20 && b < 0x7f)) else {
            return err(&s.key("jwks_uri"), "must be an absolute http(s) URL");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return err(&s.key("jwks_uri"), "must be an absolute http(s) URL");
        }
        let cluster = match s.string("jwks_cluster")? {
            Some(c) if !c.is_empty() => c,
            _ => {
                return err(
                    &s.key("jwks_cluster"),
                    "is required with jwks_uri: the Envoy cluster that reaches it",
                )
            }
        };
        Ok(Some(JwksSource {
            authority: s
                .string("jwks_authority")?
                .unwrap_or_else(|| authority.to_owned()),
            path: path.split('#').next().unwrap_or(path).to_owned(),
            cluster,
            refresh_seconds: s.int_in("jwks_refresh_seconds", 300, 10, 86_400)?,
            timeout_ms: 2_000,
            uri,
        }))
    }
}

/// Reads a fetched JWK Set: the usable signature keys (`kid` and key), in order; keys we cannot
/// use (encryption keys, other key types, bad members) are skipped. `None` when the document is
/// not a JWK Set at all (then the last good set is kept).
pub fn parse_set(body: &[u8]) -> Option<Vec<(Option<String>, PublicJwk)>> {
    if body.len() > MAX_JWKS_BYTES {
        return None;
    }
    let obj = parse_object(body)?;
    let Some(Json::Array(keys)) = obj.get("keys") else {
        return None;
    };
    let mut out = Vec::new();
    for k in keys {
        let Json::Object(o) = k else { continue };
        if matches!(o.str("use"), Ok(Some(u)) if u != "sig") {
            continue;
        }
        if let Ok(jwk) = PublicJwk::from_object(o) {
            out.push((o.str("kid").ok().flatten().map(str::to_owned), jwk));
        }
        if out.len() >= MAX_KEYS {
            break;
        }
    }
    Some(out)
}

/// The keys fetched so far, per VM, and the fetch schedule.
#[derive(Debug, Default)]
pub struct RemoteJwks {
    pub keys: Vec<(Option<String>, PublicJwk)>,
    /// When the last successful fetch completed (`None`: never: tokens needing a remote key get
    /// `token-check-unavailable`).
    pub fetched_at: Option<i64>,
    /// When the last fetch (of any kind) was started.
    pub last_attempt: Option<i64>,
    /// When the last unknown-`kid` refresh was started.
    pub last_unknown_kid_refresh: Option<i64>,
    pub in_flight: bool,
}

impl RemoteJwks {
    /// Whether the root context should start a fetch now.
    pub fn due(&self, src: &JwksSource, now: i64) -> bool {
        if self.busy(now) {
            return false;
        }
        match (self.fetched_at, self.last_attempt) {
            (_, None) => true,
            (None, Some(t)) => now >= t + RETRY_SECONDS,
            // after a failed refresh, retry on the retry cadence; else on the refresh period
            (Some(f), Some(t)) if t > f => now >= t + RETRY_SECONDS.max(src.refresh_seconds / 10),
            (Some(f), Some(_)) => now >= f + src.refresh_seconds,
        }
    }

    /// Whether a token with an unknown `kid` may trigger a fetch now.
    pub fn may_refresh_for_unknown_kid(&self, now: i64) -> bool {
        !self.busy(now)
            && self
                .last_unknown_kid_refresh
                .is_none_or(|t| now >= t + UNKNOWN_KID_REFRESH_SECONDS)
    }

    /// A fetch is in flight. One whose answer never came (its request went away) stops
    /// counting after [`IN_FLIGHT_SECONDS`].
    fn busy(&self, now: i64) -> bool {
        self.in_flight
            && self
                .last_attempt
                .is_some_and(|t| now < t + IN_FLIGHT_SECONDS)
    }

    pub fn started(&mut self, now: i64, unknown_kid: bool) {
        self.in_flight = true;
        self.last_attempt = Some(now);
        if unknown_kid {
            self.last_unknown_kid_refresh = Some(now);
        }
    }

    /// A fetch ended: with the document's `(status, body)`, or `None` when it failed. Returns
    /// whether the key set was replaced.
    pub fn finished(&mut self, reply: Option<(&[u8], &[u8])>, now: i64) -> bool {
        self.in_flight = false;
        let keys = match reply {
            Some((b"200", body)) => parse_set(body),
            _ => None,
        };
        match keys {
            Some(keys) => {
                self.keys = keys;
                self.fetched_at = Some(now);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn source() -> JwksSource {
        let c = Config::parse(
            br#"{"access_token": {"verify": "keys", "jwks_uri": "https://as.example:8443/jwks?x=1", "jwks_cluster": "as"}}"#,
        )
        .unwrap();
        c.access_token.jwks_uri.unwrap()
    }

    #[test]
    fn source_from_uri() {
        let s = source();
        assert_eq!(s.authority, "as.example:8443");
        assert_eq!(s.path, "/jwks?x=1");
        assert_eq!(s.refresh_seconds, 300);
        for (json, key) in [
            (
                r#"{"verify": "keys", "jwks_uri": "ftp://x/j", "jwks_cluster": "c"}"#,
                "access_token.jwks_uri",
            ),
            (
                r#"{"verify": "keys", "jwks_uri": "https://x/j"}"#,
                "access_token.jwks_cluster",
            ),
            (
                r#"{"verify": "keys", "hs256_secret": "0123456789abcdef0123456789abcdef", "jwks_cluster": "c"}"#,
                "access_token.jwks_cluster",
            ),
            (
                r#"{"verify": "upstream", "jwks_uri": "https://x/j", "jwks_cluster": "c"}"#,
                "access_token.verify",
            ),
        ] {
            let e = Config::parse(format!(r#"{{"access_token": {json}}}"#).as_bytes()).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        }
    }

    #[test]
    fn sets_skip_unusable_keys() {
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","k":"AAAA"}},{}, {{"kty":"RSA","use":"enc","n":"x","e":"AQAB"}}]}}"#,
            EC.replace('{', r#"{"kid":"k1","#)
        );
        let keys = parse_set(doc.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0.as_deref(), Some("k1"));
        assert!(parse_set(b"[]").is_none());
        assert!(parse_set(br#"{"keys":{}}"#).is_none());
    }

    #[test]
    fn schedule_and_last_good_set() {
        let src = source();
        let mut r = RemoteJwks::default();
        assert!(r.due(&src, 0));
        r.started(0, false);
        assert!(!r.due(&src, 9), "one fetch at a time");
        assert!(
            r.due(&src, 10),
            "a fetch that never answered stops blocking"
        );
        assert!(!r.finished(Some((b"503", b"")), 1));
        assert!(!r.due(&src, 1) && r.due(&src, 2), "no keys yet: retry soon");
        r.started(2, false);
        let doc = format!(r#"{{"keys":[{EC}]}}"#);
        assert!(r.finished(Some((b"200", doc.as_bytes())), 2));
        assert_eq!((r.keys.len(), r.fetched_at), (1, Some(2)));
        assert!(!r.due(&src, 301) && r.due(&src, 302));
        r.started(302, false);
        assert!(!r.finished(None, 303));
        assert_eq!(r.keys.len(), 1, "the last good set is kept");
        assert!(!r.due(&src, 320) && r.due(&src, 332));
        assert!(r.may_refresh_for_unknown_kid(400));
        r.started(400, true);
        r.finished(None, 400);
        assert!(!r.may_refresh_for_unknown_kid(429) && r.may_refresh_for_unknown_kid(430));
    }
}
