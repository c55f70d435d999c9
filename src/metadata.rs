//! RFC 9728 OAuth 2.0 Protected Resource Metadata (README "Discovery"): the filter answers the
//! well-known document for each route's resource, generated from the settings it enforces, and
//! every 401 challenge points at it (`resource_metadata=`, RFC 9728 §5.1).

use crate::config::reader::{err, ConfigError, Section};
use crate::origin::PublicOrigin;
use crate::routes::{RoutePolicy, RouteSettings, Routes};

pub const DEFAULT_PATH: &str = "/.well-known/oauth-protected-resource";

/// The `resource_metadata` section (its `resource` goes into the route settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConfig {
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Option<Vec<String>>,
    /// Well-known path; the resource's path is appended to it (RFC 9728 §3.1).
    pub path: String,
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > 8
        && s.len() <= 2048
        && s.bytes()
            .all(|b| b > 0x20 && b < 0x7f && b != b'"' && b != b'\\')
}

impl MetadataConfig {
    /// The section's keys (README configuration table, `resource_metadata.*`).
    pub const KEYS: &'static [&'static str] = &[
        "resource",
        "authorization_servers",
        "scopes_supported",
        "path",
    ];

    pub fn read(s: &Section<'_>) -> Result<MetadataConfig, ConfigError> {
        s.only(Self::KEYS)?;
        let servers = match s.strings("authorization_servers")? {
            Some(v) if !v.is_empty() => v,
            _ => {
                return err(
                    &s.key("authorization_servers"),
                    "is required: the issuer URLs of the authorization servers",
                )
            }
        };
        if let Some(i) = servers.iter().position(|u| !is_http_url(u)) {
            return err(
                &format!("{}[{i}]", s.key("authorization_servers")),
                "must be an http(s) URL",
            );
        }
        let scopes = s.strings("scopes_supported")?;
        if let Some(list) = &scopes {
            if let Some(i) = list.iter().position(|x| {
                x.is_empty()
                    || !x
                        .bytes()
                        .all(|b| b > 0x20 && b < 0x7f && b != b'"' && b != b'\\')
            }) {
                return err(
                    &format!("{}[{i}]", s.key("scopes_supported")),
                    "must be a scope token (printable ASCII, no space, quote or backslash)",
                );
            }
        }
        let path = s.string("path")?.unwrap_or_else(|| DEFAULT_PATH.to_owned());
        let path_ok = path.len() > 1
            && path.starts_with('/')
            && !path.ends_with('/')
            && !path.contains("//")
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
        if !path_ok {
            return err(
                &s.key("path"),
                "must be a plain absolute path without a trailing '/'",
            );
        }
        Ok(MetadataConfig {
            authorization_servers: servers,
            scopes_supported: scopes,
            path,
        })
    }
}

/// The resource a route protects: the configured `resource`, else its public origin (with
/// prefix), else the request's own origin (`request_origin`, `scheme://authority`).
fn resource_of(settings: &RouteSettings, request_origin: &str) -> Option<PublicOrigin> {
    match (&settings.resource, &settings.public_origin) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(o)) => Some(o.clone()),
        (None, None) => PublicOrigin::parse(request_origin),
    }
}

/// The metadata URL for requests checked with `settings` (the `resource_metadata=` parameter).
pub fn url(md: &MetadataConfig, settings: &RouteSettings, request_origin: &str) -> Option<String> {
    let r = resource_of(settings, request_origin)?;
    // It goes into a quoted challenge parameter: nothing that could end the quotes.
    Some(format!("{}{}{}", r.origin, md.path, r.prefix)).filter(|u| is_http_url(u))
}

