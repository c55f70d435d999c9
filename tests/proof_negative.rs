//! Table-driven negative (and boundary-positive) suite for `verify_proof`: every case builds a
//! real, correctly signed proof (unless the case is about the signature or the encoding), runs
//! it against a fixed request and clock, and asserts the exact `DenyReason`.
//!
//! This file runs the table; the cases are in tests/proof_negative/ by group (header.rs,
//! jwk.rs, signature.rs, claims.rs, iat_ath_nonce.rs), the fixture in tests/common/negative.rs.
//! The other `verify_proof` tests are in tests/proof_properties.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
#[path = "common/negative.rs"]
mod negative;

#[path = "proof_negative/claims.rs"]
mod claims;
#[path = "proof_negative/header.rs"]
mod header;
#[path = "proof_negative/iat_ath_nonce.rs"]
mod iat_ath_nonce;
#[path = "proof_negative/jwk.rs"]
mod jwk;
#[path = "proof_negative/signature.rs"]
mod signature;

use dpop_guard::{verify_proof, DenyReason, RequestFacts};
use negative::{Case, Fixture, Table};

/// Every group's cases, in this order: header, jwk, signature, claims, iat/ath/nonce, order of
/// checks and the valid proofs.
fn cases() -> Vec<Case> {
    let fx = Fixture::new();
    let mut t = Table::default();
    header::cases(&mut t, &fx);
    jwk::cases(&mut t, &fx);
    signature::signature(&mut t, &fx);
    claims::cases(&mut t, &fx);
    iat_ath_nonce::cases(&mut t, &fx);
    signature::order_and_valid(&mut t, &fx);
    t.0
}

#[test]
fn table() {
    let cases = cases();
    let neg = cases.iter().filter(|c| c.want.is_err()).count();
    let mut failures = Vec::new();
    for case in &cases {
        let req = RequestFacts {
            method: case.method,
            uri: &case.uri,
            access_token: case.token,
            now: case.now,
        };
        let got = verify_proof(&case.proof, &req, &case.policy).map(|_| ());
        if got != case.want {
            failures.push(format!(
                "{}: want {:?}, got {:?}",
                case.name, case.want, got
            ));
        }
    }
    println!(
        "{} cases ({} negative, {} positive)",
        cases.len(),
        neg,
        cases.len() - neg
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(neg >= 30);
}

/// Every proof-related deny reason `verify_proof` can return is exercised by the table.
#[test]
fn table_covers_every_proof_reason() {
    use DenyReason as R;
    let reachable = [
        R::ProofTooLarge,
        R::ProofMalformed,
        R::ProofHeaderInvalid,
        R::ProofTypInvalid,
        R::ProofAlgMissing,
        R::ProofAlgUnsupported,
        R::ProofAlgNotAllowed,
        R::ProofCritUnsupported,
        R::ProofJwkMissing,
        R::ProofJwkInvalid,
        R::ProofJwkPrivate,
        R::ProofAlgKeyMismatch,
        R::ProofSignatureInvalid,
        R::ProofClaimsInvalid,
        R::ProofJtiMissing,
        R::ProofJtiInvalid,
        R::ProofHtmMissing,
        R::ProofHtmMismatch,
        R::ProofHtuMissing,
        R::ProofHtuInvalid,
        R::ProofHtuMismatch,
        R::ProofIatMissing,
        R::ProofIatTooOld,
        R::ProofIatInFuture,
        R::ProofAthMissing,
        R::ProofAthMismatch,
        R::NonceInvalid,
    ];
    let cases = cases();
    for r in reachable {
        let n = cases.iter().filter(|c| c.want == Err(r)).count();
        assert!(n > 0, "no case for {r:?}");
    }
    // Every reason named Proof* is either reachable from verify_proof or decided elsewhere.
    let elsewhere = [R::ProofMissing, R::ProofMultiple, R::ProofReplayed];
    for r in DenyReason::ALL {
        let name = format!("{r:?}");
        if name.starts_with("Proof") {
            assert!(
                reachable.contains(r) || elsewhere.contains(r),
                "{name} not covered"
            );
        }
        if reachable.contains(r) {
            let slug = r.problem().slug();
            assert!(
                slug == "dpop-invalid" || slug == "use-dpop-nonce",
                "{name} maps to {slug}"
            );
        }
    }
}
