//! Plugin configuration: JSON from a `StringValue`, parsed once per VM into an immutable
//! [`Config`]. Unknown keys, wrong types and impossible values are errors that name the key
//! (`replay.timeout_ms: must be between 1 and 60000`) — never a silent default.
//!
//! Each feature reads and validates its own section ([`AccessTokenConfig::read`],
//! [`ReplayConfig::read`], [`NonceConfig::read`], [`Routes::read`]); this module reads the
//! top-level settings and puts the sections together. A new key goes in its section's `KEYS`
//! and its `read`; the README test (`tests/docs.rs`) then insists it is documented.

pub mod reader;

pub use crate::jose::host_crypto::CryptoChoice;
use crate::jose::{Alg, AlgSet};
use crate::json::Json;
use crate::proof::ProofPolicy;
use reader::{err, Section};

pub use crate::metadata::MetadataConfig;
pub use crate::nonce::{NonceConfig, NonceScope};
pub use crate::origin::PublicOrigin;
pub use crate::replay::{OnError, ReplayConfig, ReplayTransport};
pub use crate::routes::{RoutePolicy, RouteRule, RouteSettings, Routes};
pub use crate::token::{AccessTokenConfig, VerifyMode};
pub use crate::upstream::{AuthorizationHandOff, UpstreamConfig};
pub use reader::ConfigError;

/// The validated configuration, shared read-only by every HTTP context of a VM.
#[derive(Debug, Clone)]
pub struct Config {
    pub enabled: bool,
    pub required: bool,
    /// The top-level proof settings (those of requests no rule matches; each rule starts from
    /// them): what a request is checked with is `routes.lookup(..).settings.proof`.
    pub proof: ProofPolicy,
    pub trust_forwarded_proto: bool,
    pub problem_base_uri: String,
    /// Lower-case header name.
    pub forward_jkt_header: String,
    pub routes: Routes,
    pub access_token: AccessTokenConfig,
    pub replay: ReplayConfig,
    pub nonce: Option<NonceConfig>,
    /// RFC 9728 metadata (README "Discovery"); `None`: not served, no `resource_metadata=`.
    pub resource_metadata: Option<MetadataConfig>,
    pub upstream: UpstreamConfig,
    /// Who verifies RS256 and ES256 ([`CryptoChoice`]).
    pub crypto: CryptoChoice,
}

/// The top-level keys; sections list their own.
const TOP_KEYS: &[&str] = &[
    "enabled",
    "required",
    "proof_ttl",
    "clock_skew",
    "algorithms",
    "max_proof_bytes",
    "require_ath",
    "public_origin",
    "trust_forwarded_proto",
    "problem_base_uri",
    "forward_jkt_header",
    "routes",
    "access_token",
    "replay",
    "nonce",
    "shadow",
    "require_bound_token",
    "upstream",
    "crypto",
    "resource_metadata",
];

/// Every key the parser accepts, dotted (`routes[]` elements as `routes[].prefix`). The parser
/// refuses anything else; the README test checks each one is documented.
pub fn keys() -> Vec<String> {
    let mut out: Vec<String> = TOP_KEYS.iter().map(|k| (*k).to_owned()).collect();
    let sections: [(&str, &[&str]); 7] = [
        ("routes[]", Routes::RULE_KEYS),
        ("access_token", AccessTokenConfig::KEYS),
        ("replay", ReplayConfig::KEYS),
        ("nonce", NonceConfig::KEYS),
        ("upstream", UpstreamConfig::KEYS),
        ("resource_metadata", MetadataConfig::KEYS),
        (
            "access_token.introspection",
            crate::introspection::IntrospectionConfig::KEYS,
        ),
    ];
    for (section, keys) in sections {
        out.extend(keys.iter().map(|k| format!("{section}.{k}")));
    }
    out
}

