//! Plugin configuration (SPEC §2): JSON from a `StringValue`, parsed once per VM into an
//! immutable [`Config`]. Unknown keys, wrong types and impossible values are errors that name
//! the key (`replay.timeout_ms: must be between 1 and 60000`) — never a silent default.

use crate::htu;
use crate::jose::{Alg, AlgSet, PublicJwk};
use crate::json::{Json, Object};
use crate::proof::ProofPolicy;
use std::fmt;

/// A configuration error: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

// Config parsing runs once per VM: keep it small rather than fast (wasm size).
#[cold]
#[inline(never)]
fn err<T>(key: &str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.to_owned(),
        message: message.into(),
    })
}

/// Per-route policy (SPEC §2 `routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePolicy {
    /// A proof is required; a token, if sent, must be bound to it.
    Required,
    /// A proof is verified if present; DPoP-bound tokens still need one.
    Optional,
    /// Token endpoint: a proof is required, no access token is expected.
    ProofOnly,
    /// No checks (the forwarded jkt header is still stripped).
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub prefix: String,
    pub policy: RoutePolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    Upstream,
    Keys,
    JwtAuthn,
}

/// How access tokens are trusted (SPEC §4).
#[derive(Debug, Clone)]
pub struct AccessTokenConfig {
    pub verify: VerifyMode,
    pub hs256_secret: Option<Vec<u8>>,
    /// `(kid, key)`; a key without `kid` matches tokens without one.
    pub jwks: Vec<(Option<String>, PublicJwk)>,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub metadata_namespace: String,
    pub payload_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Deny,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayConfig {
    Local {
        capacity: u32,
    },
    Remote {
        cluster: String,
        authority: String,
        path: String,
        timeout_ms: u32,
        on_error: OnError,
    },
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceConfig {
    pub secret: Vec<u8>,
    pub rotation_seconds: i64,
}

/// The validated configuration, shared read-only by every HTTP context of a VM.
#[derive(Debug, Clone)]
pub struct Config {
    pub enabled: bool,
    pub required: bool,
    pub proof: ProofPolicy,
    /// Normalized `scheme://authority` when set.
    pub public_origin: Option<String>,
    pub trust_forwarded_proto: bool,
    pub problem_base_uri: String,
    /// Lower-case header name.
    pub forward_jkt_header: String,
    pub routes: Vec<RouteRule>,
    pub access_token: AccessTokenConfig,
    pub replay: ReplayConfig,
    pub nonce: Option<NonceConfig>,
}

// ---- raw shapes, read from the JSON by hand so every error names its dotted key ----

/// Every key the parser accepts, dotted (`routes[]` elements as `routes[].prefix`). The parser
/// refuses anything else; the README test checks each one is documented.
pub const KEYS: &[&str] = &[
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
    "routes[].prefix",
    "routes[].policy",
    "access_token",
    "access_token.verify",
    "access_token.hs256_secret",
    "access_token.jwks",
    "access_token.issuer",
    "access_token.audiences",
    "access_token.metadata_namespace",
    "access_token.payload_key",
    "replay",
    "replay.store",
    "replay.capacity",
    "replay.cluster",
    "replay.authority",
    "replay.path",
    "replay.timeout_ms",
    "replay.on_error",
    "nonce",
    "nonce.secret",
    "nonce.rotation_seconds",
];

#[derive(Default)]
struct RawConfig {
    enabled: Option<bool>,
    required: Option<bool>,
    proof_ttl: Option<i64>,
    clock_skew: Option<i64>,
    algorithms: Option<Vec<String>>,
    max_proof_bytes: Option<u64>,
    require_ath: Option<bool>,
    public_origin: Option<String>,
    trust_forwarded_proto: Option<bool>,
    problem_base_uri: Option<String>,
    forward_jkt_header: Option<String>,
    routes: Option<Vec<RawRoute>>,
    access_token: Option<RawAccessToken>,
    replay: Option<RawReplay>,
    nonce: Option<RawNonce>,
}

struct RawRoute {
    prefix: String,
    policy: RoutePolicy,
}

#[derive(Default)]
struct RawAccessToken {
    verify: Option<VerifyMode>,
    hs256_secret: Option<String>,
    jwks: Option<Object>,
    issuer: Option<String>,
    audiences: Option<Vec<String>>,
    metadata_namespace: Option<String>,
    payload_key: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Local,
    Remote,
    Off,
}

#[derive(Default)]
struct RawReplay {
    store: Option<StoreKind>,
    capacity: Option<u64>,
    cluster: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    timeout_ms: Option<u64>,
    on_error: Option<OnError>,
}

struct RawNonce {
    secret: String,
    rotation_seconds: Option<i64>,
}

/// One JSON object of the configuration, with the dotted path used in error messages.
struct Section<'a> {
    obj: &'a Object,
    path: String,
}

impl<'a> Section<'a> {
    #[inline(never)]
    fn key(&self, name: &str) -> String {
        // A client-chosen key name goes into a log line: quote and escape anything that is not
        // a plain identifier (empty names, dots, control characters).
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let name = if plain {
            name.to_owned()
        } else {
            format!("{name:?}")
        };
        if self.path.is_empty() {
            name
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Refuses members outside `allowed` (the first one found is named).
    #[inline(never)]
    fn only(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self
            .obj
            .0
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) => err(
                &self.key(k),
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            ),
        }
    }

