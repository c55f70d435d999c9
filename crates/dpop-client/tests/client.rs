//! The client against independent references: RFC 8037's Ed25519 example, the filter's own
//! verifier and thumbprint (`dpop-guard`), and the proof shape RFC 9449 §4.2 asks for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dpop_client::{ath, compact_jws, Alg, KeyKind, ProofClaims, ProofSigner, SigningKey};
use dpop_guard::jose::PublicJwk;
use dpop_guard::{verify_proof, ProofPolicy, RequestFacts};

fn b64d(s: &str) -> Vec<u8> {
    dpop_guard::b64::decode(s).unwrap()
}

#[test]
fn rfc8037_ed25519_example_key_and_thumbprint() {
    // RFC 8037 Appendix A.1 (private key) and A.3 (thumbprint).
    let key = SigningKey::ed25519(&b64d("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")).unwrap();
    assert_eq!(
        key.public_jwk().unwrap(),
        r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
    );
    assert_eq!(
        key.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    // A.4: the signature of "Example of Ed25519 signing" (Ed25519 is deterministic).
    let jws = compact_jws(
        br#"{"alg":"EdDSA"}"#,
        b"Example of Ed25519 signing",
        &key,
        Alg::EdDSA,
    )
    .unwrap();
    assert_eq!(
        jws,
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

fn every_key() -> Vec<(SigningKey, Alg)> {
    let rsa = SigningKey::generate(KeyKind::Rsa { bits: 2048 }).unwrap();
    vec![
        (
            SigningKey::from_seed(KeyKind::Ed25519, b"a").unwrap(),
            Alg::EdDSA,
        ),
        (
            SigningKey::from_seed(KeyKind::P256, b"b").unwrap(),
            Alg::ES256,
        ),
        (
            SigningKey::from_seed(KeyKind::P384, b"c").unwrap(),
            Alg::ES384,
        ),
        (rsa.clone(), Alg::RS256),
        (rsa, Alg::PS256),
    ]
}

#[test]
fn filter_agrees_on_members_thumbprint_and_signature() {
    for (key, alg) in every_key() {
        let public = PublicJwk::from_json(key.public_jwk().unwrap().as_bytes()).unwrap();
        assert_eq!(
            public.thumbprint_input(),
            key.public_jwk().unwrap(),
            "{alg:?}"
        );
        assert_eq!(public.thumbprint(), key.thumbprint(), "{alg:?}");
        let filter_alg = dpop_guard::jose::Alg::from_name(alg.name()).unwrap();
        let sig = key.sign(alg, b"input").unwrap();
        assert!(public.verify(filter_alg, b"input", &sig), "{alg:?}");
        assert!(!public.verify(filter_alg, b"inpuT", &sig), "{alg:?}");
    }
}

#[test]
fn proofs_verify_in_the_filter_with_ath_and_nonce() {
    let htu = "https://api.example/resource";
    for (key, alg) in every_key() {
        let jkt = key.thumbprint();
        let signer = ProofSigner::new(key, alg).unwrap();
        let mut claims = ProofClaims::new("POST", htu, 1_700_000_000)
            .unwrap()
            .for_token("tok");
        claims.nonce = Some("n-1");
        let proof = signer.proof(&claims).unwrap();
        let facts = RequestFacts {
            method: "POST",
            uri: htu,
            access_token: Some("tok"),
            now: 1_700_000_000,
        };
        let policy = ProofPolicy {
            algorithms: dpop_guard::jose::Alg::ALL.into_iter().collect(),
            ..ProofPolicy::default()
        };
        let v = verify_proof(&proof, &facts, &policy).unwrap();
        assert_eq!(v.jkt, jkt);
        assert_eq!(v.alg.name(), alg.name());
        assert_eq!(v.nonce.as_deref(), Some("n-1"));
        assert_eq!(v.jti, claims.jti);
        assert_eq!(claims.ath.as_deref(), Some(ath("tok").as_str()));
    }
}

#[test]
fn seeds_are_deterministic_and_distinct() {
    let a = SigningKey::from_seed(KeyKind::P256, b"x").unwrap();
    let b = SigningKey::from_seed(KeyKind::P256, b"x").unwrap();
    let c = SigningKey::from_seed(KeyKind::P256, b"y").unwrap();
    assert_eq!(a.thumbprint(), b.thumbprint());
    assert_ne!(a.thumbprint(), c.thumbprint());
    assert!(SigningKey::from_seed(KeyKind::Rsa { bits: 2048 }, b"x").is_err());
}

#[test]
fn wrong_alg_for_the_key_is_refused_before_signing() {
    let key = SigningKey::from_seed(KeyKind::Ed25519, b"a").unwrap();
    for alg in [Alg::ES256, Alg::ES384, Alg::RS256, Alg::PS256] {
        assert!(key.sign(alg, b"x").is_err());
        assert!(ProofSigner::new(key.clone(), alg).is_err());
    }
    assert!(format!("{key:?}").contains("jkt"));
    assert!(!format!("{key:?}").contains(&key.private_members().unwrap()[0].1));
}

#[test]
fn private_members_round_trip() {
    for (key, _) in every_key().into_iter().step_by(2) {
        let m = key.private_members().unwrap();
        let p = key.public_members().unwrap();
        let get =
            |set: &[(&str, String)], k: &str| b64d(&set.iter().find(|(n, _)| *n == k).unwrap().1);
        let back = match &key {
            SigningKey::Ed25519(_) => SigningKey::ed25519(&get(&m, "d")).unwrap(),
            SigningKey::P256(_) => SigningKey::p256(&get(&m, "d")).unwrap(),
            SigningKey::P384(_) => SigningKey::p384(&get(&m, "d")).unwrap(),
            SigningKey::Rsa(_) => SigningKey::rsa(
                &get(&p, "n"),
                &get(&p, "e"),
                &get(&m, "d"),
                Some((&get(&m, "p"), &get(&m, "q"))),
            )
            .unwrap(),
        };
        assert_eq!(back.thumbprint(), key.thumbprint());
    }
}