pub const DEFAULT_PROBLEM_BASE_URI: &str = "https://arcp.0x001.tech/docs/problems";

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Config {
    /// Parses the plugin configuration. Empty (or whitespace-only) input means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Config::read(&Section::root(&reader::EMPTY));
        }
        // strict JSON: duplicate keys are refused, like everywhere else in this filter
        match serde_json::from_slice::<Json>(bytes) {
            Ok(Json::Object(o)) => Config::read(&Section::root(&o)),
            Ok(_) => err("(top level)", "configuration must be a JSON object"),
            Err(e) => err("(top level)", format!("invalid JSON: {e}")),
        }
    }

    fn read(root: &Section<'_>) -> Result<Config, ConfigError> {
        root.only(TOP_KEYS)?;
        let required = root.bool("required")?.unwrap_or(false);
        let proof = ProofPolicy {
            algorithms: read_algorithms(root)?,
            proof_ttl: root.int_in("proof_ttl", 120, 1, 86_400)?,
            clock_skew: root.int_in("clock_skew", 60, 0, 3_600)?,
            max_proof_bytes: root.uint_in("max_proof_bytes", 8192, 256, 65_536)? as usize,
            require_ath: root.bool("require_ath")?.unwrap_or(true),
        };
        let nonce = match root.section("nonce")? {
            None => None,
            Some(s) => Some(NonceConfig::read(&s)?),
        };
        let (resource_metadata, resource) = match root.section("resource_metadata")? {
            None => (None, None),
            Some(s) => (
                Some(MetadataConfig::read(&s)?),
                read_origin(&s, "resource")?,
            ),
        };
        let default = RouteSettings {
            policy: if required {
                RoutePolicy::Required
            } else {
                RoutePolicy::Optional
            },
            shadow: root.bool("shadow")?.unwrap_or(false),
            require_bound_token: root.bool("require_bound_token")?.unwrap_or(true),
            proof: proof.clone(),
            nonce: nonce.as_ref().is_some_and(|n| n.enabled),
            public_origin: read_origin(root, "public_origin")?,
            resource,
        };
        Ok(Config {
            enabled: root.bool("enabled")?.unwrap_or(true),
            required,
            proof,
            trust_forwarded_proto: root.bool("trust_forwarded_proto")?.unwrap_or(false),
            problem_base_uri: read_problem_base_uri(root)?,
            forward_jkt_header: read_forward_jkt_header(root)?,
            routes: Routes::read(root, default, nonce.is_some())?,
            resource_metadata,
            access_token: AccessTokenConfig::read(&root.section_or_empty("access_token")?)?,
            replay: ReplayConfig::read(&root.section_or_empty("replay")?)?,
            nonce,
            upstream: UpstreamConfig::read(&root.section_or_empty("upstream")?)?,
            crypto: root
                .choice(
                    "crypto",
                    &[("auto", CryptoChoice::Auto), ("wasm", CryptoChoice::Wasm)],
                )?
                .unwrap_or_default(),
        })
    }

    /// One line for the start-up log: what this configuration enforces (never a secret).
    pub fn summary(&self) -> String {
        let replay = match &self.replay {
            ReplayConfig::Local { capacity } => format!("local(capacity={capacity})"),
            ReplayConfig::Remote {
                cluster,
                on_error,
                transport,
                ..
            } => {
                format!("remote(cluster={cluster}, transport={transport:?}, on_error={on_error:?})")
            }
            ReplayConfig::Off => "off".to_owned(),
        };
        let shadow_rules = self
            .routes
            .rules
            .iter()
            .filter(|r| r.settings.shadow)
            .count();
        format!(
            "enabled={} required={} algorithms=\"{}\" access_token.verify={:?} replay={replay} shadow={} rules={} shadow_rules={shadow_rules} nonce={} resource_metadata={} crypto={:?}",
            self.enabled,
            self.required,
            self.proof.algorithms.names(),
            self.access_token.verify,
            self.routes.default.shadow,
            self.routes.rules.len(),
            self.nonce.as_ref().map_or("off", |n| match n.scope {
                NonceScope::Key => "key",
                NonceScope::Global => "global",
            }),
            self.resource_metadata.is_some(),
            self.crypto,
        )
    }

    /// The route policy for a request path (see [`Routes::policy`]).
    pub fn route_policy(&self, path: &str) -> RoutePolicy {
        self.routes.policy(path)
    }

    /// Replay entry lifetime for a proof issued at `iat`, checked at `now` (README "How a
    /// request is checked", step 7): the proof is accepted while `now <= iat + proof_ttl`, so the entry must
    /// outlive that second: `iat + proof_ttl - now + 1`, at least 1 s. (A lifetime counted from
    /// first use instead, `proof_ttl + clock_skew`, let a proof be used twice in its last second.)
    pub fn replay_ttl(&self, iat: i64, now: i64) -> i64 {
        replay_ttl(self.proof.proof_ttl, iat, now)
    }
}