    #[inline(never)]
    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(_) => err(&self.key(name), "must be true or false"),
        }
    }

    #[inline(never)]
    fn int(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Int(i)) => Ok(Some(*i)),
            Some(_) => err(&self.key(name), "must be an integer"),
        }
    }

    #[inline(never)]
    fn uint(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.int(name)? {
            None => Ok(None),
            Some(i) => u64::try_from(i)
                .map(Some)
                .or_else(|_| err(&self.key(name), "must not be negative")),
        }
    }

    #[inline(never)]
    fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Str(v)) => Ok(Some(v.clone())),
            Some(_) => err(&self.key(name), "must be a string"),
        }
    }

    #[inline(never)]
    fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Json::Str(v) => Ok(v.clone()),
                    _ => err(&format!("{}[{i}]", self.key(name)), "must be a string"),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => err(&self.key(name), "must be an array of strings"),
        }
    }

    #[inline(never)]
    fn section(&self, name: &str) -> Result<Option<Section<'a>>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Object(o)) => Ok(Some(Section {
                obj: o,
                path: self.key(name),
            })),
            Some(_) => err(&self.key(name), "must be an object"),
        }
    }

    /// A string that must be one of `choices`.
    #[inline(never)]
    fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
        let Some(v) = self.string(name)? else {
            return Ok(None);
        };
        match choices.iter().find(|(n, _)| *n == v) {
            Some((_, t)) => Ok(Some(*t)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                err(
                    &self.key(name),
                    format!(
                        "unknown value {v:?} (expected one of: {})",
                        names.join(", ")
                    ),
                )
            }
        }
    }
}

fn suffixes(prefix: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter_map(|k| k.strip_prefix(prefix))
        .filter(|k| !k.contains('.'))
        .collect()
}

