//! The per-request decision around the request itself, natively: route policies (proof_only,
//! off) matched on the normalized path, the target URI's sources, header bytes that are not
//! UTF-8, and shadow mode per rule.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/authn.rs"]
mod authn;
mod common;

use authn::*;
use common::TestKey;
use dpop_guard::authn::Decision;
use dpop_guard::reason::DenyReason as R;

#[test]
fn routes_proof_only_and_off() {
    let c = cfg(
        r#"{"required": true, "routes": [{"prefix": "/token", "policy": "proof_only"}, {"prefix": "/health", "policy": "off"}]}"#,
    );
    let k = TestKey::ed25519_n(5);
    assert_eq!(
        run(&c, "/health?x", &["garbage"], &["garbage"], None),
        Decision::Pass
    );
    // Authorization is ignored at the token endpoint (client authentication, not an access token)
    assert!(matches!(
        run(
            &c,
            "/token",
            &[&proof(&k, None, "")],
            &["Basic abc", "Bearer x"],
            None
        ),
        Decision::Allow { .. }
    ));
    assert_eq!(denied(run(&c, "/token", &[], &[], None)), R::ProofMissing);
}

#[test]
fn target_uri_sources() {
    use dpop_guard::authn::target_uri;
    let plain = cfg("{}");
    assert_eq!(
        target_uri(&plain, "GET", Some("https"), Some("http"), "h:8443", "/p"),
        "https://h:8443/p"
    );
    assert_eq!(
        target_uri(&plain, "GET", None, None, "h", "/p"),
        "http://h/p"
    );
    let xfp = cfg(r#"{"trust_forwarded_proto": true}"#);
    assert_eq!(
        target_uri(&xfp, "GET", Some("http"), Some("HTTPS, http"), "h", "/p"),
        "https://h/p"
    );
    assert_eq!(
        target_uri(&xfp, "GET", Some("http"), None, "h", "/p"),
        "http://h/p"
    );
    let origin =
        cfg(r#"{"public_origin": "https://api.example.com", "trust_forwarded_proto": true}"#);
    assert_eq!(
        target_uri(&origin, "GET", Some("http"), Some("http"), "10.0.0.1", "/p"),
        "https://api.example.com/p"
    );
}

/// Issue 11, defect 3: routes are matched on the normalized path.
#[test]
fn routes_match_the_normalized_path() {
    let c = cfg(r#"{"required": true, "routes": [
            {"prefix": "/public", "policy": "off"},
            {"prefix": "/opt", "policy": "optional"},
            {"prefix": "/token", "policy": "proof_only"}]}"#);
    for path in [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/%2E%2E/api/x",
        "/opt/../api/x",
        "/token/../api/x",
        "//public/../api/x",
        "/public/./../api/x",
        "/public/..%2Fapi/x",
        "/public%2F..%2Fapi/x",
        "/public\\..\\api/x",
        "/public/%zz",
    ] {
        assert_eq!(
            denied(run(&c, path, &[], &[], None)),
            R::ProofMissing,
            "{path}"
        );
    }
    assert_eq!(run(&c, "/public/x", &[], &[], None), Decision::Pass);
    assert_eq!(
        run(&c, "/public/a/../b?x=/api", &[], &[], None),
        Decision::Pass
    );
    // a stolen bound token with the attacker's proof on a proof_only route in disguise
    let victim = TestKey::ed25519_n(22);
    let attacker = TestKey::ed25519_n(23);
    let stolen = bound(&victim);
    let d = denied(run(
        &c,
        "/token/../api/x",
        &[&proof(&attacker, Some(&stolen), "")],
        &[&format!("Bearer {stolen}")],
        None,
    ));
    assert_eq!(d, R::BindingMismatch);
}

/// Issue 11, defect 1: header bytes that are not UTF-8, through the whole pure pipeline.
#[test]
fn non_utf8_header_values() {
    use dpop_guard::authn::decide_headers;
    let c = cfg(r#"{"required": true, "public_origin": "https://api.example.com"}"#);
    let k = TestKey::ed25519_n(24);
    let p = proof(&k, None, "");
    let base: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":path", b"/api/x"),
        (b":authority", b"api.example.com"),
    ];
    let with = |extra: &[(&'static [u8], &'static [u8])], dpop: Option<&[u8]>| {
        let mut h = base.clone();
        h.extend_from_slice(extra);
        if let Some(d) = dpop {
            h.push((b"dpop", d));
        }
        decide_headers(&c, &h, None, NOW)
    };
    assert!(matches!(
        with(&[(b"x-anything", b"\xff\xfe")], Some(p.as_bytes())),
        Decision::Allow { .. }
    ));
    assert_eq!(denied(with(&[], Some(b"eyJ\xff.a.b"))), R::ProofMalformed);
    assert_eq!(
        denied(with(
            &[(b"authorization", b"Bearer a\xff")],
            Some(p.as_bytes())
        )),
        R::AuthorizationMalformed
    );
}

#[test]
fn shadow_mode_comes_from_the_rule_else_the_top_level() {
    use dpop_guard::authn::check_gathered;
    use dpop_guard::headers::gather;
    use dpop_guard::proof::KeyCache;
    let c = cfg(r#"{"required": true, "shadow": true, "routes": [
        {"prefix": "/enforced/", "policy": "required", "shadow": false},
        {"prefix": "/off", "policy": "off"}]}"#);
    let check = |path: &str| {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", path.as_bytes()),
            (b":authority", b"api.example"),
            (b":scheme", b"https"),
        ];
        let h = gather(&pairs, "x-dpop-jkt");
        check_gathered(&c, &h, None, None, None, NOW, &mut KeyCache::disabled())
    };
    let shadowed = check("/api");
    assert!(shadowed.shadow);
    assert_eq!(shadowed.decision, Decision::Deny(R::ProofMissing));
    let enforced = check("/enforced/x");
    assert!(!enforced.shadow);
    assert_eq!(enforced.decision, Decision::Deny(R::ProofMissing));
    // an ambiguous path (two readings, two policies) is required under the top-level shadow
    let ambiguous = check("/enforced%2Fx");
    assert!(ambiguous.shadow);
    assert_eq!(check("/off/x").decision, Decision::Pass);
    let disabled = cfg(r#"{"enabled": false, "shadow": true}"#);
    let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/x")];
    let h = gather(&pairs, "x-dpop-jkt");
    let d = check_gathered(
        &disabled,
        &h,
        None,
        None,
        None,
        NOW,
        &mut KeyCache::disabled(),
    );
    assert_eq!((d.decision, d.shadow), (Decision::Pass, false));
}
