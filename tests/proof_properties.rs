//! `verify_proof` beyond the table (tests/proof_negative.rs): the fields a verified proof
//! reports for every algorithm, a mutation loop that must never panic, `typ` with the
//! `application/` prefix, and the proof-header cache (header work skipped, signature and claims
//! never).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
#[path = "common/negative.rs"]
mod negative;

use common::{header_for, make_proof, segments, Rng, TestKey};
use dpop_guard::b64;
use dpop_guard::jose::{Alg, PublicJwk};
use dpop_guard::proof::replay_key;
use dpop_guard::{verify_proof, DenyReason, ProofPolicy, RequestFacts};
use negative::{all_algs, claims, METHOD, NOW, TOKEN, URI};
use serde_json::{json, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[test]
fn verified_fields_per_alg() {
    let rsa = TestKey::rsa();
    let keys: [(TestKey, &str); 6] = [
        (TestKey::ed25519(), "EdDSA"),
        (TestKey::p256(), "ES256"),
        (TestKey::p384(), "ES384"),
        (rsa.clone(), "RS256"),
        (rsa.clone(), "PS256"),
        (TestKey::ed25519_n(9), "EdDSA"),
    ];
    let policy = all_algs();
    for (key, alg) in keys {
        if alg == "ES384" && !cfg!(feature = "es384") {
            continue;
        }
        let claims = json!({"jti": "j-1", "htm": "POST", "htu": "https://as.example/token", "iat": NOW - 3, "nonce": "nn"}).to_string();
        let proof = make_proof(&header_for(alg, &key), &claims, &key);
        let req = RequestFacts {
            method: "POST",
            uri: "https://as.example/token",
            access_token: None,
            now: NOW,
        };
        let v = verify_proof(&proof, &req, &policy).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(v.alg, Alg::from_name(alg).unwrap());
        assert_eq!(v.jkt, key.jkt());
        let jwk = PublicJwk::from_json(key.public_jwk().as_bytes()).unwrap();
        assert_eq!(v.jkt, jwk.thumbprint());
        assert_eq!(v.jti, "j-1");
        assert_eq!(v.iat, NOW - 3);
        assert_eq!(v.nonce.as_deref(), Some("nn"));
        assert_eq!(v.replay_key, replay_key(&v.jkt, "j-1"));
        assert!(v.replay_key.starts_with("dpop:jti:"));
    }
}

/// Mutation loop: random byte edits of valid proofs, random claim/header value swaps (re-signed,
/// so they reach the claim checks), and random garbage must never panic; a proof that still
/// verifies after a byte edit must be the unmodified proof.
#[test]
fn mutations_never_panic() {
    let ed = TestKey::ed25519();
    let ec = TestKey::p256();
    let rsa = TestKey::rsa();
    let policy = all_algs();
    let base_claims = claims();
    let bases: Vec<(TestKey, &str)> = vec![
        (ed, "EdDSA"),
        (ec, "ES256"),
        (rsa.clone(), "RS256"),
        (rsa, "PS256"),
    ];
    let values = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5e308),
        json!(u64::MAX),
        json!(NOW),
        json!(""),
        json!("GET"),
        json!(URI),
        json!("é\u{0}\u{ffff}"),
        json!([]),
        json!({}),
        json!([URI]),
        json!({"kty": "EC", "crv": "P-256", "x": "", "y": ""}),
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    ];
    let header_names = ["typ", "alg", "jwk", "crit", "kid", "b64"];
    let claim_names = ["jti", "htm", "htu", "iat", "ath", "nonce", "exp"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ran = 0usize;
    let result = catch_unwind(AssertUnwindSafe(|| {
        for round in 0..600 {
            let (key, alg) = &bases[round % bases.len()];
            let mut header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk_value()});
            let mut claims = base_claims.clone();
            // Structured mutations, then sign.
            for _ in 0..rng.below(3) {
                let (target, names): (&mut Value, &[&str]) = if rng.below(2) == 0 {
                    (&mut header, &header_names)
                } else {
                    (&mut claims, &claim_names)
                };
                let name = names[rng.below(names.len())];
                let obj = target.as_object_mut().unwrap();
                if rng.below(4) == 0 {
                    obj.remove(name);
                } else {
                    obj.insert(name.to_owned(), values[rng.below(values.len())].clone());
                }
            }
            let proof = make_proof(&header.to_string(), &claims.to_string(), key);
            let token = if rng.below(2) == 0 { Some(TOKEN) } else { None };
            let req = RequestFacts {
                method: METHOD,
                uri: URI,
                access_token: token,
                now: NOW,
            };
            let _ = verify_proof(&proof, &req, &policy);
            ran += 1;
            // Byte-level mutations of the signed proof.
            for _ in 0..8 {
                let mut bytes = proof.clone().into_bytes();
                match rng.below(4) {
                    0 => {
                        let i = rng.below(bytes.len());
                        bytes[i] = b"ABCxyz019-_.=+/ \x00"[rng.below(17)];
                    }
                    1 => {
                        let i = rng.below(bytes.len());
                        bytes.remove(i);
                    }
                    2 => {
                        let i = rng.below(bytes.len() + 1);
                        bytes.insert(i, b"A.-_"[rng.below(4)]);
                    }
                    _ => {
                        let i = rng.below(bytes.len());
                        bytes.truncate(i);
                    }
                }
                let mutated = String::from_utf8_lossy(&bytes).into_owned();
                if let Ok(v) = verify_proof(&mutated, &req, &policy) {
                    assert_eq!(mutated, proof, "mutated proof verified: {v:?}");
                }
                ran += 1;
            }
        }
        // Raw garbage.
        for _ in 0..2000 {
            let len = rng.below(200);
            let s: String = (0..len)
                .map(|_| (b"eyJ.AZaz09-_={}\""[rng.below(16)]) as char)
                .collect();
            let req = RequestFacts {
                method: METHOD,
                uri: URI,
                access_token: None,
                now: NOW,
            };
            assert!(verify_proof(&s, &req, &policy).is_err());
            ran += 1;
        }
    }));
    assert!(result.is_ok(), "verify_proof panicked after {ran} inputs");
    println!("{ran} mutated/random inputs, no panic");
}

