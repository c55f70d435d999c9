//! Where a request came from as the client saw it: the public origin a route is served under
//! (with an optional path prefix a front proxy strips), and host patterns of route rules.

use crate::htu;

/// A configured `public_origin`: `scheme://authority` plus an optional path prefix. The client
/// signed `base() + <the path this proxy sees>` (README "Many APIs behind one gateway").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    /// Normalized `scheme://authority`, no trailing `/`.
    pub origin: String,
    /// Empty, or `/seg[/seg…]` without a trailing `/`.
    pub prefix: String,
    /// `origin + prefix`, built once.
    base: String,
}

impl PublicOrigin {
    /// Parses `https://api.example.com` or `https://api.example.com/svc2` (one trailing `/`
    /// allowed). The prefix is plain path segments: no query, fragment, percent-escape, empty,
    /// `.` or `..` segment — it is glued in front of the request path, so it must not need
    /// normalizing itself.
    pub fn parse(value: &str) -> Option<PublicOrigin> {
        let (scheme, rest) = value.split_once("://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (rest.get(..i)?, rest.get(i..)?),
            None => (rest, ""),
        };
        if authority.is_empty() || value.contains(['?', '#', '%', '\\']) {
            return None;
        }
        let origin = htu::normalize(&format!("{scheme}://{authority}"))?;
        let origin = origin.trim_end_matches('/').to_owned();
        let path = path.strip_suffix('/').unwrap_or(path);
        let segments_ok = path.is_empty()
            || path.split('/').skip(1).all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b))
            });
        if !segments_ok || (!path.is_empty() && !path.starts_with('/')) {
            return None;
        }
        Some(PublicOrigin {
            base: format!("{origin}{path}"),
            origin,
            prefix: path.to_owned(),
        })
    }

    /// `origin + prefix`: what the request path is appended to for `htu`.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// A `routes[].hosts` entry: an exact host, or `*.suffix` (any name ending in `.suffix`, at any
/// depth, but not `suffix` itself). Stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot: `.example.com`.
    Suffix(String),
}

impl HostPattern {
    pub fn parse(value: &str) -> Option<HostPattern> {
        let v = value.to_ascii_lowercase();
        let plain = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && !s.ends_with('.')
                && !s.contains("..")
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        match v.strip_prefix("*.") {
            Some(suffix) if plain(suffix) => Some(HostPattern::Suffix(format!(".{suffix}"))),
            Some(_) => None,
            // IPv6 literals in brackets are exact hosts too
            None if plain(&v) => Some(HostPattern::Exact(v)),
            None if v.len() > 2
                && v.starts_with('[')
                && v.ends_with(']')
                && v.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"[]:.".contains(&b)) =>
            {
                Some(HostPattern::Exact(v))
            }
            None => None,
        }
    }

    /// Whether `host` (port already removed, any case) matches. No allocation.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
        }
    }

    /// Whether every host this pattern matches is also matched by `other`.
    pub fn covered_by(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (_, HostPattern::Exact(o)) => matches!(self, HostPattern::Exact(s) if s == o),
            (HostPattern::Exact(s), HostPattern::Suffix(_)) => other.matches(s),
            (HostPattern::Suffix(s), HostPattern::Suffix(o)) => s.ends_with(o.as_str()),
        }
    }

    pub fn as_config(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Suffix(s) => format!("*{s}"),
        }
    }
}

/// The host of an `:authority` (`host[:port]`, `[v6][:port]`), without the port and without
/// one trailing dot. Borrowed: no allocation per request.
pub fn authority_host(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => authority.get(..=i).unwrap_or(authority),
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_origins() {
        let o = PublicOrigin::parse("HTTPS://API.example.com:443/svc2/").unwrap();
        assert_eq!(o.origin, "https://api.example.com");
        assert_eq!(o.prefix, "/svc2");
        assert_eq!(o.base(), "https://api.example.com/svc2");
        let o = PublicOrigin::parse("http://a.example:8080").unwrap();
        assert_eq!(o.base(), "http://a.example:8080");
        assert_eq!(o.prefix, "");
        let o = PublicOrigin::parse("https://a.example/").unwrap();
        assert_eq!(o.base(), "https://a.example");
        for bad in [
            "ftp://a.example",
            "https://",
            "https://a.example/x?y",
            "https://a.example/x#y",
            "https://a.example//x",
            "https://a.example/./x",
            "https://a.example/x/../y",
            "https://a.example/%2e",
            "https://a.example/a b",
            "https://u@a.example",
            "a.example/x",
        ] {
            assert_eq!(PublicOrigin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_patterns() {
        let exact = HostPattern::parse("API.example.com").unwrap();
        assert!(exact.matches("api.EXAMPLE.com"));
        assert!(!exact.matches("x.api.example.com"));
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com") && wild.matches("a.b.Example.com"));
        assert!(!wild.matches("example.com") && !wild.matches("xexample.com"));
        assert!(exact.covered_by(&wild));
        assert!(!wild.covered_by(&exact));
        assert!(HostPattern::parse("*.b.example.com")
            .unwrap()
            .covered_by(&wild));
        assert!(!wild.covered_by(&HostPattern::parse("*.b.example.com").unwrap()));
        for bad in ["", "*", "*.", "a..b", ".a", "a b", "a:80", "*.*.a", "a/b"] {
            assert_eq!(HostPattern::parse(bad), None, "{bad}");
        }
        assert!(HostPattern::parse("[::1]").unwrap().matches("[::1]"));
    }

    #[test]
    fn authority_hosts() {
        assert_eq!(authority_host("a.example:8080"), "a.example");
        assert_eq!(authority_host("a.example."), "a.example");
        assert_eq!(authority_host("a.example"), "a.example");
        assert_eq!(authority_host("[::1]:80"), "[::1]");
        assert_eq!(authority_host("[::1]"), "[::1]");
        assert_eq!(authority_host("a:b"), "a:b");
        assert_eq!(authority_host(""), "");
    }
}
