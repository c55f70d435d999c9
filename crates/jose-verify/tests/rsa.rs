//! `jose_verify::rsa`: every RSA Wycheproof vector we ship (keys outside the policy are
//! refused, and named), and a differential test against the `rsa` crate (signatures, bit
//! flips, garbage, RSAVP1 against modpow, keys outside the policy refused). The arithmetic
//! itself is tested against big integers in `src/rsa/tests.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jose_verify::rsa::{RsaVerifyingKey, EXPONENT, MAX_BITS, MIN_BITS};
use rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "support/wycheproof.rs"]
mod wycheproof;

const WYCHEPROOF_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/wycheproof/"
);

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scheme {
    Pkcs1,
    Pss32,
}

/// Every vector of `file` through `RsaVerifyingKey` directly (the root's `tests/vectors.rs`
/// runs the same files through the JWK layer). Groups whose key is outside the policy must be
/// refused, and are counted as refused.
fn run_wycheproof(file: &str, scheme: Scheme) -> wycheproof::Tally {
    let path = format!("{WYCHEPROOF_DIR}{file}");
    let group_key = |_: usize, group: &Value| {
        if scheme == Scheme::Pss32 {
            assert_eq!(group["sLen"], 32);
            assert_eq!(group["mgfSha"], "SHA-256");
        }
        let jwk = group
            .get("publicKeyJwk")
            .or_else(|| group.get("keyJwk"))
            .expect("group JWK");
        let n = b64(jwk["n"].as_str().unwrap());
        let e = b64(jwk["e"].as_str().unwrap());
        let bits = group["keySize"].as_u64().unwrap() as usize;
        let e_value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if e_value != u64::from(EXPONENT) || !(MIN_BITS..=MAX_BITS).contains(&bits) {
            // Out of policy (Wycheproof has e = 3 groups): refused, whatever the vectors say.
            assert!(
                RsaVerifyingKey::new(&n, &e).is_none(),
                "{file}: a {bits}-bit key with e = {e_value} must be refused"
            );
            println!(
                "{file}: {bits}-bit key with e = {e_value} refused by policy ({} vectors not run)",
                group["tests"].as_array().unwrap().len()
            );
            return None;
        }
        let key = RsaVerifyingKey::new(&n, &e).expect("Wycheproof key must be accepted");
        assert_eq!(key.bits(), bits);
        Some(key)
    };
    wycheproof::run(&path, group_key, |key, case| {
        let digest: [u8; 32] = Sha256::digest(&case.msg).into();
        match scheme {
            Scheme::Pkcs1 => key.verify_pkcs1v15_sha256(&digest, &case.sig),
            Scheme::Pss32 => key.verify_pss_sha256(&digest, &case.sig, 32),
        }
    })
}

// The refused counts are the e = 3 groups (one vector each), the same groups as
// EXPLAINED_REJECTED_KEYS in the root's tests/vectors.rs.

#[test]
fn wycheproof_pkcs1_2048_sha256() {
    let t = run_wycheproof("rsa_signature_2048_sha256_test.json", Scheme::Pkcs1);
    assert_eq!(t.refused, 2);
}

#[test]
fn wycheproof_pkcs1_3072_sha256() {
    let t = run_wycheproof("rsa_signature_3072_sha256_test.json", Scheme::Pkcs1);
    assert_eq!(t.refused, 1);
}

#[test]
fn wycheproof_pkcs1_4096_sha256() {
    let t = run_wycheproof("rsa_signature_4096_sha256_test.json", Scheme::Pkcs1);
    assert_eq!(t.refused, 0);
}

#[test]
fn wycheproof_pss_2048_sha256_mgf1_32() {
    let t = run_wycheproof("rsa_pss_2048_sha256_mgf1_32_test.json", Scheme::Pss32);
    assert_eq!(t.refused, 0);
}

// ---------------------------------------------------------------------------------------------
// Differential against the `rsa` crate
// ---------------------------------------------------------------------------------------------

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    OsRng.fill_bytes(&mut v);
    v
}

fn random_below(n: usize) -> usize {
    (OsRng.next_u64() % n as u64) as usize
}

fn fast_key(pk: &RsaPublicKey) -> RsaVerifyingKey {
    RsaVerifyingKey::new(&pk.n().to_bytes_be(), &pk.e().to_bytes_be()).unwrap()
}

fn flip_bit(v: &mut [u8]) {
    let bit = random_below(v.len() * 8);
    v[bit / 8] ^= 1 << (bit % 8);
}

