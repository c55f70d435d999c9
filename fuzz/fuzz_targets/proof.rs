//! Arbitrary bytes as a `DPoP` header value: `verify_proof` must never panic, whatever it gets.
#![no_main]

use dpop_guard::jose::Alg;
use dpop_guard::{verify_proof, ProofPolicy, RequestFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let proof = String::from_utf8_lossy(data);
    let policy = ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect(),
        ..ProofPolicy::default()
    };
    let req = RequestFacts {
        method: "GET",
        uri: "https://server.example.com/token",
        access_token: Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        now: 1_562_262_616,
    };
    let _ = verify_proof(&proof, &req, &policy);
    let _ = verify_proof(
        &proof,
        &RequestFacts {
            access_token: None,
            method: "POST",
            ..req
        },
        &policy,
    );
    // A tight size cap takes the other early exit.
    let small = ProofPolicy {
        max_proof_bytes: 64,
        ..ProofPolicy::default()
    };
    let _ = verify_proof(&proof, &req, &small);
});
