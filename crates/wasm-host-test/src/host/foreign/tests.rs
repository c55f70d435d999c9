//! The emulated `verify_signature`: its protobuf parsing, Envoy's answers (key import,
//! hash names, DER ECDSA, PKCS#1 v1.5), and that dpop_guard's encoder and start-up probe agree
//! with this independent implementation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::{answer, parse_result, result_message, Arguments, VerifySignature};
use crate::abi::status::{BAD_ARGUMENT, NOT_FOUND};
use dpop_client::{Alg, KeyKind, SigningKey};
use dpop_guard::jose::host_crypto;
use std::sync::OnceLock;

const TEXT: &[u8] = b"header.claims";

fn p256_key() -> SigningKey {
    SigningKey::from_seed(KeyKind::P256, b"foreign tests").unwrap()
}

fn rsa_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(KeyKind::Rsa { bits: 2048 }).unwrap())
}

fn p256_spki(k: &SigningKey) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey as _;
    let SigningKey::P256(k) = k else {
        panic!("not P-256")
    };
    k.verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn rsa_spki(k: &SigningKey) -> Vec<u8> {
    use rsa::pkcs8::EncodePublicKey as _;
    let SigningKey::Rsa(k) = k else {
        panic!("not RSA")
    };
    k.to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// The DER ECDSA-Sig-Value of an ES256 signature over `text`.
fn es256_der(k: &SigningKey, text: &[u8]) -> Vec<u8> {
    let jose = k.sign(Alg::ES256, text).unwrap();
    p256::ecdsa::Signature::from_slice(&jose)
        .unwrap()
        .to_der()
        .as_bytes()
        .to_vec()
}

fn args(hash: &str, key: Vec<u8>, signature: Vec<u8>, text: &[u8]) -> Vec<u8> {
    Arguments {
        hash_function: hash.into(),
        public_key: key,
        signature,
        text: text.to_vec(),
        public_key_pem: String::new(),
    }
    .serialize()
}

/// Envoy's answer: (result, error), or the status.
fn envoy(args: &[u8]) -> Result<(bool, String), u32> {
    answer(VerifySignature::Envoy, args).map(|r| parse_result(&r).unwrap())
}

#[test]
fn arguments_parse_like_protobuf() {
    let a = Arguments {
        hash_function: "sha256".into(),
        public_key: vec![1, 2, 3],
        signature: vec![0; 300], // a two-byte length
        text: b"t".to_vec(),
        public_key_pem: String::new(),
    };
    let bytes = a.serialize();
    assert_eq!(Arguments::parse(&bytes), Some(a.clone()));
    // unknown fields of every wire type, and a known number with another wire type, are
    // skipped; the last of a repeated field wins; order does not matter
    let mut odd = vec![0x48, 0x96, 0x01]; // field 9, varint 150
    odd.extend([0x51, 1, 2, 3, 4, 5, 6, 7, 8]); // field 10, fixed64
    odd.extend([0x5d, 1, 2, 3, 4]); // field 11, fixed32
    odd.extend([0x62, 2, b'x', b'y']); // field 12, bytes
    odd.extend([0x10, 0x05]); // field 2 as a varint: unknown
    odd.extend([0x22, 1, b'0']); // text "0", overwritten below
    odd.extend(&bytes);
    assert_eq!(Arguments::parse(&odd), Some(a));
    assert_eq!(Arguments::parse(b""), Some(Arguments::default()));
    for bad in [
        &bytes[..bytes.len() - 1],           // truncated value
        &[0x0a, 0x80][..],                   // truncated length
        &[0x02, 0x00][..],                   // field number 0
        &[0x0b][..],                         // a group
        &[0x0a, 2, 0xff, 0xfe][..],          // hash_function not UTF-8
        &[0x2a, 1, 0xc3][..],                // public_key_pem not UTF-8
        &[0x0f, 0][..],                      // wire type 7
        &[0x80, 0x80, 0x80, 0x80, 0x80][..], // an unterminated key
    ] {
        assert_eq!(Arguments::parse(bad), None, "{bad:02x?}");
    }
}

#[test]
fn results_serialize_like_protobuf() {
    assert_eq!(result_message(true, ""), [0x08, 0x01]);
    assert_eq!(result_message(false, ""), b"");
    assert_eq!(result_message(false, "no"), [0x12, 2, b'n', b'o']);
    let long = "e".repeat(200);
    assert_eq!(
        parse_result(&result_message(false, &long)),
        Some((false, long))
    );
    assert_eq!(parse_result(&[0x08, 0x01]), Some((true, String::new())));
    assert_eq!(parse_result(&[0x18, 0x01]), None);
}

#[test]
fn envoy_verifies_es256_with_der_signatures() {
    let k = p256_key();
    let (spki, sig) = (p256_spki(&k), es256_der(&k, TEXT));
    assert_eq!(
        envoy(&args("sha256", spki.clone(), sig.clone(), TEXT)),
        Ok((true, String::new()))
    );
    // the hash name is compared ASCII-case-insensitively
    assert_eq!(
        envoy(&args("SHA256", spki.clone(), sig.clone(), TEXT)),
        Ok((true, String::new()))
    );
    let refused = Ok((false, "Failed to verify digest. Error code: 0".to_owned()));
    assert_eq!(envoy(&args("sha256", spki.clone(), sig, b"other")), refused);
    // JOSE's r ‖ s is not what BoringSSL takes
    let jose = k.sign(Alg::ES256, TEXT).unwrap();
    assert_eq!(envoy(&args("sha256", spki.clone(), jose, TEXT)), refused);
    // another hash: the digest truncated to the order's 256 bits
    let sha384 = {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        use sha2::Digest as _;
        let SigningKey::P256(sk) = &k else {
            unreachable!()
        };
        let s: p256::ecdsa::Signature = sk.sign_prehash(&sha2::Sha384::digest(TEXT)).unwrap();
        s.to_der().as_bytes().to_vec()
    };
    assert_eq!(
        envoy(&args("sha384", spki, sha384, TEXT)),
        Ok((true, String::new()))
    );
}

#[test]
fn envoy_verifies_rs256_pkcs1v15() {
    let k = rsa_key();
    let spki = rsa_spki(k);
    let sig = k.sign(Alg::RS256, TEXT).unwrap();
    assert_eq!(
        envoy(&args("sha256", spki.clone(), sig.clone(), TEXT)),
        Ok((true, String::new()))
    );
    assert!(matches!(
        envoy(&args("sha256", spki.clone(), sig.clone(), b"other")),
        Ok((false, _))
    ));
    // a PSS signature is not PKCS#1 v1.5
    let pss = k.sign(Alg::PS256, TEXT).unwrap();
    assert!(matches!(
        envoy(&args("sha256", spki.clone(), pss, TEXT)),
        Ok((false, _))
    ));
    // another hash, another DigestInfo
    assert!(matches!(
        envoy(&args("sha512", spki, sig, TEXT)),
        Ok((false, _))
    ));
}

#[test]
fn envoy_refuses_arguments_and_keys_it_cannot_use() {
    let k = p256_key();
    let (spki, sig) = (p256_spki(&k), es256_der(&k, TEXT));
    // not the message
    assert_eq!(envoy(&[0xff]), Err(BAD_ARGUMENT));
    // no key; a key that is not a SubjectPublicKeyInfo; a truncated one
    assert_eq!(
        envoy(&args("sha256", Vec::new(), sig.clone(), TEXT)),
        Err(BAD_ARGUMENT)
    );
    assert_eq!(
        envoy(&args("sha256", b"not a key".to_vec(), sig.clone(), TEXT)),
        Err(BAD_ARGUMENT)
    );
    assert_eq!(
        envoy(&args(
            "sha256",
            spki[..spki.len() - 1].to_vec(),
            sig.clone(),
            TEXT
        )),
        Err(BAD_ARGUMENT)
    );
    // both a DER and a PEM key
    let both = Arguments {
        hash_function: "sha256".into(),
        public_key: spki.clone(),
        signature: sig.clone(),
        text: TEXT.to_vec(),
        public_key_pem: "-----BEGIN PUBLIC KEY-----".into(),
    };
    assert_eq!(envoy(&both.serialize()), Err(BAD_ARGUMENT));
    // an unknown hash is an answer, not a refusal of the arguments
    assert_eq!(
        envoy(&args("md5", spki, sig, TEXT)),
        Ok((false, "md5 is not supported.".to_owned()))
    );
}

#[test]
fn other_modes_answer_the_same_to_everything() {
    for bytes in [&b""[..], &[0xff], &args("md5", vec![1], vec![2], b"")] {
        assert_eq!(answer(VerifySignature::Absent, bytes), Err(NOT_FOUND));
        let t = answer(VerifySignature::AlwaysTrue, bytes).unwrap();
        assert_eq!(parse_result(&t).map(|r| r.0), Some(true));
        let f = answer(VerifySignature::AlwaysFalse, bytes).unwrap();
        assert_eq!(parse_result(&f).map(|r| r.0), Some(false));
    }
}

// dpop_guard's side, checked against this one: its DER encodings equal the reference
// crates', its arguments parse here, its result parser reads these results, and its start-up
// probe passes Envoy and catches the hosts that answer the same to everything.

#[test]
fn dpop_guard_encodings_match_the_reference_crates() {
    let k = p256_key();
    let members = k.public_members().unwrap();
    let member = |name: &str| {
        let v = &members.iter().find(|(n, _)| *n == name).unwrap().1;
        dpop_guard::b64::decode(v).unwrap()
    };
    let (x, y): ([u8; 32], [u8; 32]) = (
        member("x").try_into().unwrap(),
        member("y").try_into().unwrap(),
    );
    assert_eq!(host_crypto::p256_spki(&x, &y), p256_spki(&k));
    let jose = k.sign(Alg::ES256, TEXT).unwrap();
    assert_eq!(
        host_crypto::es256_der_signature(&jose).unwrap(),
        es256_der(&k, TEXT)
    );
    let r = rsa_key();
    let members = r.public_members().unwrap();
    let member = |name: &str| {
        let v = &members.iter().find(|(n, _)| *n == name).unwrap().1;
        dpop_guard::b64::decode(v).unwrap()
    };
    assert_eq!(
        host_crypto::rsa_spki(&member("n"), &member("e")),
        rsa_spki(r)
    );
    let a = host_crypto::verify_arguments(b"key", b"sig", b"text");
    assert_eq!(
        Arguments::parse(&a),
        Some(Arguments {
            hash_function: "sha256".into(),
            public_key: b"key".to_vec(),
            signature: b"sig".to_vec(),
            text: b"text".to_vec(),
            public_key_pem: String::new(),
        })
    );
    for (result, error) in [(true, ""), (false, ""), (false, "Failed to verify digest.")] {
        assert_eq!(
            host_crypto::verify_result(&result_message(result, error)),
            Some(result)
        );
    }
}

fn through(mode: VerifySignature, spki: &[u8], sig: &[u8], text: &[u8]) -> Result<bool, u32> {
    let out = answer(mode, &host_crypto::verify_arguments(spki, sig, text))?;
    host_crypto::verify_result(&out).ok_or(4)
}

#[test]
fn dpop_guard_probe_passes_envoy_only() {
    use host_crypto::{probe, ProbeFailure};
    fn envoy(s: &[u8], g: &[u8], t: &[u8]) -> Result<bool, u32> {
        through(VerifySignature::Envoy, s, g, t)
    }
    fn absent(s: &[u8], g: &[u8], t: &[u8]) -> Result<bool, u32> {
        through(VerifySignature::Absent, s, g, t)
    }
    fn always_true(s: &[u8], g: &[u8], t: &[u8]) -> Result<bool, u32> {
        through(VerifySignature::AlwaysTrue, s, g, t)
    }
    fn always_false(s: &[u8], g: &[u8], t: &[u8]) -> Result<bool, u32> {
        through(VerifySignature::AlwaysFalse, s, g, t)
    }
    assert_eq!(probe(envoy), Ok(()));
    assert_eq!(probe(absent), Err(ProbeFailure::Unavailable(NOT_FOUND)));
    assert_eq!(probe(always_true), Err(ProbeFailure::AcceptedForgery));
    assert_eq!(probe(always_false), Err(ProbeFailure::RefusedValid));
}
