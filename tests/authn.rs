//! The per-request decision (token extraction, binding, downgrade, nonce, replay key), natively.
//! `jwt_authn` mode is in tests/authn_jwt_authn.rs; routes, the target URI, raw header bytes and
//! shadow mode in tests/authn_routes.rs; the shared helpers in tests/common/authn.rs.
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
use common::{header_for, make_proof, TestKey};
use dpop_guard::authn::{decide, Decision, Request};
use dpop_guard::reason::DenyReason as R;

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
    let k = TestKey::ed25519_n(6);
    let n = dpop_guard::nonce::issue(c.nonce.as_ref().unwrap(), &k.jkt(), NOW);
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
                authority: "api.example.com",
                path: "/x",
                uri: URI,
                dpop: &dpop,
                authorization: &[],
                jwt_authn: None,
                introspection: None,
                remote_jwks: None,
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

/// `require_bound_token: false` (ARCP's `DPOP_REQUIRED=true`): a proof on every request, a
/// bound token checked against it, an unbound Bearer token let through.
#[test]
fn required_route_with_unbound_tokens_allowed() {
    let c = cfg(r#"{"required": true, "routes": [
        {"prefix": "/agents", "policy": "required", "require_bound_token": false},
        {"prefix": "/strict", "policy": "required"}]}"#);
    let k = TestKey::ed25519_n(21);
    let other = TestKey::ed25519_n(22);
    let unbound = token(r#"{"sub":"agent"}"#);
    let bearer = format!("Bearer {unbound}");
    let ok = |path: &str, key: &TestKey, tok: &str, authz: &str| {
        run(&c, path, &[&proof(key, Some(tok), "")], &[authz], None)
    };
    assert!(matches!(
        ok("/agents/1", &k, &unbound, &bearer),
        Decision::Allow { .. }
    ));
    assert_eq!(
        denied(ok("/strict", &k, &unbound, &bearer)),
        R::TokenNotBound
    );
    // still a proof on every request
    assert_eq!(
        denied(run(&c, "/agents/1", &[], &[&bearer], None)),
        R::ProofMissing
    );
    // a bound token is still checked against the proof key
    let b = bound(&k);
    let bound_bearer = format!("Bearer {b}");
    assert!(matches!(
        ok("/agents/1", &k, &b, &bound_bearer),
        Decision::Allow { .. }
    ));
    assert_eq!(
        denied(ok("/agents/1", &other, &b, &bound_bearer)),
        R::BindingMismatch
    );
    // `Authorization: DPoP <unbound>` stays malformed DPoP usage
    let dpop_scheme = format!("DPoP {unbound}");
    assert_eq!(
        denied(ok("/agents/1", &k, &unbound, &dpop_scheme)),
        R::TokenNotBound
    );
    // the top-level form, and the key refused where it cannot apply
    let top = cfg(r#"{"required": true, "require_bound_token": false}"#);
    assert!(matches!(
        run(
            &top,
            "/x",
            &[&proof(&k, Some(&unbound), "")],
            &[&bearer],
            None
        ),
        Decision::Allow { .. }
    ));
    let e = dpop_guard::config::Config::parse(
        br#"{"routes": [{"prefix": "/a", "policy": "optional", "require_bound_token": false}]}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("routes[0].require_bound_token"),
        "{e}"
    );
}

/// Introspection mode reuses the cache key (SHA-256 of the token) for the proof's `ath`: the
/// check must still refuse an `ath` of another token, a missing `ath`, and accept the right one.
#[test]
fn introspection_ath_uses_the_cache_digest() {
    use dpop_guard::introspection::{token_hash, Answer, IntrospectionView, TokenCache};
    let c = cfg(
        r#"{"required": true, "access_token": {"verify": "introspection",
            "introspection": {"cluster": "as"}}}"#,
    );
    let icfg = c.access_token.introspection.as_ref().unwrap();
    let k = TestKey::ed25519_n(61);
    let opaque = "opaque-token-0123456789";
    let mut cache = TokenCache::new(16);
    let active = Answer::Active {
        jkt: Some(k.jkt()),
        exp: None,
    };
    cache.insert(icfg, token_hash(opaque), &active, NOW);
    let at = |token: &str, proof: &str| {
        let authz = format!("DPoP {token}");
        let dpop = [proof.as_bytes()];
        let authz = [authz.as_bytes()];
        let req = Request {
            method: "GET",
            authority: "api.example.com",
            path: "/api/x",
            uri: URI,
            dpop: &dpop,
            authorization: &authz,
            jwt_authn: None,
            introspection: Some(IntrospectionView {
                cache: &cache,
                fresh: None,
            }),
            remote_jwks: None,
            now: NOW,
        };
        decide(&c, &req)
    };
    assert!(matches!(
        at(opaque, &proof(&k, Some(opaque), "")),
        Decision::Allow { .. }
    ));
    assert_eq!(
        denied(at(opaque, &proof(&k, Some("another-token"), ""))),
        R::ProofAthMismatch
    );
    assert_eq!(denied(at(opaque, &proof(&k, None, ""))), R::ProofAthMissing);
    // an unknown token is not guessed from: it is asked for
    let d = at("never-seen", &proof(&k, Some("never-seen"), ""));
    assert!(matches!(d, Decision::Introspect(t) if t == "never-seen"));
}
