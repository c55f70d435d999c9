//! Route rules (README `routes` and "Many APIs behind one gateway"): which settings a request
//! gets. A rule matches on host (`:authority` without port), method and path prefix — the
//! normalized path ([`crate::htu::route_path`]), the one the upstream resolves — and carries
//! its own policy, proof settings, nonce switch and public origin. First match wins.

use crate::config::reader::{err, ConfigError, Section};
use crate::json::Json;
use crate::origin::{authority_host, HostPattern, PublicOrigin};
use crate::proof::ProofPolicy;

/// Per-route policy.
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

/// Everything a matched request is checked with: the top-level settings, overridden by the
/// rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSettings {
    pub policy: RoutePolicy,
    /// Refusals are counted and published but not enforced (README "Shadow mode").
    pub shadow: bool,
    /// `required` routes: must a presented token be DPoP-bound?
    pub require_bound_token: bool,
    /// Algorithms, proof lifetime, clock skew, `ath`.
    pub proof: ProofPolicy,
    /// Server nonces are required here (needs the top-level `nonce` section).
    pub nonce: bool,
    /// The origin (and path prefix) clients sign `htu` for; `None`: the request's own.
    pub public_origin: Option<PublicOrigin>,
    /// The RFC 9728 resource identifier, when configured for this route or at the top level.
    pub resource: Option<PublicOrigin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Empty: any host.
    pub hosts: Vec<HostPattern>,
    /// Empty: any method.
    pub methods: Vec<String>,
    pub prefix: String,
    pub settings: RouteSettings,
}

impl RouteRule {
    fn matches(&self, host: &str, method: &str, normalized_path: &str) -> bool {
        normalized_path.starts_with(self.prefix.as_str())
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(host)))
    }

    /// Whether every request this rule matches is matched by `earlier` (then this rule can
    /// never match).
    fn covered_by(&self, earlier: &RouteRule) -> bool {
        let hosts = earlier.hosts.is_empty()
            || (!self.hosts.is_empty()
                && self
                    .hosts
                    .iter()
                    .all(|h| earlier.hosts.iter().any(|e| h.covered_by(e))));
        let methods = earlier.methods.is_empty()
            || (!self.methods.is_empty()
                && self.methods.iter().all(|m| earlier.methods.contains(m)));
        hosts && methods && self.prefix.starts_with(earlier.prefix.as_str())
    }
}

/// The rules, in order, and the settings for requests no rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub rules: Vec<RouteRule>,
    /// The top-level settings (policy `required` or `optional` from top-level `required`).
    pub default: RouteSettings,
}

/// What a request gets: the settings it is checked with; `policy`, `shadow` and
/// `require_bound_token` may differ from `settings` for an ambiguous path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub policy: RoutePolicy,
    pub shadow: bool,
    pub require_bound_token: bool,
    pub settings: &'a RouteSettings,
}

impl<'a> RouteMatch<'a> {
    fn of(settings: &'a RouteSettings) -> Self {
        RouteMatch {
            policy: settings.policy,
            shadow: settings.shadow,
            require_bound_token: settings.require_bound_token,
            settings,
        }
    }
}

/// Per-rule overrides of top-level settings (README configuration table, `routes[].*`).
const OVERRIDE_KEYS: &[&str] = &[
    "algorithms",
    "proof_ttl",
    "clock_skew",
    "require_ath",
    "nonce",
    "public_origin",
    "resource",
];