/// [`Config::replay_ttl`] for a route's `proof_ttl`.
pub fn replay_ttl(proof_ttl: i64, iat: i64, now: i64) -> i64 {
    iat.saturating_add(proof_ttl)
        .saturating_sub(now)
        .saturating_add(1)
        .max(1)
}

/// `algorithms` of a section (top level or a route rule).
pub(crate) fn read_algorithms(root: &Section<'_>) -> Result<AlgSet, ConfigError> {
    let Some(names) = root.strings("algorithms")? else {
        return Ok(ProofPolicy::default().algorithms);
    };
    let mut set = AlgSet::empty();
    for n in &names {
        match Alg::from_name(n) {
            Some(a) => set = set.with(a),
            None => {
                return err(
                    &root.key("algorithms"),
                    format!(
                        "unsupported algorithm {n:?} (supported: EdDSA, ES256, ES384, RS256, PS256)"
                    ),
                )
            }
        }
    }
    if set.is_empty() {
        return err(&root.key("algorithms"), "must name at least one algorithm");
    }
    if set.contains(Alg::ES384) && !cfg!(feature = "es384") {
        return err(
            &root.key("algorithms"),
            "ES384 is not built into this dpop_guard.wasm (build with --features es384)",
        );
    }
    Ok(set)
}

/// An origin with an optional path prefix (`public_origin`, `resource`): see [`PublicOrigin`].
pub(crate) fn read_origin(
    s: &Section<'_>,
    name: &str,
) -> Result<Option<PublicOrigin>, ConfigError> {
    let Some(o) = s.string(name)? else {
        return Ok(None);
    };
    match PublicOrigin::parse(&o) {
        Some(p) => Ok(Some(p)),
        None => err(
            &s.key(name),
            "must be an http(s) origin with an optional plain path prefix, like https://api.example.com or https://api.example.com/svc2",
        ),
    }
}

fn read_problem_base_uri(root: &Section<'_>) -> Result<String, ConfigError> {
    let uri = root
        .string("problem_base_uri")?
        .unwrap_or_else(|| DEFAULT_PROBLEM_BASE_URI.to_owned());
    if !(uri.starts_with("https://") || uri.starts_with("http://"))
        || uri.bytes().any(|b| b <= 0x20 || b == b'"' || b >= 0x7f)
    {
        return err("problem_base_uri", "must be an absolute http(s) URI");
    }
    Ok(uri.trim_end_matches('/').to_owned())
}

