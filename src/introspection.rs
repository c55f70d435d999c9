//! RFC 7662 token introspection (README "Tokens", `access_token.verify = "introspection"`),
//! pure: the callout's request, the reading of its reply, and the per-VM cache of answers keyed
//! by SHA-256 of the token. The glue dispatches the callout and pauses the request, exactly like
//! the remote replay check.

use crate::config::reader::{err, ConfigError, Section};
use crate::json::{parse_object, Json};
use crate::replay::OnError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};

/// How the filter authenticates to the introspection endpoint (RFC 7662 §2.1, RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// The `access_token.introspection` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionConfig {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub auth: ClientAuth,
    pub timeout_ms: u32,
    /// Longest an active answer is reused (also bounded by the token's `exp`).
    pub cache_seconds: i64,
    /// How long an inactive answer is reused.
    pub negative_cache_seconds: i64,
    pub on_error: OnError,
    /// Answers kept per VM.
    pub cache_entries: usize,
}

impl IntrospectionConfig {
    /// The section's keys (README configuration table, `access_token.introspection.*`).
    pub const KEYS: &'static [&'static str] = &[
        "cluster",
        "authority",
        "path",
        "client_id",
        "client_secret",
        "auth",
        "timeout_ms",
        "cache_seconds",
        "negative_cache_seconds",
        "on_error",
        "cache_entries",
    ];

    pub fn read(s: &Section<'_>) -> Result<IntrospectionConfig, ConfigError> {
        s.only(Self::KEYS)?;
        let cluster = match s.string("cluster")? {
            Some(c) if !c.is_empty() => c,
            _ => {
                return err(
                    &s.key("cluster"),
                    "is required: the Envoy cluster of the authorization server",
                )
            }
        };
        let path = s
            .string("path")?
            .unwrap_or_else(|| "/introspect".to_owned());
        if !path.starts_with('/') || path.bytes().any(|b| b <= 0x20 || b >= 0x7f) {
            return err(&s.key("path"), "must be a path starting with '/'");
        }
        let client_id = s.string("client_id")?;
        let client_secret = s.string("client_secret")?;
        if client_id.is_some() != client_secret.is_some() {
            return err(
                &s.key("client_secret"),
                "client_id and client_secret go together",
            );
        }
        Ok(IntrospectionConfig {
            authority: s.string("authority")?.unwrap_or_else(|| cluster.clone()),
            cluster,
            path,
            client_id,
            client_secret,
            auth: s
                .choice(
                    "auth",
                    &[("basic", ClientAuth::Basic), ("post", ClientAuth::Post)],
                )?
                .unwrap_or(ClientAuth::Basic),
            timeout_ms: s.uint_in("timeout_ms", 200, 1, 60_000)? as u32,
            cache_seconds: s.int_in("cache_seconds", 300, 0, 86_400)?,
            negative_cache_seconds: s.int_in("negative_cache_seconds", 10, 0, 3_600)?,
            on_error: s
                .choice(
                    "on_error",
                    &[("deny", OnError::Deny), ("allow", OnError::Allow)],
                )?
                .unwrap_or(OnError::Deny),
            cache_entries: s.uint_in("cache_entries", 10_000, 0, 1_000_000)? as usize,
        })
    }
}

