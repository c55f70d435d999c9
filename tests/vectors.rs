//! Published test vectors: RFC 9449 (DPoP) example proofs, RFC 7638/8037 thumbprints and
//! signatures, and every Wycheproof vector for the algorithms we verify.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dpop_guard::b64;
use dpop_guard::jose::{Alg, CompactJws, JwkError, PublicJwk};
use dpop_guard::proof::ath_for;
use dpop_guard::{verify_proof, DenyReason, ProofPolicy, RequestFacts};
use serde_json::Value;

#[path = "common/reference_host.rs"]
mod reference_host;
#[path = "../crates/jose-verify/tests/support/wycheproof.rs"]
mod wycheproof;

// ---------------------------------------------------------------------------------------------
// RFC 9449
// ---------------------------------------------------------------------------------------------

/// RFC 9449 §4.1 Figure 2 (the same proof is reused in §5 Figure 5), RFC 8792 line wrapping
/// joined. Decoded: typ dpop+jwt, ES256, P-256 jwk; jti "-BwC3ESc6acc2lTc", htm POST,
/// htu https://server.example.com/token, iat 1562262616.
const RFC9449_4_1: &str = concat!(
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj",
    "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia",
    "WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg",
    "4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg",
);

/// RFC 9449 §7.1 Figure 13: proof sent with the access token below. Decoded: jti
/// "e1j3V_bKic8-LAEB", htm GET, htu https://resource.example.org/protectedresource,
/// iat 1562262618, ath "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo".
const RFC9449_7_1: &str = concat!(
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj",
    "oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z",
    "WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF",
    "c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E",
    "OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA",
);
const RFC9449_7_1_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

/// RFC 9449 §6.1: the thumbprint of the example key used by every example proof.
const RFC9449_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

#[test]
fn rfc9449_4_1_token_request_proof() {
    let req = RequestFacts {
        method: "POST",
        uri: "https://server.example.com/token",
        access_token: None,
        now: 1_562_262_616,
    };
    let v = verify_proof(RFC9449_4_1, &req, &ProofPolicy::default()).unwrap();
    assert_eq!(v.jkt, RFC9449_JKT);
    assert_eq!(v.alg, Alg::ES256);
    assert_eq!(v.jti, "-BwC3ESc6acc2lTc");
    assert_eq!(v.iat, 1_562_262_616);
    assert_eq!(v.nonce, None);

    // Still fine at the edges of the default window, refused just outside them.
    let at = |now| RequestFacts { now, ..req };
    assert!(verify_proof(
        RFC9449_4_1,
        &at(1_562_262_616 + 120),
        &ProofPolicy::default()
    )
    .is_ok());
    assert!(verify_proof(
        RFC9449_4_1,
        &at(1_562_262_616 - 60),
        &ProofPolicy::default()
    )
    .is_ok());
    assert_eq!(
        verify_proof(
            RFC9449_4_1,
            &at(1_562_262_616 + 121),
            &ProofPolicy::default()
        ),
        Err(DenyReason::ProofIatTooOld)
    );
    assert_eq!(
        verify_proof(
            RFC9449_4_1,
            &at(1_562_262_616 - 61),
            &ProofPolicy::default()
        ),
        Err(DenyReason::ProofIatInFuture)
    );
    // The request must match.
    let get = RequestFacts {
        method: "GET",
        ..req
    };
    assert_eq!(
        verify_proof(RFC9449_4_1, &get, &ProofPolicy::default()),
        Err(DenyReason::ProofHtmMismatch)
    );
    let other = RequestFacts {
        uri: "https://server.example.com/token2",
        ..req
    };
    assert_eq!(
        verify_proof(RFC9449_4_1, &other, &ProofPolicy::default()),
        Err(DenyReason::ProofHtuMismatch)
    );
    // An equivalent request URI (default port, host case, query) matches.
    let equiv = RequestFacts {
        uri: "https://SERVER.example.com:443/token?x=1",
        ..req
    };
    assert!(verify_proof(RFC9449_4_1, &equiv, &ProofPolicy::default()).is_ok());
    // A token endpoint proof carries no ath: with an access token present it is refused.
    let with_token = RequestFacts {
        access_token: Some("t"),
        ..req
    };
    assert_eq!(
        verify_proof(RFC9449_4_1, &with_token, &ProofPolicy::default()),
        Err(DenyReason::ProofAthMissing)
    );
    // ES256 not allowed by configuration.
    let eddsa_only = ProofPolicy {
        algorithms: [Alg::EdDSA].into_iter().collect(),
        ..ProofPolicy::default()
    };
    assert_eq!(
        verify_proof(RFC9449_4_1, &req, &eddsa_only),
        Err(DenyReason::ProofAlgNotAllowed)
    );
    // One flipped signature character.
    let mut forged = RFC9449_4_1.to_owned();
    forged.replace_range(forged.len() - 3..forged.len() - 2, "4");
    assert_ne!(forged, RFC9449_4_1);
    assert_eq!(
        verify_proof(&forged, &req, &ProofPolicy::default()),
        Err(DenyReason::ProofSignatureInvalid)
    );
}