fn read_raw(root: &Section<'_>) -> Result<RawConfig, ConfigError> {
    root.only(
        &KEYS
            .iter()
            .copied()
            .filter(|k| !k.contains(['.', '[']))
            .collect::<Vec<_>>(),
    )?;
    let routes = match root.obj.get("routes") {
        None => None,
        Some(Json::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Json::Object(o) = item else {
                    return err(
                        &format!("routes[{i}]"),
                        "must be an object {\"prefix\": ..., \"policy\": ...}",
                    );
                };
                let r = Section {
                    obj: o,
                    path: format!("routes[{i}]"),
                };
                r.only(&suffixes("routes[]."))?;
                let prefix = r.string("prefix")?.ok_or(ConfigError {
                    key: r.key("prefix"),
                    message: "is required".into(),
                })?;
                let policy = r
                    .choice(
                        "policy",
                        &[
                            ("required", RoutePolicy::Required),
                            ("optional", RoutePolicy::Optional),
                            ("proof_only", RoutePolicy::ProofOnly),
                            ("off", RoutePolicy::Off),
                        ],
                    )?
                    .ok_or(ConfigError {
                        key: r.key("policy"),
                        message: "is required".into(),
                    })?;
                out.push(RawRoute { prefix, policy });
            }
            Some(out)
        }
        Some(_) => {
            return err(
                "routes",
                "must be an array of {\"prefix\", \"policy\"} rules",
            )
        }
    };
    let access_token = match root.section("access_token")? {
        None => None,
        Some(a) => {
            a.only(&suffixes("access_token."))?;
            let jwks = match a.obj.get("jwks") {
                None => None,
                Some(Json::Object(o)) => Some(o.clone()),
                Some(_) => {
                    return err(
                        "access_token.jwks",
                        "must be a JWKS object {\"keys\": [...]}",
                    )
                }
            };
            Some(RawAccessToken {
                verify: a.choice(
                    "verify",
                    &[
                        ("upstream", VerifyMode::Upstream),
                        ("keys", VerifyMode::Keys),
                        ("jwt_authn", VerifyMode::JwtAuthn),
                    ],
                )?,
                hs256_secret: a.string("hs256_secret")?,
                jwks,
                issuer: a.string("issuer")?,
                audiences: a.strings("audiences")?,
                metadata_namespace: a.string("metadata_namespace")?,
                payload_key: a.string("payload_key")?,
            })
        }
    };
    let replay = match root.section("replay")? {
        None => None,
        Some(r) => {
            r.only(&suffixes("replay."))?;
            Some(RawReplay {
                store: r.choice(
                    "store",
                    &[
                        ("local", StoreKind::Local),
                        ("remote", StoreKind::Remote),
                        ("off", StoreKind::Off),
                    ],
                )?,
                capacity: r.uint("capacity")?,
                cluster: r.string("cluster")?,
                authority: r.string("authority")?,
                path: r.string("path")?,
                timeout_ms: r.uint("timeout_ms")?,
                on_error: r.choice(
                    "on_error",
                    &[("deny", OnError::Deny), ("allow", OnError::Allow)],
                )?,
            })
        }
    };
    let nonce = match root.section("nonce")? {
        None => None,
        Some(n) => {
            n.only(&suffixes("nonce."))?;
            Some(RawNonce {
                secret: n.string("secret")?.ok_or(ConfigError {
                    key: "nonce.secret".into(),
                    message: "is required".into(),
                })?,
                rotation_seconds: n.int("rotation_seconds")?,
            })
        }
    };
    Ok(RawConfig {
        enabled: root.bool("enabled")?,
        required: root.bool("required")?,
        proof_ttl: root.int("proof_ttl")?,
        clock_skew: root.int("clock_skew")?,
        algorithms: root.strings("algorithms")?,
        max_proof_bytes: root.uint("max_proof_bytes")?,
        require_ath: root.bool("require_ath")?,
        public_origin: root.string("public_origin")?,
        trust_forwarded_proto: root.bool("trust_forwarded_proto")?,
        problem_base_uri: root.string("problem_base_uri")?,
        forward_jkt_header: root.string("forward_jkt_header")?,
        routes,
        access_token,
        replay,
        nonce,
    })
}

pub const DEFAULT_PROBLEM_BASE_URI: &str = "https://arcp.0x001.tech/docs/problems";

fn ranged(key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return err(key, format!("must be between {lo} and {hi}, got {v}"));
    }
    Ok(v)
}