#[derive(Default, Debug)]
struct Counts {
    keys: usize,
    valid_pkcs1: usize,
    valid_pss: usize,
    flipped_rejected: usize,
    garbage_agreed: usize,
}

fn exercise_key(sk: &RsaPrivateKey, messages: usize, counts: &mut Counts) {
    let pk = RsaPublicKey::from(sk);
    let key = fast_key(&pk);
    assert_eq!(key.bits(), pk.n().bits());
    assert_eq!(key.size(), pk.size());
    counts.keys += 1;
    let pkcs1 = || Pkcs1v15Sign::new::<Sha256>();
    let pss = || Pss::new_with_salt::<Sha256>(32);
    for _ in 0..messages {
        let msg = random_bytes(random_below(200));
        let digest: [u8; 32] = Sha256::digest(&msg).into();

        let sig = sk.sign(pkcs1(), &digest).unwrap();
        assert!(pk.verify(pkcs1(), &digest, &sig).is_ok());
        assert!(key.verify_pkcs1v15_sha256(&digest, &sig));
        assert!(!key.verify_pss_sha256(&digest, &sig, 32));
        counts.valid_pkcs1 += 1;

        let psig = sk.sign_with_rng(&mut OsRng, pss(), &digest).unwrap();
        assert!(pk.verify(pss(), &digest, &psig).is_ok());
        assert!(key.verify_pss_sha256(&digest, &psig, 32));
        assert!(!key.verify_pkcs1v15_sha256(&digest, &psig));
        assert!(!key.verify_pss_sha256(&digest, &psig, 31));
        assert!(!key.verify_pss_sha256(&digest, &psig, 33));
        counts.valid_pss += 1;

        // Single-bit flips of the signature and of the digest.
        for _ in 0..4 {
            let mut bad = sig.clone();
            flip_bit(&mut bad);
            assert!(!key.verify_pkcs1v15_sha256(&digest, &bad));
            assert!(pk.verify(pkcs1(), &digest, &bad).is_err());
            let mut bad = psig.clone();
            flip_bit(&mut bad);
            assert!(!key.verify_pss_sha256(&digest, &bad, 32));
            assert!(pk.verify(pss(), &digest, &bad).is_err());
            let mut d = digest;
            flip_bit(&mut d);
            assert!(!key.verify_pkcs1v15_sha256(&d, &sig));
            assert!(!key.verify_pss_sha256(&d, &psig, 32));
            counts.flipped_rejected += 4;
        }

        // Wrong lengths.
        let mut longer = vec![0u8];
        longer.extend_from_slice(&sig);
        assert!(!key.verify_pkcs1v15_sha256(&digest, &longer));
        assert!(!key.verify_pkcs1v15_sha256(&digest, &sig[1..]));
        assert!(!key.verify_pkcs1v15_sha256(&digest, &[]));
        assert!(!key.verify_pss_sha256(&digest, &longer, 32));
        assert!(!key.verify_pss_sha256(&digest, &psig[1..], 32));
        // sig + n is congruent but out of range.
        let big = BigUint::from_bytes_be(&sig) + pk.n();
        let big = big.to_bytes_be();
        if big.len() == sig.len() {
            assert!(!key.verify_pkcs1v15_sha256(&digest, &big));
        }

        // Garbage signatures: the same answer as the rsa crate (in practice: reject).
        for _ in 0..4 {
            let g = random_bytes(pk.size());
            let ours = key.verify_pkcs1v15_sha256(&digest, &g);
            assert_eq!(ours, pk.verify(pkcs1(), &digest, &g).is_ok());
            let ours_pss = key.verify_pss_sha256(&digest, &g, 32);
            assert_eq!(ours_pss, pk.verify(pss(), &digest, &g).is_ok());
            // RSAVP1 agrees with plain modpow whenever the signature is in range.
            let gi = BigUint::from_bytes_be(&g);
            match key.public_op(&g) {
                Some(m) => {
                    assert!(&gi < pk.n());
                    assert_eq!(BigUint::from_bytes_be(&m), gi.modpow(pk.e(), pk.n()));
                }
                None => assert!(&gi >= pk.n()),
            }
            counts.garbage_agreed += 3;
        }
    }
    // Edge values of the signature.
    let digest = [0u8; 32];
    let size = pk.size();
    let n_bytes = pk.n().to_bytes_be();
    let n_padded = {
        let mut v = vec![0u8; size - n_bytes.len()];
        v.extend(&n_bytes);
        v
    };
    assert!(key.public_op(&n_padded).is_none());
    assert!(key.public_op(&vec![0xff; size]).is_none());
    assert_eq!(key.public_op(&vec![0; size]).unwrap(), vec![0; size]);
    let mut one = vec![0u8; size];
    *one.last_mut().unwrap() = 1;
    assert_eq!(key.public_op(&one).unwrap(), one);
    assert!(!key.verify_pkcs1v15_sha256(&digest, &one));
    assert!(!key.verify_pss_sha256(&digest, &one, 32));
    // n - 1 ≡ -1: (-1)^e = -1 (e odd) = n - 1.
    let nm1 = (pk.n() - BigUint::from(1u32)).to_bytes_be();
    let mut nm1_padded = vec![0u8; size - nm1.len()];
    nm1_padded.extend(&nm1);
    assert_eq!(key.public_op(&nm1_padded).unwrap(), nm1_padded);
}