#[test]
fn rfc9449_7_1_resource_request_proof() {
    assert_eq!(
        ath_for(RFC9449_7_1_TOKEN),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
    let req = RequestFacts {
        method: "GET",
        uri: "https://resource.example.org/protectedresource",
        access_token: Some(RFC9449_7_1_TOKEN),
        now: 1_562_262_618,
    };
    let v = verify_proof(RFC9449_7_1, &req, &ProofPolicy::default()).unwrap();
    assert_eq!(v.jkt, RFC9449_JKT);
    assert_eq!(v.jti, "e1j3V_bKic8-LAEB");
    assert_eq!(v.iat, 1_562_262_618);

    let other_token = RequestFacts {
        access_token: Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxV"),
        ..req
    };
    assert_eq!(
        verify_proof(RFC9449_7_1, &other_token, &ProofPolicy::default()),
        Err(DenyReason::ProofAthMismatch)
    );
    // Without an access token the ath claim is not consulted.
    let no_token = RequestFacts {
        access_token: None,
        ..req
    };
    assert!(verify_proof(RFC9449_7_1, &no_token, &ProofPolicy::default()).is_ok());
    let post = RequestFacts {
        method: "POST",
        ..req
    };
    assert_eq!(
        verify_proof(RFC9449_7_1, &post, &ProofPolicy::default()),
        Err(DenyReason::ProofHtmMismatch)
    );
    let http = RequestFacts {
        uri: "http://resource.example.org/protectedresource",
        ..req
    };
    assert_eq!(
        verify_proof(RFC9449_7_1, &http, &ProofPolicy::default()),
        Err(DenyReason::ProofHtuMismatch)
    );
}

#[test]
fn rfc9449_example_key_thumbprint() {
    // RFC 9449 Figure 4 jwk, members in the RFC's order.
    let jwk = br#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#;
    assert_eq!(PublicJwk::from_json(jwk).unwrap().thumbprint(), RFC9449_JKT);
    // And the jwk carried by the proof header itself.
    let jws = CompactJws::parse(RFC9449_4_1, 8192).unwrap();
    let Some(dpop_guard::json::Json::Object(o)) = jws.header.get("jwk") else {
        panic!("no jwk")
    };
    assert_eq!(PublicJwk::from_object(o).unwrap().thumbprint(), RFC9449_JKT);
}

// ---------------------------------------------------------------------------------------------
// RFC 7638 / RFC 8037 / leading-zero coordinate
// ---------------------------------------------------------------------------------------------

const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

#[test]
fn rfc7638_rsa_thumbprint() {
    let want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let bare = format!(r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB"}}"#);
    let k = PublicJwk::from_json(bare.as_bytes()).unwrap();
    assert_eq!(k.thumbprint(), want);
    assert_eq!(
        k.thumbprint_input(),
        format!(r#"{{"e":"AQAB","kty":"RSA","n":"{RFC7638_N}"}}"#)
    );
    // RFC 7638 §3.1 example: the same key with alg and kid members (ignored by the thumbprint).
    let full =
        format!(r#"{{"kty":"RSA","n":"{RFC7638_N}","e":"AQAB","alg":"RS256","kid":"2011-04-29"}}"#);
    assert_eq!(
        PublicJwk::from_json(full.as_bytes()).unwrap().thumbprint(),
        want
    );
    // Member order and use=sig do not matter either.
    let reordered =
        format!(r#"{{"use":"sig","e":"AQAB","kid":"x","n":"{RFC7638_N}","kty":"RSA"}}"#);
    assert_eq!(
        PublicJwk::from_json(reordered.as_bytes())
            .unwrap()
            .thumbprint(),
        want
    );
}

const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

#[test]
fn rfc8037_ed25519() {
    // A.3: thumbprint of the A.2 public key.
    let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}"#);
    let k = PublicJwk::from_json(jwk.as_bytes()).unwrap();
    assert_eq!(
        k.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    // A.4/A.5: the EdDSA JWS over "Example of Ed25519 signing".
    let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let parsed = CompactJws::parse(jws, 8192).unwrap();
    assert_eq!(parsed.payload, b"Example of Ed25519 signing");
    assert!(k.verify(
        Alg::EdDSA,
        parsed.signing_input.as_bytes(),
        &parsed.signature
    ));
    assert!(!k.verify(
        Alg::EdDSA,
        b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd",
        &parsed.signature
    ));
    // Wrong-alg paths are refused by verify itself, whatever the signature.
    for alg in [Alg::ES256, Alg::ES384, Alg::RS256, Alg::PS256] {
        assert!(!k.accepts(alg));
        assert!(!k.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature));
    }
    // A.1: the private key form is refused as a proof key.
    let private = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"{RFC8037_X}"}}"#
    );
    assert_eq!(
        PublicJwk::from_json(private.as_bytes()).unwrap_err(),
        JwkError::Private
    );
}

#[test]
fn p256_x_with_leading_zero_byte() {
    // x begins with 0x00: it must stay 32 bytes (RFC 7518 §6.2.1.2), in the key and in the
    // thumbprint. y was derived from x on P-256 (the root whose thumbprint is the published one).
    let x = "APgYG5BNQBWVT-w7yW51bi9M5hVluuqPOGXXl5if_NM";
    let y = "QmnCr5fkc5hvPAHJlus28hFl9fvENm3BAHbt7YcDakQ";
    assert_eq!(b64::decode(x).unwrap()[0], 0);
    let jwk = format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#);
    let k = PublicJwk::from_json(jwk.as_bytes()).unwrap();
    assert_eq!(
        k.thumbprint(),
        "blYhrm9qF1QjcvW-PCH4EI6gqOq6p1fcH8eCuxaT0WU"
    );
    assert_eq!(
        k.thumbprint_input(),
        format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
    );
    // The same x with its leading zero stripped (31 bytes) is not a valid JWK.
    let short = b64::encode(&b64::decode(x).unwrap()[1..]);
    let bad = format!(r#"{{"kty":"EC","crv":"P-256","x":"{short}","y":"{y}"}}"#);
    assert_eq!(
        PublicJwk::from_json(bad.as_bytes()).unwrap_err(),
        JwkError::Invalid
    );
    // The other square root is a valid point with a different thumbprint.
    let y2 = "vZY9T2gbjGiQw_42aRTJDe6aCgU7yZI-_4kSEnj8lbs";
    let other = format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y2}"}}"#);
    assert_ne!(
        PublicJwk::from_json(other.as_bytes()).unwrap().thumbprint(),
        "blYhrm9qF1QjcvW-PCH4EI6gqOq6p1fcH8eCuxaT0WU"
    );
}

// ---------------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------------

const WYCHEPROOF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/wycheproof/");

/// Groups whose JWK PublicJwk refuses though they contain `valid` vectors, with the reason.
/// The RSA key policy is `jose_verify::rsa`'s (`crates/jose-verify/tests/rsa.rs` expects the
/// same groups to be refused; its unit tests run the arithmetic with e = 3).
const SMALL_E: &str = "e = 3: JWKs must use e = 65537 (README, proof key limits)";
const EXPLAINED_REJECTED_KEYS: &[(&str, usize, &str)] = &[
    ("rsa_signature_2048_sha256_test.json", 1, SMALL_E),
    ("rsa_signature_2048_sha256_test.json", 2, SMALL_E),
    ("rsa_signature_3072_sha256_test.json", 1, SMALL_E),
];

/// Field size in bytes for an EC curve name used by Wycheproof.
fn ec_size(curve: &str) -> Option<(usize, &'static str)> {
    match curve {
        "secp256r1" => Some((32, "P-256")),
        "secp384r1" => Some((48, "P-384")),
        _ => None,
    }
}

/// The group's key as a JWK value: `publicKeyJwk`/`keyJwk` when present; otherwise (a few
/// ECDSA groups ship only the raw point) a JWK built from `publicKey.wx`/`wy`, left-padded to
/// the field size as RFC 7518 requires.
fn group_jwk(group: &Value) -> (Value, bool) {
    if let Some(j) = group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) {
        return (j.clone(), false);
    }
    let pk = &group["publicKey"];
    let (size, crv) =
        ec_size(pk["curve"].as_str().unwrap()).expect("group without a JWK must be an EC key");
    let coord = |name: &str| b64::encode(&wycheproof::padded_coordinate(pk, name, size));
    (
        serde_json::json!({"kty": "EC", "crv": crv, "x": coord("wx"), "y": coord("wy")}),
        true,
    )
}