fn read_forward_jkt_header(root: &Section<'_>) -> Result<String, ConfigError> {
    let name = root
        .string("forward_jkt_header")?
        .unwrap_or_else(|| "x-dpop-jkt".to_owned())
        .to_ascii_lowercase();
    if !is_header_name(&name) || name == "authorization" || name == "dpop" {
        return err(
            "forward_jkt_header",
            "must be a plain header name such as x-dpop-jkt",
        );
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_defaults() {
        for input in [&b""[..], b"  ", b"{}"] {
            let c = Config::parse(input).unwrap();
            assert!(c.enabled && !c.required);
            assert_eq!(c.proof.proof_ttl, 120);
            assert_eq!(c.proof.algorithms.names(), "EdDSA ES256 RS256");
            assert_eq!(c.replay, ReplayConfig::Local { capacity: 100_000 });
            assert_eq!(c.forward_jkt_header, "x-dpop-jkt");
            assert_eq!(c.replay_ttl(1000, 1000), 121);
            assert_eq!(c.replay_ttl(1060, 1000), 181);
            assert_eq!(c.replay_ttl(880, 1000), 1);
            assert_eq!(c.replay_ttl(0, 1000), 1);
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (r#"{"enabeld": true}"#, "enabeld"),
            (r#"{"enabled": "yes"}"#, "enabled"),
            (r#"{"proof_ttl": 0}"#, "proof_ttl"),
            (r#"{"algorithms": ["HS256"]}"#, "algorithms"),
            (r#"{"algorithms": []}"#, "algorithms"),
            (r#"{"replay": {"store": "remote"}}"#, "replay.cluster"),
            (r#"{"replay": {"store": "redis"}}"#, "replay.store"),
            (r#"{"replay": {"capacity": 10}}"#, "replay.capacity"),
            (
                r#"{"replay": {"store": "local", "cluster": "x"}}"#,
                "replay.cluster",
            ),
            (
                r#"{"replay": {"store":"remote","cluster":"c","timeout_ms": 0}}"#,
                "replay.timeout_ms",
            ),
            (
                r#"{"routes": [{"prefix": "x", "policy": "off"}]}"#,
                "routes[0].prefix",
            ),
            (
                r#"{"routes": [{"prefix": "/x", "policy": "maybe"}]}"#,
                "routes[0].policy",
            ),
            (
                r#"{"nonce": {"secrets": ["0123456789abcdef", "short"]}}"#,
                "nonce.secrets[1]",
            ),
            (
                r#"{"nonce": {"secret": "0123456789abcdef", "rotation_seconds": 20, "refresh_seconds": 21}}"#,
                "nonce.refresh_seconds",
            ),
            (
                r#"{"access_token": {"verify": "keys"}}"#,
                "access_token.verify",
            ),
            (
                r#"{"access_token": {"verify": "keys", "hs256_secret": "short"}}"#,
                "access_token.hs256_secret",
            ),
            (
                r#"{"access_token": {"verfy": "keys"}}"#,
                "access_token.verfy",
            ),
            (
                r#"{"public_origin": "https://a.example/path?q"}"#,
                "public_origin",
            ),
            (
                r#"{"routes": [{"prefix": "/x", "algorithms": ["HS256"]}]}"#,
                "routes[0].algorithms",
            ),
            (r#"{"public_origin": "ftp://a.example"}"#, "public_origin"),
            (
                r#"{"forward_jkt_header": "bad header"}"#,
                "forward_jkt_header",
            ),
            (r#"{"nonce": {"secret": "x"}}"#, "nonce.secret"),
            (r#"[1]"#, "(top level)"),
            (r#"{"enabled": true"#, "(top level)"),
            (r#"{"": {"store": "nse"}}"#, "\"\""),
            (r#"{"replay": {"a\u0000b": 1}}"#, "replay.\"a\\0b\""),
        ];
        for (input, key) in cases {
            let e = Config::parse(input.as_bytes()).unwrap_err();
            assert_eq!(e.key, *key, "{input}: {e}");
        }
    }

    #[test]
    fn full_config() {
        let c = Config::parse(
            br#"{"required": true, "public_origin": "HTTPS://API.example.com:443",
                 "routes": [{"prefix": "/auth/agent/request_temp_token", "policy": "proof_only"},
                            {"prefix": "/health", "policy": "off"}],
                 "replay": {"store": "remote", "cluster": "outbound|8080||dpop-replay.dpop.svc.cluster.local", "on_error": "allow"},
                 "access_token": {"verify": "keys", "hs256_secret": "0123456789abcdef0123456789abcdef", "issuer": "arcp", "audiences": ["api"]},
                 "nonce": {"secret": "0123456789abcdef"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.routes
                .default
                .public_origin
                .as_ref()
                .map(PublicOrigin::base),
            Some("https://api.example.com")
        );
        assert_eq!(
            c.route_policy("/auth/agent/request_temp_token"),
            RoutePolicy::ProofOnly
        );
        assert_eq!(c.route_policy("/health/x"), RoutePolicy::Off);
        assert_eq!(c.route_policy("/api"), RoutePolicy::Required);
        assert!(matches!(
            c.replay,
            ReplayConfig::Remote {
                on_error: OnError::Allow,
                timeout_ms: 200,
                // coalescing defaults (README "Replay service"): one batch out at a time
                max_batch: 64,
                max_in_flight: 1,
                transport: ReplayTransport::Http,
                ..
            }
        ));
    }

    #[test]
    fn replay_transport() {
        let remote = |extra: &str| {
            Config::parse(
                format!(r#"{{"replay": {{"store": "remote", "cluster": "c"{extra}}}}}"#).as_bytes(),
            )
        };
        assert!(matches!(
            remote(r#", "transport": "grpc", "max_batch": 1"#)
                .unwrap()
                .replay,
            ReplayConfig::Remote {
                transport: ReplayTransport::Grpc,
                max_batch: 1,
                ..
            }
        ));
        let e = remote(r#", "transport": "grpc", "path": "/v1/replay""#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("replay.path") && e.contains("transport"), "{e}");
        // the start-up log line says which transport is in use
        assert!(remote(r#", "transport": "grpc""#)
            .unwrap()
            .summary()
            .contains("replay=remote(cluster=c, transport=Grpc, on_error=Deny)"));
        let e = remote(r#", "transport": "h2""#).err().unwrap().to_string();
        assert!(e.contains("replay.transport"), "{e}");
        let e = Config::parse(br#"{"replay": {"transport": "grpc"}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("only applies to replay.store"), "{e}");
    }
}
