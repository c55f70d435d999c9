//! Gets past the signature: the fuzz input becomes the claims (or the header) of a proof that
//! is then correctly signed with a fixed Ed25519 key, so every claim check is reachable.
//! Differential check: whenever `verify_proof` accepts, serde_json must agree that the claims
//! are an object carrying the jti/htm/htu/iat that were accepted.
#![no_main]

use dpop_guard::{verify_proof, DenyReason, ProofPolicy, RequestFacts};
use dpop_client::{compact_jws, dpop_header, Alg, SigningKey};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;
const URI: &str = "https://api.example.com/resource";
const TOKEN: &str = "tok";

fn sign(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
    compact_jws(header, claims, key, Alg::EdDSA).unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = SigningKey::ed25519_from_seed(b"proof_signed");
    let header = dpop_header(Alg::EdDSA, &key).unwrap_or_default();
    let good_claims = format!(r#"{{"jti":"j","htm":"GET","htu":"{URI}","iat":{NOW}}}"#);
    let fuzz_header = mode & 1 == 1;
    let proof = if fuzz_header {
        sign(&key, rest, good_claims.as_bytes())
    } else {
        sign(&key, header.as_bytes(), rest)
    };
    let policy = ProofPolicy {
        require_ath: mode & 2 == 0,
        ..ProofPolicy::default()
    };
    let token = if mode & 4 == 0 { None } else { Some(TOKEN) };
    let req = RequestFacts {
        method: "GET",
        uri: URI,
        access_token: token,
        now: NOW,
    };
    let result = verify_proof(&proof, &req, &policy);
    if !fuzz_header {
        // The header and signature are good: only claim-level reasons are possible.
        if let Err(e) = result {
            assert!(
                matches!(
                    e,
                    DenyReason::ProofTooLarge
                        | DenyReason::ProofClaimsInvalid
                        | DenyReason::ProofJtiMissing
                        | DenyReason::ProofJtiInvalid
                        | DenyReason::ProofHtmMissing
                        | DenyReason::ProofHtmMismatch
                        | DenyReason::ProofHtuMissing
                        | DenyReason::ProofHtuInvalid
                        | DenyReason::ProofHtuMismatch
                        | DenyReason::ProofIatMissing
                        | DenyReason::ProofIatTooOld
                        | DenyReason::ProofIatInFuture
                        | DenyReason::ProofAthMissing
                        | DenyReason::ProofAthMismatch
                        | DenyReason::NonceInvalid
                ),
                "unexpected {e:?} for signed claims"
            );
        }
    }
    if let Ok(v) = result {
        let claims: &[u8] = if fuzz_header {
            good_claims.as_bytes()
        } else {
            rest
        };
        let parsed: serde_json::Value = match serde_json::from_slice(claims) {
            Ok(p) => p,
            Err(e) => panic!("accepted claims serde_json refuses: {e}"),
        };
        let obj = parsed.as_object();
        assert!(obj.is_some(), "accepted non-object claims");
        if let Some(obj) = obj {
            assert_eq!(
                obj.get("jti").and_then(|j| j.as_str()),
                Some(v.jti.as_str())
            );
            assert_eq!(obj.get("htm").and_then(|j| j.as_str()), Some("GET"));
            assert!(obj.get("htu").and_then(|j| j.as_str()).is_some());
            assert!((NOW - 120..=NOW + 60).contains(&v.iat));
        }
    }
});