/// Every vector of `file` through the JWK layer (`PublicJwk::verify` with `alg`; the crate
/// `jose-verify` runs the same files through its verifiers directly). A group whose JWK is
/// refused must be listed in `EXPLAINED_REJECTED_KEYS` (its vectors are then counted, not run)
/// or have no `valid` vector (its vectors run, and must all fail).
fn run_wycheproof(file: &str, alg: Alg) -> wycheproof::Tally {
    let path = format!("{WYCHEPROOF_DIR}{file}");
    let (mut jwk_from_raw_key, mut rejected_keys) = (0usize, 0usize);
    let group_key = |gi: usize, group: &Value| {
        let (jwk_value, from_raw) = group_jwk(group);
        jwk_from_raw_key += usize::from(from_raw);
        let jwk = PublicJwk::from_json(jwk_value.to_string().as_bytes());
        match &jwk {
            Ok(k) => assert!(
                k.accepts(alg),
                "{file} group {gi}: key does not accept {alg:?}"
            ),
            Err(e) => {
                rejected_keys += 1;
                let explained = EXPLAINED_REJECTED_KEYS
                    .iter()
                    .any(|(f, g, _)| *f == file && *g == gi);
                if explained {
                    return None; // the key is refused by policy: every verdict is "refused"
                }
                let tests = group["tests"].as_array().unwrap();
                let valid = tests.iter().filter(|t| t["result"] == "valid").count();
                assert_eq!(
                    valid, 0,
                    "{file} group {gi}: JWK refused ({e:?}) but {valid} valid vectors"
                );
            }
        }
        Some(jwk)
    };
    let tally = wycheproof::run(&path, group_key, |jwk, case| {
        jwk.as_ref()
            .is_ok_and(|k| k.verify(alg, &case.msg, &case.sig))
    });
    println!(
        "{file}: {jwk_from_raw_key} JWKs built from the raw key; {rejected_keys} keys refused"
    );
    tally
}

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    run_wycheproof("ecdsa_secp256r1_sha256_p1363_test.json", Alg::ES256);
}