/// `application/x-www-form-urlencoded` value encoding: everything but unreserved is escaped.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The callout: extra headers (besides `:method`, `:path`, `:authority`) and the form body.
pub fn request(cfg: &IntrospectionConfig, token: &str) -> (Vec<(&'static str, String)>, String) {
    let mut body = format!("token={}&token_type_hint=access_token", form_encode(token));
    let mut headers = vec![(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    if let (Some(id), Some(secret)) = (&cfg.client_id, &cfg.client_secret) {
        match cfg.auth {
            ClientAuth::Basic => {
                let pair = format!("{}:{}", form_encode(id), form_encode(secret));
                headers.push(("authorization", format!("Basic {}", STANDARD.encode(pair))));
            }
            ClientAuth::Post => body.push_str(&format!(
                "&client_id={}&client_secret={}",
                form_encode(id),
                form_encode(secret)
            )),
        }
    }
    headers.push(("content-length", body.len().to_string()));
    headers.push(("accept", "application/json".to_owned()));
    (headers, body)
}

/// Largest introspection reply we read.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What the authorization server said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Active; `jkt` is `cnf.jkt` (RFC 9449 §6.2), `exp` its expiry if given.
    Active {
        jkt: Option<String>,
        exp: Option<i64>,
    },
    /// Not active, expired, or a reply we cannot read as RFC 7662: `token-invalid`.
    Inactive,
    /// No usable answer (unreachable, timeout, non-200): `on_error` decides. Never cached.
    Unavailable,
}

/// Reads an introspection reply (`status` = `:status`, `None` when there was no response).
/// `token_type` is not trusted for binding: only `cnf.jkt` binds. A 400 is the server refusing
/// this token (oidc-provider answers `unsupported_token_type` for JWTs): inactive, never
/// `on_error` — with `on_error: allow` that would let any token through unbound. Other statuses
/// (401/403: our client credentials, 5xx, the proxy's 503/504) are no answer.
pub fn parse_reply(status: Option<&[u8]>, body: &[u8], now: i64) -> Answer {
    match status {
        Some(b"200") => {}
        Some(b"400") => return Answer::Inactive,
        _ => return Answer::Unavailable,
    }
    if body.len() > MAX_REPLY_BYTES {
        return Answer::Inactive;
    }
    let Some(obj) = parse_object(body) else {
        return Answer::Inactive;
    };
    if !matches!(obj.get("active"), Some(Json::Bool(true))) {
        return Answer::Inactive;
    }
    let exp = match obj.numeric_date("exp") {
        Ok(e) => e,
        Err(_) => return Answer::Inactive,
    };
    if exp.is_some_and(|e| e <= now) {
        return Answer::Inactive;
    }
    let jkt = match obj.get("cnf") {
        None => None,
        Some(Json::Object(cnf)) => match cnf.str("jkt") {
            Ok(j) => j.map(str::to_owned),
            Err(_) => return Answer::Inactive,
        },
        Some(_) => return Answer::Inactive,
    };
    Answer::Active { jkt, exp }
}

/// SHA-256 of a token: the cache key (the token itself is never stored).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Active { jkt: Option<String> },
    Inactive,
}

/// Per-VM cache of introspection answers, bounded (FIFO eviction), entries with an expiry.
#[derive(Debug, Default)]
pub struct TokenCache {
    map: BTreeMap<[u8; 32], (Cached, i64)>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            ..TokenCache::default()
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The answer for a token hash, if still fresh at `now`.
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<&Cached> {
        match self.map.get(hash) {
            Some((c, expires)) if now < *expires => Some(c),
            _ => None,
        }
    }

    /// Stores an answer: active ones for min(`cache_seconds`, `exp` − now), inactive ones for
    /// `negative_cache_seconds`; `Unavailable` never.
    pub fn insert(&mut self, cfg: &IntrospectionConfig, hash: [u8; 32], answer: &Answer, now: i64) {
        let (cached, lifetime) = match answer {
            Answer::Active { jkt, exp } => (
                Cached::Active { jkt: jkt.clone() },
                exp.map_or(cfg.cache_seconds, |e| cfg.cache_seconds.min(e - now)),
            ),
            Answer::Inactive => (Cached::Inactive, cfg.negative_cache_seconds),
            Answer::Unavailable => return,
        };
        if lifetime <= 0 || self.capacity == 0 {
            return;
        }
        if let Some(entry) = self.map.get_mut(&hash) {
            *entry = (cached, now.saturating_add(lifetime));
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(hash);
        self.map
            .insert(hash, (cached, now.saturating_add(lifetime)));
    }
}

/// What the decision knows about the request's token in introspection mode.
#[derive(Debug, Clone, Copy)]
pub struct IntrospectionView<'a> {
    pub cache: &'a TokenCache,
    /// The answer of the callout just made for this request (its token hash and answer).
    pub fresh: Option<(&'a [u8; 32], &'a Answer)>,
}

/// The token's status for the decision: `None` means "ask the authorization server".
pub fn lookup(view: &IntrospectionView<'_>, token: &str, now: i64) -> Option<Answer> {
    lookup_digest(view, &token_hash(token), now)
}

/// [`lookup`] by the token's digest ([`token_hash`]) already computed.
pub fn lookup_digest(view: &IntrospectionView<'_>, hash: &[u8; 32], now: i64) -> Option<Answer> {
    if let Some((h, a)) = view.fresh {
        if h == hash {
            return Some(a.clone());
        }
    }
    view.cache.get(hash, now).map(|c| match c {
        Cached::Active { jkt } => Answer::Active {
            jkt: jkt.clone(),
            exp: None,
        },
        Cached::Inactive => Answer::Inactive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg(extra: &str) -> IntrospectionConfig {
        let c = Config::parse(
            format!(r#"{{"access_token": {{"verify": "introspection", "introspection": {{"cluster": "as"{extra}}}}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        c.access_token.introspection.unwrap()
    }

    #[test]
    fn request_basic_and_post() {
        let c = cfg(r#", "client_id": "rs 1", "client_secret": "s:é""#);
        let (h, body) = request(&c, "a+b/c=");
        assert_eq!(body, "token=a%2Bb%2Fc%3D&token_type_hint=access_token");
        let auth = &h.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            &format!("Basic {}", STANDARD.encode("rs%201:s%3A%C3%A9"))
        );
        let c = cfg(r#", "client_id": "rs", "client_secret": "sec", "auth": "post""#);
        let (h, body) = request(&c, "t");
        assert!(h.iter().all(|(k, _)| *k != "authorization"));
        assert_eq!(
            body,
            "token=t&token_type_hint=access_token&client_id=rs&client_secret=sec"
        );
        assert_eq!(c.authority, "as");
        assert_eq!(c.path, "/introspect");
    }

    #[test]
    fn replies() {
        let ok = Some(&b"200"[..]);
        assert_eq!(
            parse_reply(
                ok,
                br#"{"active":true,"cnf":{"jkt":"abc"},"exp":2000,"token_type":"Bearer"}"#,
                1000
            ),
            Answer::Active {
                jkt: Some("abc".into()),
                exp: Some(2000)
            }
        );
        assert_eq!(
            parse_reply(ok, br#"{"active":true}"#, 1000),
            Answer::Active {
                jkt: None,
                exp: None
            }
        );
        // token_type says DPoP but there is no cnf: not bound
        assert_eq!(
            parse_reply(ok, br#"{"active":true,"token_type":"DPoP"}"#, 1000),
            Answer::Active {
                jkt: None,
                exp: None
            }
        );
        for body in [
            &br#"{"active":false}"#[..],
            br#"{"active":"true"}"#,
            br#"{"active":true,"exp":1000}"#,
            br#"{"active":true,"exp":"soon"}"#,
            br#"{"active":true,"cnf":"x"}"#,
            br#"{"active":true,"cnf":{"jkt":5}}"#,
            br#"{"active":true,"active":true}"#,
            b"not json",
        ] {
            assert_eq!(
                parse_reply(ok, body, 1000),
                Answer::Inactive,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            parse_reply(Some(b"400"), br#"{"error":"unsupported_token_type"}"#, 1000),
            Answer::Inactive
        );
        for status in [None, Some(&b"500"[..]), Some(b"401"), Some(b"504")] {
            assert_eq!(
                parse_reply(status, br#"{"active":true}"#, 1000),
                Answer::Unavailable
            );
        }
    }

    #[test]
    fn cache_lifetimes_and_bounds() {
        let c = cfg(r#", "cache_seconds": 300, "negative_cache_seconds": 10, "cache_entries": 2"#);
        let mut cache = TokenCache::new(c.cache_entries);
        let (a, b, d) = (token_hash("a"), token_hash("b"), token_hash("d"));
        cache.insert(
            &c,
            a,
            &Answer::Active {
                jkt: Some("j".into()),
                exp: Some(1060),
            },
            1000,
        );
        assert_eq!(
            cache.get(&a, 1059),
            Some(&Cached::Active {
                jkt: Some("j".into())
            })
        );
        assert_eq!(cache.get(&a, 1060), None, "never past the token's exp");
        cache.insert(&c, b, &Answer::Inactive, 1000);
        assert_eq!(cache.get(&b, 1009), Some(&Cached::Inactive));
        assert_eq!(cache.get(&b, 1010), None);
        cache.insert(&c, d, &Answer::Unavailable, 1000);
        assert_eq!(cache.get(&d, 1000), None, "errors are never cached");
        cache.insert(
            &c,
            d,
            &Answer::Active {
                jkt: None,
                exp: None,
            },
            1000,
        );
        assert_eq!(cache.len(), 2, "bounded");
        assert_eq!(cache.get(&a, 1001), None, "oldest evicted");
        assert_eq!(cache.get(&d, 1299), Some(&Cached::Active { jkt: None }));
    }
}
