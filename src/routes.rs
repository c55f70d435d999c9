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
    /// Shadow mode for this rule; `None` takes the top-level `shadow`.
    pub shadow: Option<bool>,
    /// `required` only: must a presented token be DPoP-bound? `None` takes the top level.
    pub require_bound_token: Option<bool>,
}

/// The rules, in order, and the policy for paths no rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub rules: Vec<RouteRule>,
    pub default: RoutePolicy,
    /// Top-level `shadow`: refusals are counted and published but not enforced.
    pub shadow: bool,
    /// Top-level `require_bound_token` (README "Route policies").
    pub require_bound_token: bool,
}

/// What a request path gets: its policy, whether a refusal is only shadowed, and whether a
/// `required` route refuses a presented token that is not DPoP-bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    pub policy: RoutePolicy,
    pub shadow: bool,
    pub require_bound_token: bool,
}

impl Routes {
    /// The keys of one rule (README configuration table, `routes[].*`).
    pub const RULE_KEYS: &'static [&'static str] =
        &["prefix", "policy", "shadow", "require_bound_token"];

    /// Reads `routes` from the top-level section; `required` picks the default policy, `shadow`
    /// and `require_bound_token` the defaults of the rules.
    pub fn read(
        root: &Section<'_>,
        required: bool,
        shadow: bool,
        require_bound_token: bool,
    ) -> Result<Routes, ConfigError> {
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
                    shadow,
                    require_bound_token,
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
            let rule_shadow = r.bool("shadow")?;
            let rule_bound = r.bool("require_bound_token")?;
            if rule_bound.is_some() && policy != RoutePolicy::Required {
                return err(
                    &r.key("require_bound_token"),
                    "only applies to policy \"required\"",
                );
            }
            rules.push(RouteRule {
                prefix,
                policy,
                shadow: rule_shadow,
                require_bound_token: rule_bound,
            });
        }
        Ok(Routes {
            rules,
            default,
            shadow,
            require_bound_token,
        })
    }

    /// The policy for a request path (`:path`, query allowed): the first rule whose prefix
    /// starts the normalized path, else the default. When decoding `%2F`/`%5C`/`\\` as `/`
    /// would pick another policy, or the path cannot be normalized, the request gets
    /// `required`: the filter cannot know which of the two paths the upstream serves.
    pub fn policy(&self, path: &str) -> RoutePolicy {
        self.lookup(path).policy
    }

    /// [`Routes::policy`] and the shadow mode of the rule that gave it. When the two readings
    /// of an ambiguous path disagree, the request gets `required` under the top-level
    /// `shadow`: no rule can claim it.
    pub fn lookup(&self, path: &str) -> RouteMatch {
        let ambiguous = RouteMatch {
            policy: RoutePolicy::Required,
            shadow: self.shadow,
            require_bound_token: self.require_bound_token,
        };
        let Some(plain) = crate::htu::route_path(path, false) else {
            return ambiguous;
        };
        let found = self.rule_match(&plain);
        // Only a `%` or `\\` can decode to another `/`: without one, the second normalization
        // (an allocation per request) could only give the same path.
        if !path.contains(['%', '\\']) {
            return found;
        }
        match crate::htu::route_path(path, true) {
            Some(decoded) if decoded == plain || self.rule_match(&decoded) == found => found,
            _ => ambiguous,
        }
    }

    fn rule_match(&self, normalized: &str) -> RouteMatch {
        match self
            .rules
            .iter()
            .find(|r| normalized.starts_with(r.prefix.as_str()))
        {
            Some(r) => RouteMatch {
                policy: r.policy,
                shadow: r.shadow.unwrap_or(self.shadow),
                require_bound_token: r.require_bound_token.unwrap_or(self.require_bound_token),
            },
            None => RouteMatch {
                policy: self.default,
                shadow: self.shadow,
                require_bound_token: self.require_bound_token,
            },
        }
    }
}