/// The host path (README "Security notes"): the same files with a host verifier registered
/// as the glue registers Envoy's `verify_signature` — here the reference crates, computing what
/// BoringSSL computes. Same verdicts, and the host was really asked.
fn run_wycheproof_on_host_path(file: &str, alg: Alg) {
    dpop_guard::jose::host_crypto::set_host_verifier(Some(reference_host::verify));
    let before = reference_host::calls();
    let tally = run_wycheproof(file, alg);
    dpop_guard::jose::host_crypto::set_host_verifier(None);
    let asked = reference_host::calls() - before;
    println!(
        "{file}: host asked {asked} times for {} vectors",
        tally.total
    );
    // every valid vector reaches the host; malformed ones may be refused before it
    assert!(
        asked >= tally.valid && tally.valid > 0,
        "host path not taken: {asked} calls for {} valid vectors",
        tally.valid
    );
}

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363_on_the_host_path() {
    run_wycheproof_on_host_path("ecdsa_secp256r1_sha256_p1363_test.json", Alg::ES256);
}

#[cfg(feature = "es384")]
#[test]
fn wycheproof_ecdsa_p384_sha384_p1363() {
    run_wycheproof("ecdsa_secp384r1_sha384_p1363_test.json", Alg::ES384);
}

/// Without `--features es384` no P-384 key is a JWK we accept: every group's key is refused.
#[cfg(not(feature = "es384"))]
#[test]
fn wycheproof_ecdsa_p384_keys_refused_without_es384() {
    let doc = wycheproof::load(&format!(
        "{WYCHEPROOF_DIR}ecdsa_secp384r1_sha384_p1363_test.json"
    ));
    let groups = doc["testGroups"].as_array().unwrap();
    for (gi, group) in groups.iter().enumerate() {
        let (jwk, _) = group_jwk(group);
        assert_eq!(
            PublicJwk::from_json(jwk.to_string().as_bytes()).unwrap_err(),
            JwkError::Invalid,
            "group {gi}"
        );
    }
    assert!(!groups.is_empty());
}

#[test]
fn wycheproof_ed25519() {
    run_wycheproof("ed25519_test.json", Alg::EdDSA);
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    run_wycheproof("rsa_signature_2048_sha256_test.json", Alg::RS256);
}

#[test]
fn wycheproof_rsa_pkcs1_3072_sha256() {
    run_wycheproof("rsa_signature_3072_sha256_test.json", Alg::RS256);
}

#[test]
fn wycheproof_rsa_pkcs1_4096_sha256() {
    run_wycheproof("rsa_signature_4096_sha256_test.json", Alg::RS256);
}

#[test]
fn wycheproof_rsa_pkcs1_sha256_on_the_host_path() {
    for bits in [2048, 3072, 4096] {
        run_wycheproof_on_host_path(
            &format!("rsa_signature_{bits}_sha256_test.json"),
            Alg::RS256,
        );
    }
}

#[test]
fn wycheproof_rsa_pss_2048_sha256_mgf1_32() {
    run_wycheproof("rsa_pss_2048_sha256_mgf1_32_test.json", Alg::PS256);
}