fn ranged_u(key: &str, v: Option<u64>, default: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return err(key, format!("must be between {lo} and {hi}, got {v}"));
    }
    Ok(v)
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Config {
    /// Parses the plugin configuration. Empty (or whitespace-only) input means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            RawConfig::default()
        } else {
            // strict JSON: duplicate keys are refused, like everywhere else in this filter
            let object = match serde_json::from_slice::<Json>(bytes) {
                Ok(Json::Object(o)) => o,
                Ok(_) => return err("(top level)", "configuration must be a JSON object"),
                Err(e) => return err("(top level)", format!("invalid JSON: {e}")),
            };
            read_raw(&Section {
                obj: &object,
                path: String::new(),
            })?
        };
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let proof_ttl = ranged("proof_ttl", raw.proof_ttl, 120, 1, 86_400)?;
        let clock_skew = ranged("clock_skew", raw.clock_skew, 60, 0, 3_600)?;
        let algorithms = match raw.algorithms {
            None => ProofPolicy::default().algorithms,
            Some(names) => {
                let mut set = AlgSet::empty();
                for n in &names {
                    match Alg::from_name(n) {
                        Some(a) => set = set.with(a),
                        None => {
                            return err(
                                "algorithms",
                                format!("unsupported algorithm {n:?} (supported: EdDSA, ES256, ES384, RS256, PS256)"),
                            )
                        }
                    }
                }
                if set.is_empty() {
                    return err("algorithms", "must name at least one algorithm");
                }
                if set.contains(Alg::ES384) && !cfg!(feature = "es384") {
                    return err(
                        "algorithms",
                        "ES384 is not built into this dpop_guard.wasm (build with --features es384)",
                    );
                }
                set
            }
        };
        let max_proof_bytes =
            ranged_u("max_proof_bytes", raw.max_proof_bytes, 8192, 256, 65_536)? as usize;
        let proof = ProofPolicy {
            algorithms,
            proof_ttl,
            clock_skew,
            max_proof_bytes,
            require_ath: raw.require_ath.unwrap_or(true),
        };

        let public_origin = match raw.public_origin {
            None => None,
            Some(o) => {
                // An origin: scheme://authority, optionally one trailing '/', nothing else.
                let after_scheme = o.split_once("://").map_or("", |(_, r)| r);
                let has_path = after_scheme.trim_end_matches('/').contains(['/', '?', '#']);
                match htu::normalize(&o) {
                    Some(n) if !has_path && !after_scheme.is_empty() => {
                        Some(n.trim_end_matches('/').to_owned())
                    }
                    _ => {
                        return err(
                            "public_origin",
                            "must be an origin like https://api.example.com (no path)",
                        )
                    }
                }
            }
        };

        let problem_base_uri = raw
            .problem_base_uri
            .unwrap_or_else(|| DEFAULT_PROBLEM_BASE_URI.to_owned());
        if !(problem_base_uri.starts_with("https://") || problem_base_uri.starts_with("http://"))
            || problem_base_uri
                .bytes()
                .any(|b| b <= 0x20 || b == b'"' || b >= 0x7f)
        {
            return err("problem_base_uri", "must be an absolute http(s) URI");
        }
        let problem_base_uri = problem_base_uri.trim_end_matches('/').to_owned();

        let forward_jkt_header = raw
            .forward_jkt_header
            .unwrap_or_else(|| "x-dpop-jkt".to_owned())
            .to_ascii_lowercase();
        if !is_header_name(&forward_jkt_header)
            || forward_jkt_header == "authorization"
            || forward_jkt_header == "dpop"
        {
            return err(
                "forward_jkt_header",
                "must be a plain header name such as x-dpop-jkt",
            );
        }

        let mut routes = Vec::new();
        for (i, r) in raw.routes.unwrap_or_default().into_iter().enumerate() {
            if !r.prefix.starts_with('/') {
                return err(&format!("routes[{i}].prefix"), "must start with '/'");
            }
            routes.push(RouteRule {
                prefix: r.prefix,
                policy: r.policy,
            });
        }

        let access_token = access_token(raw.access_token.unwrap_or_default())?;
        let replay = replay(raw.replay.unwrap_or_default())?;
        let nonce = match raw.nonce {
            None => None,
            Some(n) => {
                if n.secret.len() < 16 {
                    return err("nonce.secret", "must be at least 16 characters");
                }
                let rotation_seconds = ranged(
                    "nonce.rotation_seconds",
                    n.rotation_seconds,
                    300,
                    10,
                    86_400,
                )?;
                Some(NonceConfig {
                    secret: n.secret.into_bytes(),
                    rotation_seconds,
                })
            }
        };

        Ok(Config {
            enabled: raw.enabled.unwrap_or(true),
            required: raw.required.unwrap_or(false),
            proof,
            public_origin,
            trust_forwarded_proto: raw.trust_forwarded_proto.unwrap_or(false),
            problem_base_uri,
            forward_jkt_header,
            routes,
            access_token,
            replay,
            nonce,
        })
    }

    /// The policy for a request path (`:path`, query allowed): first matching prefix wins,
    /// else `required`/`optional`. Rules are matched on the normalized path
    /// ([`crate::htu::route_path`]), the one the upstream resolves: `/public/../api` is
    /// `/api`. When decoding `%2F`/`%5C`/`\\` as `/` would pick another policy, or the path
    /// cannot be normalized, the request gets `required`: the filter cannot know which of the
    /// two paths the upstream serves.
    pub fn route_policy(&self, path: &str) -> RoutePolicy {
        let plain = crate::htu::route_path(path, false);
        let decoded = crate::htu::route_path(path, true);
        match (plain, decoded) {
            (Some(a), Some(b)) => {
                let p = self.rule_policy(&a);
                if a == b || p == self.rule_policy(&b) {
                    p
                } else {
                    RoutePolicy::Required
                }
            }
            _ => RoutePolicy::Required,
        }
    }

    fn rule_policy(&self, normalized: &str) -> RoutePolicy {
        self.routes
            .iter()
            .find(|r| normalized.starts_with(r.prefix.as_str()))
            .map(|r| r.policy)
            .unwrap_or(if self.required {
                RoutePolicy::Required
            } else {
                RoutePolicy::Optional
            })
    }

    /// Replay entry lifetime for a proof issued at `iat`, checked at `now` (README "Replay
    /// protection"): the proof is accepted while `now <= iat + proof_ttl`, so the entry must
    /// outlive that second: `iat + proof_ttl - now + 1`, at least 1 s. (A lifetime counted from
    /// first use instead, `proof_ttl + clock_skew`, let a proof be used twice in its last second.)
    pub fn replay_ttl(&self, iat: i64, now: i64) -> i64 {
        iat.saturating_add(self.proof.proof_ttl)
            .saturating_sub(now)
            .saturating_add(1)
            .max(1)
    }
}

