//! Route rules (README `routes`): which policy a request path gets. Rules match the
//! normalized path ([`crate::htu::route_path`]), the one the upstream resolves.

use crate::config::reader::{err, ConfigError, Section};
use crate::json::Json;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub prefix: String,
    pub policy: RoutePolicy,
}

/// The rules, in order, and the policy for paths no rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub rules: Vec<RouteRule>,
    pub default: RoutePolicy,
}

impl Routes {
    /// The keys of one rule (README configuration table, `routes[].*`).
    pub const RULE_KEYS: &'static [&'static str] = &["prefix", "policy"];

    /// Reads `routes` from the top-level section; `required` picks the default policy.
    pub fn read(root: &Section<'_>, required: bool) -> Result<Routes, ConfigError> {
        let default = if required {
            RoutePolicy::Required
        } else {
            RoutePolicy::Optional
        };
        let items = match root.obj.get("routes") {
            None => {
                return Ok(Routes {
                    rules: Vec::new(),
                    default,
                })
            }
            Some(Json::Array(items)) => items,
            Some(_) => {
                return err(
                    "routes",
                    "must be an array of {\"prefix\", \"policy\"} rules",
                )
            }
        };
        let mut rules = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("routes[{i}]");
            let Json::Object(obj) = item else {
                return err(
                    &path,
                    "must be an object {\"prefix\": ..., \"policy\": ...}",
                );
            };
            let r = Section { obj, path };
            r.only(Self::RULE_KEYS)?;
            let prefix = r.required_string("prefix")?;
            if !prefix.starts_with('/') {
                return err(&r.key("prefix"), "must start with '/'");
            }
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
                .map_or_else(|| err(&r.key("policy"), "is required"), Ok)?;
            rules.push(RouteRule { prefix, policy });
        }
        Ok(Routes { rules, default })
    }

    /// The policy for a request path (`:path`, query allowed): the first rule whose prefix
    /// starts the normalized path, else the default. When decoding `%2F`/`%5C`/`\\` as `/`
    /// would pick another policy, or the path cannot be normalized, the request gets
    /// `required`: the filter cannot know which of the two paths the upstream serves.
    pub fn policy(&self, path: &str) -> RoutePolicy {
        let Some(plain) = crate::htu::route_path(path, false) else {
            return RoutePolicy::Required;
        };
        let policy = self.rule_policy(&plain);
        // Only a `%` or `\\` can decode to another `/`: without one, the second normalization
        // (an allocation per request) could only give the same path.
        if !path.contains(['%', '\\']) {
            return policy;
        }
        match crate::htu::route_path(path, true) {
            Some(decoded) if decoded == plain || self.rule_policy(&decoded) == policy => policy,
            _ => RoutePolicy::Required,
        }
    }

    fn rule_policy(&self, normalized: &str) -> RoutePolicy {
        self.rules
            .iter()
            .find(|r| normalized.starts_with(r.prefix.as_str()))
            .map_or(self.default, |r| r.policy)
    }
}