#[test]
fn typ_with_application_prefix_is_the_same_media_type() {
    let k = TestKey::ed25519();
    let now = 1_700_000_000;
    for (typ, ok) in [
        ("application/dpop+jwt", true),
        ("Application/DPoP+JWT", true),
        ("application/jwt", false),
        ("xapplication/dpop+jwt", false),
    ] {
        let header = format!(
            r#"{{"typ":"{typ}","alg":"EdDSA","jwk":{}}}"#,
            k.public_jwk()
        );
        let claims =
            format!(r#"{{"jti":"t","htm":"GET","htu":"https://a.example/x","iat":{now}}}"#);
        let p = make_proof(&header, &claims, &k);
        let facts = RequestFacts {
            method: "GET",
            uri: "https://a.example/x",
            access_token: None,
            now,
        };
        let r = verify_proof(&p, &facts, &ProofPolicy::default());
        assert_eq!(r.is_ok(), ok, "{typ}: {r:?}");
        if !ok {
            assert_eq!(r.unwrap_err(), DenyReason::ProofTypInvalid);
        }
    }
}

#[test]
fn key_cache_skips_header_work_but_never_the_signature() {
    use dpop_guard::proof::{verify_proof_cached, KeyCache};
    let k = TestKey::ed25519();
    let now = 1_700_000_000;
    let facts = RequestFacts {
        method: "GET",
        uri: "https://a.example/x",
        access_token: None,
        now,
    };
    let policy = ProofPolicy::default();
    let mut cache = KeyCache::new(2);
    let mk = |jti: &str| {
        make_proof(
            &header_for("EdDSA", &k),
            &format!(r#"{{"jti":"{jti}","htm":"GET","htu":"https://a.example/x","iat":{now}}}"#),
            &k,
        )
    };
    let first = verify_proof_cached(&mk("a"), &facts, &policy, &mut cache).unwrap();
    assert_eq!(cache.len(), 1);
    let second = verify_proof_cached(&mk("b"), &facts, &policy, &mut cache).unwrap();
    assert_eq!(cache.len(), 1, "same header, one entry");
    assert_eq!(first.jkt, second.jkt);
    assert_eq!(first.jkt, k.jkt());
    // a cached header does not vouch for a signature
    let (h, p, _) = segments(&mk("c"));
    let forged = format!("{h}.{p}.{}", b64::encode(&[0u8; 64]));
    assert_eq!(
        verify_proof_cached(&forged, &facts, &policy, &mut cache),
        Err(DenyReason::ProofSignatureInvalid)
    );
    // claims are still checked on a cache hit
    let stale = make_proof(
        &header_for("EdDSA", &k),
        &format!(
            r#"{{"jti":"d","htm":"GET","htu":"https://a.example/x","iat":{}}}"#,
            now - 1000
        ),
        &k,
    );
    assert_eq!(
        verify_proof_cached(&stale, &facts, &policy, &mut cache),
        Err(DenyReason::ProofIatTooOld)
    );
    // bounded: more keys than capacity evict the oldest
    for tag in 0..5u8 {
        let kk = TestKey::ed25519_n(100 + tag);
        let p = make_proof(
            &header_for("EdDSA", &kk),
            &format!(r#"{{"jti":"e","htm":"GET","htu":"https://a.example/x","iat":{now}}}"#),
            &kk,
        );
        assert!(verify_proof_cached(&p, &facts, &policy, &mut cache).is_ok());
        assert!(cache.len() <= 2);
    }
    // a header that failed its checks is never cached
    let mut empty = KeyCache::new(8);
    let bad = make_proof(r#"{"typ":"jwt","alg":"EdDSA"}"#, "{}", &k);
    assert!(verify_proof_cached(&bad, &facts, &policy, &mut empty).is_err());
    assert!(empty.is_empty());
}
