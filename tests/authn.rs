//! The per-request decision (token extraction, binding, downgrade, routes, nonce), natively.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod common;

use common::{header_for, make_proof, TestKey};
use dpop_guard::authn::{decide, Decision, JwtAuthnView, Request};
use dpop_guard::b64;
use dpop_guard::config::Config;
use dpop_guard::proof::ath_for;
use dpop_guard::reason::DenyReason as R;

const NOW: i64 = 1_700_000_000;
const URI: &str = "https://api.example.com/api/x";

fn proof(key: &TestKey, token: Option<&str>, extra: &str) -> String {
    let ath = token
        .map(|t| format!(r#","ath":"{}""#, ath_for(t)))
        .unwrap_or_default();
    let claims = format!(
        r#"{{"jti":"j-{}","htm":"GET","htu":"{URI}","iat":{NOW}{ath}{extra}}}"#,
        rand_tag()
    );
    make_proof(&header_for("EdDSA", key), &claims, key)
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An unsigned-looking JWT for `upstream` mode (which only decodes the payload).
fn token(payload: &str) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(br#"{"alg":"HS256"}"#),
        b64::encode(payload.as_bytes()),
        b64::encode(b"sig")
    )
}

fn bound(key: &TestKey) -> String {
    token(&format!(r#"{{"sub":"a","cnf":{{"jkt":"{}"}}}}"#, key.jkt()))
}

fn run(
    cfg: &Config,
    path: &str,
    dpop: &[&str],
    authz: &[&str],
    jwt: Option<&JwtAuthnView>,
) -> Decision {
    let dpop: Vec<&[u8]> = dpop.iter().map(|s| s.as_bytes()).collect();
    let authz: Vec<&[u8]> = authz.iter().map(|s| s.as_bytes()).collect();
    let req = Request {
        method: "GET",
        path,
        uri: URI,
        dpop: &dpop,
        authorization: &authz,
        jwt_authn: jwt,
        now: NOW,
    };
    decide(cfg, &req)
}

fn cfg(json: &str) -> Config {
    Config::parse(json.as_bytes()).unwrap()
}

fn denied(d: Decision) -> R {
    match d {
        Decision::Deny(r) => r,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn required_route_needs_a_proof() {
    let c = cfg(r#"{"required": true}"#);
    assert_eq!(denied(run(&c, "/api/x", &[], &[], None)), R::ProofMissing);
    let k = TestKey::ed25519_n(1);
    let p = proof(&k, None, "");
    match run(&c, "/api/x", &[&p], &[], None) {
        Decision::Allow {
            jkt,
            alg,
            replay_key,
            replay_ttl,
        } => {
            // the entry outlives the proof's acceptance window: iat + proof_ttl - now + 1
            assert_eq!(replay_ttl, 121);
            assert_eq!(jkt.as_deref(), Some(k.jkt().as_str()));
            assert_eq!(alg, Some(dpop_guard::jose::Alg::EdDSA));
            assert!(replay_key.unwrap().starts_with("dpop:jti:"));
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(
        denied(run(&c, "/api/x", &[&p, &p], &[], None)),
        R::ProofMultiple
    );
}

#[test]
fn binding_rules() {
    let c = cfg(r#"{"required": true}"#);
    let k = TestKey::ed25519_n(2);
    let other = TestKey::ed25519_n(3);
    let t = bound(&k);
    for scheme in ["Bearer", "DPoP", "dpop"] {
        let authz = format!("{scheme} {t}");
        assert!(matches!(
            run(&c, "/api/x", &[&proof(&k, Some(&t), "")], &[&authz], None),
            Decision::Allow { .. }
        ));
        assert_eq!(
            denied(run(
                &c,
                "/api/x",
                &[&proof(&other, Some(&t), "")],
                &[&authz],
                None
            )),
            R::BindingMismatch
        );
        assert_eq!(
            denied(run(&c, "/api/x", &[], &[&authz], None)),
            R::BoundTokenWithoutProof
        );
    }
    let unbound = token(r#"{"sub":"a"}"#);
    let authz = format!("Bearer {unbound}");
    assert_eq!(
        denied(run(
            &c,
            "/api/x",
            &[&proof(&k, Some(&unbound), "")],
            &[&authz],
            None
        )),
        R::TokenNotBound
    );
    // ath over the exact token bytes
    assert_eq!(
        denied(run(
            &c,
            "/api/x",
            &[&proof(&k, Some("other"), "")],
            &[&format!("Bearer {t}")],
            None
        )),
        R::ProofAthMismatch
    );
    assert_eq!(
        denied(run(
            &c,
            "/api/x",
            &[&proof(&k, None, "")],
            &[&format!("Bearer {t}")],
            None
        )),
        R::ProofAthMissing
    );
}

#[test]
fn optional_route() {
    let c = cfg(r#"{}"#);
    let k = TestKey::ed25519_n(4);
    assert_eq!(
        run(&c, "/x", &[], &[], None),
        Decision::Allow {
            jkt: None,
            alg: None,
            replay_key: None,
            replay_ttl: 0
        }
    );
    // a bound token still needs its proof (downgrade)
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[],
            &[&format!("Bearer {}", bound(&k))],
            None
        )),
        R::BoundTokenWithoutProof
    );
    // unbound Bearer + proof passes an optional route; with the DPoP scheme it must be bound
    let unbound = token(r#"{"sub":"a"}"#);
    let p = proof(&k, Some(&unbound), "");
    assert!(matches!(
        run(&c, "/x", &[&p], &[&format!("Bearer {unbound}")], None),
        Decision::Allow { .. }
    ));
    let p = proof(&k, Some(&unbound), "");
    assert_eq!(
        denied(run(&c, "/x", &[&p], &[&format!("DPoP {unbound}")], None)),
        R::TokenNotBound
    );
    assert_eq!(
        denied(run(&c, "/x", &[], &[&format!("DPoP {unbound}")], None)),
        R::ProofMissing
    );
}

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
fn authorization_defects() {
    let c = cfg(r#"{"required": true}"#);
    assert_eq!(
        denied(run(&c, "/x", &[], &["Bearer a", "Bearer b"], None)),
        R::AuthorizationMultiple
    );
    assert_eq!(
        denied(run(&c, "/x", &[], &["Bearer a b"], None)),
        R::AuthorizationMalformed
    );
    assert_eq!(
        denied(run(&c, "/x", &[], &["Bearer opaque"], None)),
        R::TokenMalformed
    );
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[],
            &[&format!("Bearer {}", token(r#"{"cnf":"x"}"#))],
            None
        )),
        R::TokenCnfInvalid
    );
}

#[test]
fn nonces() {
    let c = cfg(r#"{"required": true, "nonce": {"secret": "0123456789abcdef0123"}}"#);
    let n = dpop_guard::nonce::current(c.nonce.as_ref().unwrap(), NOW);
    let k = TestKey::ed25519_n(6);
    assert_eq!(
        denied(run(&c, "/x", &[&proof(&k, None, "")], &[], None)),
        R::NonceMissing
    );
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[&proof(&k, None, r#","nonce":"stale""#)],
            &[],
            None
        )),
        R::NonceInvalid
    );
    let p = proof(&k, None, &format!(r#","nonce":"{n}""#));
    assert!(matches!(
        run(&c, "/x", &[&p], &[], None),
        Decision::Allow { .. }
    ));
}

#[test]
fn replay_off_gives_no_key() {
    let c = cfg(r#"{"required": true, "replay": {"store": "off"}}"#);
    let k = TestKey::ed25519_n(7);
    assert!(matches!(
        run(&c, "/x", &[&proof(&k, None, "")], &[], None),
        Decision::Allow {
            replay_key: None,
            ..
        }
    ));
}

#[test]
fn jwt_authn_mode() {
    let c = cfg(r#"{"required": true, "access_token": {"verify": "jwt_authn"}}"#);
    let k = TestKey::ed25519_n(8);
    let t = token(r#"{"whatever":1}"#); // the filter does not read the token in this mode
    let authz = format!("Bearer {t}");
    let verified = JwtAuthnView {
        payload_present: true,
        jkt: Some(k.jkt()),
    };
    assert!(matches!(
        run(
            &c,
            "/x",
            &[&proof(&k, Some(&t), "")],
            &[&authz],
            Some(&verified)
        ),
        Decision::Allow { .. }
    ));
    let other = JwtAuthnView {
        payload_present: true,
        jkt: Some(TestKey::ed25519_n(9).jkt()),
    };
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[&proof(&k, Some(&t), "")],
            &[&authz],
            Some(&other)
        )),
        R::BindingMismatch
    );
    let failed = JwtAuthnView::default();
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[&proof(&k, Some(&t), "")],
            &[&authz],
            Some(&failed)
        )),
        R::TokenSignatureInvalid
    );
    assert_eq!(
        denied(run(&c, "/x", &[], &[&authz], Some(&verified))),
        R::BoundTokenWithoutProof
    );
}

#[test]
fn target_uri_sources() {
    use dpop_guard::authn::target_uri;
    let plain = cfg("{}");
    assert_eq!(
        target_uri(&plain, Some("https"), Some("http"), "h:8443", "/p"),
        "https://h:8443/p"
    );
    assert_eq!(target_uri(&plain, None, None, "h", "/p"), "http://h/p");
    let xfp = cfg(r#"{"trust_forwarded_proto": true}"#);
    assert_eq!(
        target_uri(&xfp, Some("http"), Some("HTTPS, http"), "h", "/p"),
        "https://h/p"
    );
    assert_eq!(
        target_uri(&xfp, Some("http"), None, "h", "/p"),
        "http://h/p"
    );
    let origin =
        cfg(r#"{"public_origin": "https://api.example.com", "trust_forwarded_proto": true}"#);
    assert_eq!(
        target_uri(&origin, Some("http"), Some("http"), "10.0.0.1", "/p"),
        "https://api.example.com/p"
    );
}

/// Issue 11, defect 2: in `jwt_authn` mode the metadata is the truth. jwt_authn finds
/// `Bearer <t>` inside values the filter would read as another scheme, or in another header
/// altogether; a verified bound token then needs a proof of its key whatever the header says.
#[test]
fn jwt_authn_metadata_is_the_truth() {
    let c = cfg(
        r#"{"required": false, "access_token": {"verify": "jwt_authn"},
            "routes": [{"prefix": "/token", "policy": "proof_only"}]}"#,
    );
    let victim = TestKey::ed25519_n(20);
    let attacker = TestKey::ed25519_n(21);
    let stolen = JwtAuthnView {
        payload_present: true,
        jkt: Some(victim.jkt()),
    };
    // no Authorization the filter recognises (token came from x-token, or a query parameter)
    for path in ["/x", "/token"] {
        assert_eq!(
            denied(run(&c, path, &[], &[], Some(&stolen))),
            R::BoundTokenWithoutProof,
            "{path}"
        );
        assert_eq!(
            denied(run(
                &c,
                path,
                &[&proof(&attacker, None, "")],
                &[],
                Some(&stolen)
            )),
            R::BindingMismatch,
            "{path}"
        );
    }
    // shapes jwt_authn accepts and the filter used to call "another scheme"
    let t = token(r#"{"whatever":1}"#);
    for authz in [
        format!("Basic Zm9v, Bearer {t}"),
        format!("X DPoP {t}"),
        format!("Bearer\t{t}"),
    ] {
        let d = denied(run(&c, "/x", &[], &[&authz], Some(&stolen)));
        assert!(
            matches!(d, R::AuthorizationMalformed | R::AuthorizationMultiple),
            "{authz}: {d:?}"
        );
        let d = denied(run(
            &c,
            "/x",
            &[&proof(&attacker, Some(&t), "")],
            &[&authz],
            Some(&stolen),
        ));
        assert!(
            matches!(d, R::AuthorizationMalformed | R::AuthorizationMultiple),
            "{authz}: {d:?}"
        );
    }
    // the victim's own proof still works without a recognised header (no ath to check)
    assert!(matches!(
        run(&c, "/x", &[&proof(&victim, None, "")], &[], Some(&stolen)),
        Decision::Allow { .. }
    ));
    // an unbound verified token on a required route is not-bound, as with a header
    let strict = cfg(r#"{"required": true, "access_token": {"verify": "jwt_authn"}}"#);
    let unbound = JwtAuthnView {
        payload_present: true,
        jkt: None,
    };
    assert_eq!(
        denied(run(
            &strict,
            "/x",
            &[&proof(&victim, None, "")],
            &[],
            Some(&unbound)
        )),
        R::TokenNotBound
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

/// Issue 11, defect 4: a proof accepted in the last second of its life must still find its
/// replay entry. Old rule: entry lifetime `proof_ttl + clock_skew` from first use, expired at
/// `expiry <= now` — with proof_ttl 2 and clock_skew 0, a replay 2 s later passed.
#[test]
fn replay_entry_outlives_the_acceptance_window() {
    use dpop_guard::replay::{Insert, LocalReplayStore, MemoryKv};
    for (proof_ttl, skew, iat_offset) in [(2, 0, 0), (2, 60, 0), (2, 60, 60), (120, 60, 45)] {
        let c = cfg(&format!(
            r#"{{"required": true, "proof_ttl": {proof_ttl}, "clock_skew": {skew}}}"#
        ));
        let k = TestKey::ed25519_n(30);
        let iat = NOW + iat_offset;
        let claims = format!(
            r#"{{"jti":"eol-{proof_ttl}-{skew}-{iat_offset}","htm":"GET","htu":"{URI}","iat":{iat}}}"#
        );
        let p = make_proof(&header_for("EdDSA", &k), &claims, &k);
        let kv = MemoryKv::default();
        let store = LocalReplayStore::new(1000);
        store.init(&kv).unwrap();
        let at = |now: i64| {
            let dpop = [p.as_bytes()];
            let req = Request {
                method: "GET",
                path: "/x",
                uri: URI,
                dpop: &dpop,
                authorization: &[],
                jwt_authn: None,
                now,
            };
            decide(&c, &req)
        };
        // first use as early as possible (iat may be in the future by up to clock_skew)
        let first = (iat - skew).max(NOW);
        let Decision::Allow {
            replay_key: Some(key),
            replay_ttl,
            ..
        } = at(first)
        else {
            panic!("first use refused")
        };
        assert_eq!(
            store.check_and_insert(&kv, &key, first, replay_ttl),
            Ok(Insert::Fresh)
        );
        // every later second in which the proof is still accepted finds the entry
        let mut now = first;
        while let Decision::Allow { .. } = at(now) {
            assert_eq!(
                store.check_and_insert(&kv, &key, now, replay_ttl),
                Ok(Insert::Replayed),
                "proof_ttl {proof_ttl} skew {skew}: replay at iat{:+} passed",
                now - iat
            );
            now += 1;
        }
        assert_eq!(denied(at(now)), R::ProofIatTooOld);
        assert_eq!(now, iat + proof_ttl + 1);
    }
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
        check_gathered(&c, &h, None, NOW, &mut KeyCache::disabled())
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
    let d = check_gathered(&disabled, &h, None, NOW, &mut KeyCache::disabled());
    assert_eq!((d.decision, d.shadow), (Decision::Pass, false));
}