impl Routes {
    /// The keys of one rule (README configuration table, `routes[].*`).
    pub const RULE_KEYS: &'static [&'static str] = &[
        "prefix",
        "hosts",
        "methods",
        "policy",
        "shadow",
        "require_bound_token",
        "algorithms",
        "proof_ttl",
        "clock_skew",
        "require_ath",
        "nonce",
        "public_origin",
        "resource",
    ];

    /// Reads `routes` from the top-level section. `default` holds the top-level settings; each
    /// rule starts from them. `nonce_configured`: the top-level `nonce` section exists.
    pub fn read(
        root: &Section<'_>,
        default: RouteSettings,
        nonce_configured: bool,
    ) -> Result<Routes, ConfigError> {
        let items = match root.obj.get("routes") {
            None => {
                return Ok(Routes {
                    rules: Vec::new(),
                    default,
                })
            }
            Some(Json::Array(items)) => items,
            Some(_) => return err("routes", "must be an array of rules"),
        };
        if items.len() > 256 {
            return err("routes", "at most 256 rules");
        }
        let mut rules: Vec<RouteRule> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("routes[{i}]");
            let Json::Object(obj) = item else {
                return err(
                    &path,
                    "must be an object {\"prefix\": ..., \"policy\": ...}",
                );
            };
            let r = Section { obj, path };
            let rule = read_rule(&r, &default, nonce_configured)?;
            if let Some(j) = rules.iter().position(|earlier| rule.covered_by(earlier)) {
                return err(
                    &r.path,
                    format!(
                        "can never match: routes[{j}] comes first and matches every request it would \
                         (its hosts, methods and prefix {:?} cover this rule's)",
                        rules.get(j).map_or("", |e| e.prefix.as_str())
                    ),
                );
            }
            rules.push(rule);
        }
        Ok(Routes { rules, default })
    }

    /// The policy for a request path on any host and method (see [`Routes::lookup`]).
    pub fn policy(&self, path: &str) -> RoutePolicy {
        self.lookup("", "GET", path).policy
    }

    /// The settings for a request: the first rule matching host (from `:authority`), method and
    /// normalized path, else the top-level settings. When decoding `%2F`/`%5C`/`\\` as `/`
    /// would pick other settings, or the path cannot be normalized, the request gets the
    /// top-level settings with policy `required` (and the top-level `shadow`): the filter cannot
    /// know which of the two paths the upstream serves, so no rule can claim it.
    pub fn lookup(&self, authority: &str, method: &str, path: &str) -> RouteMatch<'_> {
        let ambiguous = RouteMatch {
            policy: RoutePolicy::Required,
            ..RouteMatch::of(&self.default)
        };
        let host = authority_host(authority);
        let Some(plain) = crate::htu::route_path(path, false) else {
            return ambiguous;
        };
        let found = self.settings_for(host, method, &plain);
        // Only a `%` or `\\` can decode to another `/`: without one, the second normalization
        // (an allocation per request) could only give the same path.
        if !path.contains(['%', '\\']) {
            return RouteMatch::of(found);
        }
        match crate::htu::route_path(path, true) {
            Some(decoded)
                if decoded == plain || *self.settings_for(host, method, &decoded) == *found =>
            {
                RouteMatch::of(found)
            }
            _ => ambiguous,
        }
    }

    fn settings_for(&self, host: &str, method: &str, normalized: &str) -> &RouteSettings {
        self.rules
            .iter()
            .find(|r| r.matches(host, method, normalized))
            .map_or(&self.default, |r| &r.settings)
    }
}