fn keys_and_check(bits: usize, count: usize, messages: usize) -> Counts {
    let mut counts = Counts::default();
    for _ in 0..count {
        let sk = RsaPrivateKey::new(&mut OsRng, bits).unwrap();
        exercise_key(&sk, messages, &mut counts);
    }
    println!("{bits}-bit keys: {counts:?}");
    counts
}

#[test]
fn differential_2048() {
    keys_and_check(2048, 3, 20);
}

#[test]
fn differential_3072() {
    keys_and_check(3072, 2, 12);
}

#[test]
fn differential_4096() {
    keys_and_check(4096, 1, 12);
}

/// Moduli whose bit length is not a multiple of 8 or 32 (PSS emLen = k − 1 when
/// modBits ≡ 1 mod 8; the top limb partly used).
#[test]
fn differential_odd_sizes() {
    for bits in [2049, 2056, 2081, 2111] {
        keys_and_check(bits, 1, 6);
    }
}

/// Keys outside the policy are refused: real keys the `rsa` crate makes and verifies with (a
/// 1024-bit key, a 2048-bit key with e = 3: what the old differential tests used), and odd
/// moduli of every refused size and refused exponents (the checks need no real key).
#[test]
fn keys_outside_the_policy_are_refused() {
    let pkcs1 = || Pkcs1v15Sign::new::<Sha256>();
    let digest: [u8; 32] = Sha256::digest(b"refused").into();
    let keys = [
        RsaPrivateKey::new(&mut OsRng, 1024).unwrap(),
        RsaPrivateKey::new_with_exp(&mut OsRng, 2048, &BigUint::from(3u32)).unwrap(),
    ];
    for sk in &keys {
        let pk = RsaPublicKey::from(sk);
        let sig = sk.sign(pkcs1(), &digest).unwrap();
        assert!(pk.verify(pkcs1(), &digest, &sig).is_ok());
        assert!(
            RsaVerifyingKey::new(&pk.n().to_bytes_be(), &pk.e().to_bytes_be()).is_none(),
            "{}-bit key, e = {}",
            pk.n().bits(),
            pk.e()
        );
    }
    let modulus = |bits: usize| {
        let len = bits.div_ceil(8);
        let mut n = random_bytes(len);
        let top_bits = bits - 8 * (len - 1);
        n[0] &= ((1u16 << top_bits) - 1) as u8;
        n[0] |= 1 << (top_bits - 1);
        n[len - 1] |= 1;
        assert_eq!(BigUint::from_bytes_be(&n).bits(), bits);
        n
    };
    let e = EXPONENT.to_be_bytes();
    for bits in [
        1024,
        MIN_BITS - 8,
        MIN_BITS - 1,
        MAX_BITS + 1,
        MAX_BITS + 8,
        8192,
    ] {
        assert!(
            RsaVerifyingKey::new(&modulus(bits), &e).is_none(),
            "{bits} bits"
        );
    }
    for bits in [MIN_BITS, 3072, MAX_BITS] {
        let n = modulus(bits);
        assert!(RsaVerifyingKey::new(&n, &e).is_some(), "{bits} bits");
        for bad_e in [3u32, 17, 257, 65539, 0x7fff_ffff, u32::MAX] {
            assert!(
                RsaVerifyingKey::new(&n, &bad_e.to_be_bytes()).is_none(),
                "{bits} bits, e = {bad_e}"
            );
        }
    }
}
