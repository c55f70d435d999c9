//! Arbitrary bytes as a JWK: parsing must never panic; an accepted key has a 43-character
//! thumbprint, and its RFC 7638 canonical form is itself an accepted JWK with the same
//! thumbprint (the canonical members carry the whole key).
#![no_main]

use dpop_guard::jose::{Alg, PublicJwk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = PublicJwk::from_json(data) else {
        return;
    };
    let jkt = key.thumbprint();
    assert_eq!(jkt.len(), 43, "thumbprint {jkt:?}");
    let canonical = key.thumbprint_input();
    let again = PublicJwk::from_json(canonical.as_bytes());
    assert!(again.is_ok(), "canonical form refused: {canonical}");
    if let Ok(again) = again {
        assert_eq!(again.thumbprint(), jkt);
        assert_eq!(again.thumbprint_input(), canonical);
    }
    // Verification with garbage must be a clean `false`, for every algorithm.
    for alg in Alg::ALL {
        let _ = key.verify(alg, data, data);
        if !key.accepts(alg) {
            assert!(!key.verify(alg, data, data));
        }
    }
});
