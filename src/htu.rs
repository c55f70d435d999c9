//! `htu` comparison (RFC 9449 §4.3 check 9): the claim and the request URI are compared without
//! query and fragment, after syntax-based (RFC 3986 §6.2.2) and scheme-based (§6.2.3)
//! normalization: case of scheme and host, default port, percent-encoding case and unreserved
//! characters, dot segments, empty path as `/`. `http` and `https` never match each other.

/// Upper bound on a URI we are willing to normalize (Envoy caps `:path` at 60 KiB by default;
/// proofs are capped well below that by `max_proof_bytes`).
pub const MAX_URI_LEN: usize = 16 * 1024;

/// Normalizes an absolute `http`/`https` URI, dropping query and fragment. `None` for anything
/// that is not such a URI (relative, userinfo, bad port, bad percent-encoding, raw non-ASCII).
pub fn normalize(uri: &str) -> Option<String> {
    if uri.len() > MAX_URI_LEN {
        return None;
    }
    let (scheme, rest) = uri.split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let rest = rest.strip_prefix("//")?;
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = rest.get(..end)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, ""),
    };
    let authority = normalize_authority(authority, default_port)?;
    let path = normalize_path(path)?;
    Some(format!("{scheme}://{authority}{path}"))
}

fn normalize_authority(authority: &str, default_port: u16) -> Option<String> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return None;
        }
        let host = normalize_pct(host)?.to_ascii_lowercase();
        if host.bytes().any(|b| matches!(b, b'/' | b'[' | b']' | b':')) {
            return None;
        }
        (host, port)
    };
    match port {
        None | Some("") => Some(host),
        Some(p) => {
            if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port: u16 = p.parse().ok()?;
            if port == default_port {
                Some(host)
            } else {
                Some(format!("{host}:{port}"))
            }
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes percent-encoded unreserved characters and upper-cases the hex of the rest.
fn normalize_pct(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b <= 0x20 || b >= 0x7f {
            return None;
        }
        if b == b'%' {
            let hi = (*bytes.get(i + 1)? as char).to_digit(16)?;
            let lo = (*bytes.get(i + 2)? as char).to_digit(16)?;
            let v = (hi * 16 + lo) as u8;
            if is_unreserved(v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&format!("{v:02X}"));
            }
            i += 3;
        } else {
            out.push(b as char);
            i += 1;
        }
    }
    Some(out)
}

fn normalize_path(path: &str) -> Option<String> {
    let path = normalize_pct(path)?;
    let path = remove_dot_segments(&path);
    Some(if path.is_empty() {
        "/".to_owned()
    } else {
        path
    })
}

/// The path that route rules are matched on: the request path (no query) as an upstream most
/// likely resolves it — percent-encoded unreserved characters decoded, runs of `/` merged, dot
/// segments removed. With `decode_slashes`, `%2F`, `%5C` and `\\` also count as `/` (some
/// servers decode them). `None` when the path is not one we can normalize (bad
/// percent-encoding, control or non-ASCII bytes, over [`MAX_URI_LEN`]).
pub fn route_path(path: &str, decode_slashes: bool) -> Option<String> {
    if path.len() > MAX_URI_LEN {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let decoded;
    let path = if decode_slashes {
        decoded = decode_slash_escapes(path);
        decoded.as_str()
    } else {
        path
    };
    let path = normalize_pct(path)?;
    let mut merged = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        merged.push('/');
    }
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    let out = remove_dot_segments(&merged);
    Some(if out.is_empty() { "/".to_owned() } else { out })
}

/// `%2F`, `%5C` (any case) and `\\` to `/`.
fn decode_slash_escapes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        let esc = rest
            .get(..3)
            .filter(|e| e.eq_ignore_ascii_case("%2f") || e.eq_ignore_ascii_case("%5c"));
        if esc.is_some() {
            out.push('/');
            rest = rest.get(3..).unwrap_or_default();
        } else {
            out.push(if c == '\\' { '/' } else { c });
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
        }
    }
    out
}

/// RFC 3986 §5.2.4, on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut input = path;
    while !input.is_empty() {
        if let Some(r) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = r;
        } else if input.starts_with("/./") {
            input = input.get(2..).unwrap_or_default();
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = input.get(3..).unwrap_or_default();
            out.pop();
        } else if input == "/.." {
            input = "/";
            out.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            // move the first segment (with its leading '/') to the output
            let start = usize::from(input.starts_with('/'));
            let end = input
                .get(start..)
                .and_then(|s| s.find('/'))
                .map_or(input.len(), |i| i + start);
            let Some((seg, rest)) = input.split_at_checked(end) else {
                break;
            };
            out.push(seg);
            input = rest;
        }
    }
    out.concat()
}

/// Whether the proof's `htu` claim designates the request URI.
pub fn matches(claim: &str, request_uri: &str) -> Option<bool> {
    let c = normalize(claim)?;
    let r = normalize(request_uri)?;
    Some(c == r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        let cases = [
            (
                "https://server.example.com/token",
                "https://server.example.com/token",
            ),
            (
                "HTTPS://Server.Example.COM:443/token",
                "https://server.example.com/token",
            ),
            ("http://a.b:80", "http://a.b/"),
            ("http://a.b:8080/x?y=1#f", "http://a.b:8080/x"),
            ("http://a.b:08080/x", "http://a.b:8080/x"),
            ("https://a.b/%7euser/%2fx%2F", "https://a.b/~user/%2Fx%2F"),
            ("https://a.b/a/./b/../c", "https://a.b/a/c"),
            ("https://a.b/../../c", "https://a.b/c"),
            ("https://a.b/a/..", "https://a.b/"),
            ("https://a.b/a/b/..", "https://a.b/a/"),
            ("https://a.b?q", "https://a.b/"),
            ("https://[::1]:443/", "https://[::1]/"),
            ("https://[FE80::1]:8443/x", "https://[fe80::1]:8443/x"),
            ("https://host:/p", "https://host/p"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "/relative",
            "ftp://a.b/",
            "https:a.b/x",
            "https://user@a.b/",
            "https://a.b:99999/",
            "https://a.b:x/",
            "https://a.b/%zz",
            "https://a.b/%4",
            "https://a.b/ x",
            "https://a.b/é",
            "https:///x",
            "https://[zz]/",
            "",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn route_paths() {
        let cases = [
            ("/api/x", false, "/api/x"),
            ("/public/../api/x", false, "/api/x"),
            ("/public/%2e%2e/api/x", false, "/api/x"),
            ("/public/%2E%2E/api/x?q=/public", false, "/api/x"),
            ("//public/../api/x", false, "/api/x"),
            ("/public//../api/x", false, "/api/x"),
            ("/public/./../api/x", false, "/api/x"),
            ("/public%2F..%2Fapi/x", false, "/public%2F..%2Fapi/x"),
            ("/public%2F..%2Fapi/x", true, "/api/x"),
            ("/public\\..\\api/x", true, "/api/x"),
            ("/public/..%5capi/x", true, "/api/x"),
            ("", false, "/"),
            ("api", false, "/api"),
            ("/%7Euser", false, "/~user"),
        ];
        for (input, decode, want) in cases {
            assert_eq!(route_path(input, decode).as_deref(), Some(want), "{input}");
        }
        assert_eq!(route_path("/a%zz", false), None);
        assert_eq!(route_path("/a b", false), None);
    }

    #[test]
    fn http_and_https_differ() {
        assert_eq!(matches("http://a.b/x", "https://a.b/x"), Some(false));
        assert_eq!(
            matches("https://a.b:443/x?q=1", "https://A.B/x"),
            Some(true)
        );
    }
}