/// The document for a `GET` of `path` (no query), when it is the well-known URL of a route's
/// resource: the well-known path plus a resource path `S` names the route that serves `S` on
/// this host, if that route's resource has path `S`. `None`: not a metadata request.
pub fn document(
    md: &MetadataConfig,
    routes: &Routes,
    authority: &str,
    request_origin: &str,
    path: &str,
) -> Option<String> {
    let suffix = path.strip_prefix(md.path.as_str())?;
    if !(suffix.is_empty() || suffix.starts_with('/')) {
        return None;
    }
    let served = if suffix.is_empty() { "/" } else { suffix };
    let route = routes.lookup(authority, "GET", served);
    let resource = resource_of(route.settings, request_origin)?;
    if resource.prefix != suffix {
        return None;
    }
    // Written by hand, not through serde_json::Value (which costs ~50 KiB of wasm); every
    // string goes through the one escaping function.
    let list = |items: &mut dyn Iterator<Item = &str>| -> String {
        let quoted: Vec<String> = items.map(json_str).collect();
        format!("[{}]", quoted.join(","))
    };
    let mut doc = format!(
        "{{\"resource\":{},\"authorization_servers\":{}",
        json_str(resource.base()),
        list(&mut md.authorization_servers.iter().map(String::as_str)),
    );
    if let Some(scopes) = &md.scopes_supported {
        doc.push_str(&format!(
            ",\"scopes_supported\":{}",
            list(&mut scopes.iter().map(String::as_str))
        ));
    }
    doc.push_str(&format!(
        ",\"bearer_methods_supported\":[\"header\"],\"dpop_signing_alg_values_supported\":{},\"dpop_bound_access_tokens_required\":{}}}",
        list(&mut route.settings.proof.algorithms.iter().map(|a| a.name())),
        route.policy == RoutePolicy::Required,
    ));
    Some(doc)
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use serde_json::Value;

    fn doc(c: &Config, authority: &str, path: &str) -> Option<Value> {
        let md = c.resource_metadata.as_ref().unwrap();
        super::document(
            md,
            &c.routes,
            authority,
            &format!("http://{authority}"),
            path,
        )
        .map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn documents_per_host_and_prefix() {
        let c = Config::parse(
            br#"{"required": true,
                 "resource_metadata": {"authorization_servers": ["https://as.example"], "scopes_supported": ["read"]},
                 "routes": [
                   {"hosts": ["a.example"], "public_origin": "https://a.example/svc2", "algorithms": ["EdDSA"]},
                   {"hosts": ["b.example"], "policy": "optional", "algorithms": ["ES256"]}]}"#,
        )
        .unwrap();
        let a = doc(
            &c,
            "a.example",
            "/.well-known/oauth-protected-resource/svc2",
        )
        .unwrap();
        assert_eq!(a["resource"], "https://a.example/svc2");
        assert_eq!(
            a["dpop_signing_alg_values_supported"],
            serde_json::json!(["EdDSA"])
        );
        assert_eq!(a["dpop_bound_access_tokens_required"], true);
        assert_eq!(
            a["authorization_servers"],
            serde_json::json!(["https://as.example"])
        );
        assert_eq!(a["scopes_supported"], serde_json::json!(["read"]));
        assert_eq!(a["bearer_methods_supported"], serde_json::json!(["header"]));
        // a's resource has a path: the bare well-known URL is not a's
        assert_eq!(
            doc(&c, "a.example", "/.well-known/oauth-protected-resource"),
            None
        );
        let b = doc(
            &c,
            "b.example:8080",
            "/.well-known/oauth-protected-resource",
        )
        .unwrap();
        assert_eq!(b["resource"], "http://b.example:8080");
        assert_eq!(b["dpop_bound_access_tokens_required"], false);
        assert_eq!(
            doc(&c, "b.example", "/.well-known/oauth-protected-resourcex"),
            None
        );
        assert_eq!(doc(&c, "b.example", "/other"), None);
        let md = c.resource_metadata.as_ref().unwrap();
        let a_route = c.routes.lookup("a.example", "GET", "/x");
        assert_eq!(
            super::url(md, a_route.settings, "http://a.example").as_deref(),
            Some("https://a.example/.well-known/oauth-protected-resource/svc2")
        );
    }

    #[test]
    fn errors_name_the_key() {
        for (json, key) in [
            (r#"{}"#, "resource_metadata.authorization_servers"),
            (
                r#"{"authorization_servers": ["as"]}"#,
                "resource_metadata.authorization_servers[0]",
            ),
            (
                r#"{"authorization_servers": ["https://as"], "path": "/x/"}"#,
                "resource_metadata.path",
            ),
            (
                r#"{"authorization_servers": ["https://as"], "resource": "https://r/x?q"}"#,
                "resource_metadata.resource",
            ),
            (
                r#"{"authorization_servers": ["https://as"], "scopes_supported": ["a b"]}"#,
                "resource_metadata.scopes_supported[0]",
            ),
        ] {
            let e = Config::parse(format!(r#"{{"resource_metadata": {json}}}"#).as_bytes())
                .unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        }
    }
}