fn access_token(raw: RawAccessToken) -> Result<AccessTokenConfig, ConfigError> {
    let verify = raw.verify.unwrap_or(VerifyMode::Upstream);
    let hs256_secret = match raw.hs256_secret {
        None => None,
        Some(s) if s.len() < 32 => {
            return err(
                "access_token.hs256_secret",
                "must be at least 32 bytes (RFC 7518 §3.2)",
            )
        }
        Some(s) => Some(s.into_bytes()),
    };
    let mut jwks = Vec::new();
    if let Some(set) = raw.jwks {
        let keys = match set.get("keys") {
            Some(Json::Array(keys)) => keys,
            _ => {
                return err(
                    "access_token.jwks",
                    "must be a JWKS object {\"keys\": [...]}",
                )
            }
        };
        for (i, k) in keys.iter().enumerate() {
            let key = format!("access_token.jwks.keys[{i}]");
            let Json::Object(o) = k else {
                return err(&key, "must be a JWK object");
            };
            let jwk = PublicJwk::from_object(o).map_err(|e| ConfigError {
                key: key.clone(),
                message: format!("not a usable public key ({e:?})"),
            })?;
            let kid = o.str("kid").ok().flatten().map(str::to_owned);
            jwks.push((kid, jwk));
        }
    }
    let keyed = hs256_secret.is_some() || !jwks.is_empty();
    match verify {
        VerifyMode::Keys if !keyed => {
            return err(
                "access_token.verify",
                "\"keys\" needs access_token.hs256_secret or access_token.jwks",
            )
        }
        VerifyMode::Upstream | VerifyMode::JwtAuthn if keyed => {
            return err(
                "access_token.verify",
                "hs256_secret/jwks are only used with verify = \"keys\"",
            )
        }
        _ => {}
    }
    let audiences = raw.audiences.unwrap_or_default();
    let metadata_namespace = raw
        .metadata_namespace
        .unwrap_or_else(|| "envoy.filters.http.jwt_authn".to_owned());
    let payload_key = raw.payload_key.unwrap_or_else(|| "payload".to_owned());
    if metadata_namespace.is_empty() {
        return err("access_token.metadata_namespace", "must not be empty");
    }
    if payload_key.is_empty() {
        return err("access_token.payload_key", "must not be empty");
    }
    Ok(AccessTokenConfig {
        verify,
        hs256_secret,
        jwks,
        issuer: raw.issuer,
        audiences,
        metadata_namespace,
        payload_key,
    })
}