fn read_rule(
    r: &Section<'_>,
    default: &RouteSettings,
    nonce_configured: bool,
) -> Result<RouteRule, ConfigError> {
    r.only(Routes::RULE_KEYS)?;
    let prefix = r.string("prefix")?.unwrap_or_else(|| "/".to_owned());
    if !prefix.starts_with('/') {
        return err(&r.key("prefix"), "must start with '/'");
    }
    let hosts = match r.strings("hosts")? {
        None => Vec::new(),
        Some(v) if v.is_empty() => {
            return err(&r.key("hosts"), "must not be empty (omit it for any host)")
        }
        Some(v) => v
            .iter()
            .enumerate()
            .map(|(i, h)| {
                HostPattern::parse(h).map_or_else(
                    || {
                        err(
                            &format!("{}[{i}]", r.key("hosts")),
                            format!("{h:?} is not a host name or *.suffix (no port)"),
                        )
                    },
                    Ok,
                )
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let methods = match r.strings("methods")? {
        None => Vec::new(),
        Some(v) if v.is_empty() => {
            return err(
                &r.key("methods"),
                "must not be empty (omit it for any method)",
            )
        }
        Some(v) => {
            for (i, m) in v.iter().enumerate() {
                let token = !m.is_empty()
                    && m.len() <= 32
                    && m.bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
                if !token {
                    return err(
                        &format!("{}[{i}]", r.key("methods")),
                        "must be an upper-case method name such as GET",
                    );
                }
            }
            v
        }
    };
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
        .unwrap_or(default.policy);
    let require_bound_token = r.bool("require_bound_token")?;
    if require_bound_token.is_some() && policy != RoutePolicy::Required {
        return err(
            &r.key("require_bound_token"),
            "only applies to policy \"required\"",
        );
    }
    if policy == RoutePolicy::Off {
        if let Some(key) = OVERRIDE_KEYS.iter().find(|k| r.has(k)) {
            return err(&r.key(key), "has no effect on a route with policy \"off\"");
        }
    }
    let nonce = r.bool("nonce")?;
    if nonce == Some(true) && !nonce_configured {
        return err(
            &r.key("nonce"),
            "needs the top-level \"nonce\" section (its secret signs the nonces)",
        );
    }
    let proof = ProofPolicy {
        algorithms: match r.has("algorithms") {
            true => crate::config::read_algorithms(r)?,
            false => default.proof.algorithms,
        },
        proof_ttl: r.int_in("proof_ttl", default.proof.proof_ttl, 1, 86_400)?,
        clock_skew: r.int_in("clock_skew", default.proof.clock_skew, 0, 3_600)?,
        max_proof_bytes: default.proof.max_proof_bytes,
        require_ath: r.bool("require_ath")?.unwrap_or(default.proof.require_ath),
    };
    let public_origin = match crate::config::read_origin(r, "public_origin")? {
        Some(o) => Some(o),
        None => default.public_origin.clone(),
    };
    let resource = match crate::config::read_origin(r, "resource")? {
        Some(o) => Some(o),
        None => default.resource.clone(),
    };
    Ok(RouteRule {
        hosts,
        methods,
        prefix,
        settings: RouteSettings {
            policy,
            shadow: r.bool("shadow")?.unwrap_or(default.shadow),
            require_bound_token: require_bound_token.unwrap_or(default.require_bound_token),
            proof,
            nonce: nonce.unwrap_or(default.nonce),
            public_origin,
            resource,
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::routes::RoutePolicy;

    fn cfg(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn hosts_methods_and_prefixes() {
        let c = cfg(r#"{"required": true, "routes": [
            {"hosts": ["a.example"], "methods": ["GET"], "prefix": "/docs", "policy": "off"},
            {"hosts": ["*.b.example"], "algorithms": ["ES256"], "proof_ttl": 30},
            {"prefix": "/public", "policy": "optional"}]}"#);
        let r = &c.routes;
        assert_eq!(
            r.lookup("a.example:8080", "GET", "/docs/x").policy,
            RoutePolicy::Off
        );
        assert_eq!(
            r.lookup("A.EXAMPLE", "GET", "/docs").policy,
            RoutePolicy::Off
        );
        assert_eq!(
            r.lookup("a.example", "POST", "/docs").policy,
            RoutePolicy::Required
        );
        assert_eq!(
            r.lookup("c.example", "GET", "/docs").policy,
            RoutePolicy::Required
        );
        let b = r.lookup("x.b.example", "POST", "/anything");
        assert_eq!(b.policy, RoutePolicy::Required);
        assert_eq!(b.settings.proof.algorithms.names(), "ES256");
        assert_eq!(b.settings.proof.proof_ttl, 30);
        assert_eq!(
            r.lookup("b.example", "GET", "/x").settings.proof.proof_ttl,
            120
        );
        assert_eq!(
            r.lookup("z", "GET", "/public/1").policy,
            RoutePolicy::Optional
        );
    }

    #[test]
    fn unreachable_rules_are_refused_and_named() {
        for (json, key) in [
            (
                r#"[{"prefix": "/a"}, {"prefix": "/a/b", "policy": "off"}]"#,
                "routes[1]",
            ),
            (
                r#"[{"prefix": "/a", "methods": ["GET", "POST"]}, {"prefix": "/a", "methods": ["GET"], "policy": "off"}]"#,
                "routes[1]",
            ),
            (
                r#"[{"hosts": ["*.x.example"]}, {"hosts": ["a.x.example"], "prefix": "/z"}]"#,
                "routes[1]",
            ),
            (
                r#"[{"policy": "off", "prefix": "/h"}, {"prefix": "/q"}, {"prefix": "/h", "hosts": ["a"]}]"#,
                "routes[2]",
            ),
        ] {
            let e = Config::parse(format!(r#"{{"routes": {json}}}"#).as_bytes()).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
            assert!(e.message.contains("can never match: routes["), "{e}");
        }
        // narrower first, wider after: both reachable
        for json in [
            r#"[{"prefix": "/a/b"}, {"prefix": "/a"}]"#,
            r#"[{"prefix": "/a", "methods": ["GET"]}, {"prefix": "/a"}]"#,
            r#"[{"prefix": "/a", "hosts": ["a"]}, {"prefix": "/a", "hosts": ["*.a"]}]"#,
            r#"[{"prefix": "/a", "hosts": ["a"]}, {"prefix": "/a", "methods": ["GET"]}]"#,
        ] {
            Config::parse(format!(r#"{{"routes": {json}}}"#).as_bytes()).unwrap();
        }
    }

    #[test]
    fn rule_errors_name_the_key() {
        for (json, key) in [
            (r#"[{"hosts": ["a:80"]}]"#, "routes[0].hosts[0]"),
            (r#"[{"hosts": []}]"#, "routes[0].hosts"),
            (r#"[{"methods": ["get"]}]"#, "routes[0].methods[0]"),
            (r#"[{"nonce": true}]"#, "routes[0].nonce"),
            (
                r#"[{"policy": "off", "algorithms": ["EdDSA"]}]"#,
                "routes[0].algorithms",
            ),
            (r#"[{"algorithms": []}]"#, "routes[0].algorithms"),
            (r#"[{"proof_ttl": 0}]"#, "routes[0].proof_ttl"),
            (
                r#"[{"public_origin": "https://a/x?y"}]"#,
                "routes[0].public_origin",
            ),
            (r#"[{"prefix": "x"}]"#, "routes[0].prefix"),
        ] {
            let e = Config::parse(format!(r#"{{"routes": {json}}}"#).as_bytes()).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        }
    }

    #[test]
    fn ambiguous_paths_get_the_top_level_settings_and_required() {
        let c = cfg(
            r#"{"routes": [{"prefix": "/admin", "algorithms": ["ES256"]},
                                    {"prefix": "/", "policy": "off"}]}"#,
        );
        let m = c.routes.lookup("h", "GET", "/x%2F..%2Fadmin");
        assert_eq!(m.policy, RoutePolicy::Required);
        assert_eq!(m.settings.proof.algorithms.names(), "EdDSA ES256 RS256");
        assert_eq!(
            c.routes.lookup("h", "GET", "/x%41").policy,
            RoutePolicy::Off
        );
    }
}
