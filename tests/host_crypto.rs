//! The host crypto path (README "Security notes"): the DER encodings Envoy's
//! `verify_signature` is given, the protobuf messages, and the start-up probe that must catch a
//! host that does not really verify. The Wycheproof runs on the host path are in vectors.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#[path = "common/reference_host.rs"]
mod reference_host;

use dpop_guard::jose::host_crypto::{self, ProbeFailure};
use dpop_guard::jose::{Alg, PublicJwk};

#[test]
fn spki_encodings_parse_in_the_reference_crates() {
    use p256::pkcs8::DecodePublicKey as _;
    let spki = host_crypto::p256_spki(&host_crypto::PROBE_P256_X, &host_crypto::PROBE_P256_Y);
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let point = key.to_encoded_point(false);
    assert_eq!(point.x().unwrap()[..], host_crypto::PROBE_P256_X);
    for bits in [2048usize, 3072, 4096] {
        let private = rsa::RsaPrivateKey::new(&mut rand_core_rng(), bits).unwrap();
        use rsa::traits::PublicKeyParts as _;
        let (n, e) = (private.n().to_bytes_be(), private.e().to_bytes_be());
        let spki = host_crypto::rsa_spki(&n, &e);
        let back = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
        assert_eq!(back.n().to_bytes_be(), n, "{bits}");
        assert_eq!(back.e().to_bytes_be(), e, "{bits}");
    }
}

fn rand_core_rng() -> impl rsa::rand_core::CryptoRngCore {
    rsa::rand_core::OsRng
}

#[test]
fn es256_signatures_become_strict_der_or_are_refused_before_the_host() {
    let der = host_crypto::es256_der_signature(&host_crypto::PROBE_P256_SIG).unwrap();
    let parsed = p256::ecdsa::Signature::from_der(&der).unwrap();
    assert_eq!(parsed.to_bytes()[..], host_crypto::PROBE_P256_SIG);
    // small r and s (leading zeros dropped; a 0x00 added below a set top bit)
    let mut small = [0u8; 64];
    small[31] = 0x80;
    small[63] = 1;
    let der = host_crypto::es256_der_signature(&small).unwrap();
    assert_eq!(der, [0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01]);
    assert!(p256::ecdsa::Signature::from_der(&der).is_ok());
    // r = 0, s = n, and wrong lengths never reach the host
    let order =
        hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551").unwrap();
    let mut zero_r = host_crypto::PROBE_P256_SIG;
    zero_r[..32].fill(0);
    let mut s_is_n = host_crypto::PROBE_P256_SIG;
    s_is_n[32..].copy_from_slice(&order);
    for bad in [&zero_r[..], &s_is_n[..], &[1u8; 63][..], &[1u8; 65][..]] {
        assert_eq!(host_crypto::es256_der_signature(bad), None);
    }
}

#[test]
fn probe_vector_verifies_with_our_own_verifier() {
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256",
        "x": dpop_guard::b64::encode(&host_crypto::PROBE_P256_X),
        "y": dpop_guard::b64::encode(&host_crypto::PROBE_P256_Y),
    });
    let key = PublicJwk::from_json(jwk.to_string().as_bytes()).unwrap();
    assert!(key.verify(
        Alg::ES256,
        host_crypto::PROBE_TEXT,
        &host_crypto::PROBE_P256_SIG
    ));
    assert!(!key.verify(Alg::ES256, b"other", &host_crypto::PROBE_P256_SIG));
}

#[test]
fn the_probe_trusts_only_a_host_that_verifies_and_refuses() {
    assert_eq!(host_crypto::probe(reference_host::verify), Ok(()));
    fn yes(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, u32> {
        Ok(true)
    }
    fn no(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, u32> {
        Ok(false)
    }
    fn absent(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, u32> {
        Err(1)
    }
    assert_eq!(host_crypto::probe(yes), Err(ProbeFailure::AcceptedForgery));
    assert_eq!(host_crypto::probe(no), Err(ProbeFailure::RefusedValid));
    assert_eq!(
        host_crypto::probe(absent),
        Err(ProbeFailure::Unavailable(1))
    );
}

#[test]
fn foreign_function_messages() {
    let args = host_crypto::verify_arguments(b"KEY", b"SIG", b"TEXT");
    assert_eq!(
        args,
        b"\x0a\x06sha256\x12\x03KEY\x1a\x03SIG\x22\x04TEXT".to_vec()
    );
    // a long field: the length is a varint
    let long = host_crypto::verify_arguments(&[7u8; 300], b"", b"");
    assert_eq!(&long[8..11], &[0x12, 0xac, 0x02]);
    assert_eq!(host_crypto::verify_result(b"\x08\x01"), Some(true));
    assert_eq!(host_crypto::verify_result(b""), Some(false));
    assert_eq!(
        host_crypto::verify_result(b"\x08\x00\x12\x05error"),
        Some(false)
    );
    for junk in [
        &b"\x08"[..],
        b"\x08\x02",
        b"\x12\x09abc",
        b"\x18\x01",
        b"\x12\xff\xff\xff\xff\xff",
    ] {
        assert_eq!(host_crypto::verify_result(junk), None, "{junk:?}");
    }
}

#[test]
fn a_host_error_falls_back_to_our_verifier() {
    fn failing(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, u32> {
        Err(10)
    }
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256",
        "x": dpop_guard::b64::encode(&host_crypto::PROBE_P256_X),
        "y": dpop_guard::b64::encode(&host_crypto::PROBE_P256_Y),
    });
    let key = PublicJwk::from_json(jwk.to_string().as_bytes()).unwrap();
    host_crypto::set_host_verifier(Some(failing));
    let ok = key.verify(
        Alg::ES256,
        host_crypto::PROBE_TEXT,
        &host_crypto::PROBE_P256_SIG,
    );
    let forged = key.verify(Alg::ES256, b"x", &host_crypto::PROBE_P256_SIG);
    host_crypto::set_host_verifier(None);
    assert!(ok && !forged);
}