fn replay(raw: RawReplay) -> Result<ReplayConfig, ConfigError> {
    let store = raw.store.unwrap_or(StoreKind::Local);
    let remote_only = [
        ("replay.cluster", raw.cluster.is_some()),
        ("replay.authority", raw.authority.is_some()),
        ("replay.path", raw.path.is_some()),
        ("replay.timeout_ms", raw.timeout_ms.is_some()),
        ("replay.on_error", raw.on_error.is_some()),
    ];
    match store {
        StoreKind::Local => {
            if let Some((k, _)) = remote_only.iter().find(|(_, set)| *set) {
                return err(k, "only applies to replay.store = \"remote\"");
            }
            let capacity =
                ranged_u("replay.capacity", raw.capacity, 100_000, 16, 10_000_000)? as u32;
            Ok(ReplayConfig::Local { capacity })
        }
        StoreKind::Remote => {
            if raw.capacity.is_some() {
                return err(
                    "replay.capacity",
                    "only applies to replay.store = \"local\"",
                );
            }
            let cluster = match raw.cluster {
                Some(c) if !c.is_empty() => c,
                _ => {
                    return err(
                        "replay.cluster",
                        "is required when replay.store = \"remote\"",
                    )
                }
            };
            let authority = raw.authority.unwrap_or_else(|| "dpop-replay".to_owned());
            let path = raw.path.unwrap_or_else(|| "/v1/replay".to_owned());
            if !path.starts_with('/') {
                return err("replay.path", "must start with '/'");
            }
            let timeout_ms = ranged_u("replay.timeout_ms", raw.timeout_ms, 200, 1, 60_000)? as u32;
            Ok(ReplayConfig::Remote {
                cluster,
                authority,
                path,
                timeout_ms,
                on_error: raw.on_error.unwrap_or(OnError::Deny),
            })
        }
        StoreKind::Off => {
            if raw.capacity.is_some() {
                return err(
                    "replay.capacity",
                    "only applies to replay.store = \"local\"",
                );
            }
            if let Some((k, _)) = remote_only.iter().find(|(_, set)| *set) {
                return err(k, "only applies to replay.store = \"remote\"");
            }
            Ok(ReplayConfig::Off)
        }
    }
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
                r#"{"public_origin": "https://a.example/path"}"#,
                "public_origin",
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
        assert_eq!(c.public_origin.as_deref(), Some("https://api.example.com"));
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
                ..
            }
        ));
    }
}
