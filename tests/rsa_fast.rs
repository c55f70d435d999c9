//! The fast RSA verifier (`jose::rsa_fast`): every RSA Wycheproof vector we ship, and a
//! differential test against the `rsa` crate (signatures, bit flips, garbage, raw modpow).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dpop_guard::b64;
use dpop_guard::jose::rsa_fast::{RsaVerifyingKey, MAX_BITS, MIN_BITS};
use rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

const WYCHEPROOF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/wycheproof/");

// ---------------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scheme {
    Pkcs1,
    Pss32,
}

#[derive(Default, Debug)]
struct Tally {
    total: usize,
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

fn run_wycheproof(file: &str, scheme: Scheme) -> Tally {
    let path = format!("{WYCHEPROOF_DIR}{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        if scheme == Scheme::Pss32 {
            assert_eq!(group["sLen"], 32);
            assert_eq!(group["mgfSha"], "SHA-256");
        }
        let jwk = group
            .get("publicKeyJwk")
            .or_else(|| group.get("keyJwk"))
            .expect("group JWK");
        let n = b64::decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = b64::decode(jwk["e"].as_str().unwrap()).unwrap();
        let key = RsaVerifyingKey::new(&n, &e).expect("Wycheproof key must be accepted");
        assert_eq!(key.bits(), group["keySize"].as_u64().unwrap() as usize);
        for t in group["tests"].as_array().unwrap() {
            tally.total += 1;
            let msg = hex::decode(t["msg"].as_str().unwrap()).unwrap();
            let sig = hex::decode(t["sig"].as_str().unwrap()).unwrap();
            let digest: [u8; 32] = Sha256::digest(&msg).into();
            let got = match scheme {
                Scheme::Pkcs1 => key.verify_pkcs1v15_sha256(&digest, &sig),
                Scheme::Pss32 => key.verify_pss_sha256(&digest, &sig, 32),
            };
            let flags: Vec<&str> = t["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let want = match t["result"].as_str().unwrap() {
                "valid" => {
                    tally.valid += 1;
                    true
                }
                "invalid" => {
                    tally.invalid += 1;
                    false
                }
                "acceptable" => {
                    tally.acceptable += 1;
                    // Same policy as tests/vectors.rs: MissingNull is rejected; any other
                    // acceptable flag needs a decision first.
                    assert_eq!(flags, ["MissingNull"], "{file} tc {}", t["tcId"]);
                    false
                }
                other => panic!("unknown result {other}"),
            };
            if got != want {
                failures.push(format!(
                    "tc {} ({}; {flags:?}; {}): want {want}, got {got}",
                    t["tcId"],
                    t["result"],
                    t["comment"].as_str().unwrap_or("")
                ));
            }
        }
    }
    println!(
        "{file}: {} vectors ({} valid, {} invalid, {} acceptable)",
        tally.total, tally.valid, tally.invalid, tally.acceptable
    );
    assert!(
        failures.is_empty(),
        "{file}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(tally.total as u64, doc["numberOfTests"].as_u64().unwrap());
    assert!(tally.valid > 0 && tally.invalid > 0);
    tally
}

#[test]
fn wycheproof_pkcs1_2048_sha256() {
    run_wycheproof("rsa_signature_2048_sha256_test.json", Scheme::Pkcs1);
}

#[test]
fn wycheproof_pkcs1_3072_sha256() {
    run_wycheproof("rsa_signature_3072_sha256_test.json", Scheme::Pkcs1);
}

#[test]
fn wycheproof_pkcs1_4096_sha256() {
    run_wycheproof("rsa_signature_4096_sha256_test.json", Scheme::Pkcs1);
}

#[test]
fn wycheproof_pss_2048_sha256_mgf1_32() {
    run_wycheproof("rsa_pss_2048_sha256_mgf1_32_test.json", Scheme::Pss32);
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

fn keys_and_check(bits: usize, exp: Option<u32>, count: usize, messages: usize) -> Counts {
    let mut counts = Counts::default();
    for _ in 0..count {
        let sk = match exp {
            None => RsaPrivateKey::new(&mut OsRng, bits).unwrap(),
            Some(e) => RsaPrivateKey::new_with_exp(&mut OsRng, bits, &BigUint::from(e)).unwrap(),
        };
        exercise_key(&sk, messages, &mut counts);
    }
    println!("{bits}-bit keys, e = {exp:?}: {counts:?}");
    counts
}

#[test]
fn differential_2048() {
    keys_and_check(2048, None, 3, 20);
}

#[test]
fn differential_3072() {
    keys_and_check(3072, None, 2, 12);
}

#[test]
fn differential_4096() {
    keys_and_check(4096, None, 1, 12);
}

#[test]
fn differential_e3() {
    keys_and_check(2048, Some(3), 2, 12);
    keys_and_check(3072, Some(3), 1, 8);
}

/// Moduli whose bit length is not a multiple of 8 or 32 (PSS emLen = k − 1 when
/// modBits ≡ 1 mod 8; the top limb partly used).
#[test]
fn differential_odd_sizes() {
    for bits in [2049, 2056, 2081, 2111] {
        keys_and_check(bits, None, 1, 6);
    }
}

/// RSAVP1 against num-bigint's modpow for random odd moduli of many sizes (any odd n works:
/// primality plays no part in the verifier), random exponents and random bases, including
/// sparse and dense moduli that stress the long division computing R² mod n.
#[test]
fn modpow_matches_biguint() {
    let mut sizes: Vec<usize> = vec![
        2048, 2049, 2055, 2056, 2057, 2079, 2080, 2081, 3072, 4095, 4096, 4097, 6000, 8191, 8192,
    ];
    for _ in 0..10 {
        sizes.push(MIN_BITS + random_below(MAX_BITS - MIN_BITS + 1));
    }
    let mut checked = 0;
    for &bits in &sizes {
        let len = bits.div_ceil(8);
        let top_bits = bits - 8 * (len - 1);
        let shape = |kind: usize| -> Vec<u8> {
            let mut n = match kind {
                0 => random_bytes(len),
                1 => vec![0xff; len],
                _ => vec![0; len],
            };
            n[0] &= ((1u16 << top_bits) - 1) as u8;
            n[0] |= 1 << (top_bits - 1);
            n[len - 1] |= 1;
            n
        };
        for kind in 0..3 {
            let n = shape(kind);
            let nb = BigUint::from_bytes_be(&n);
            assert_eq!(nb.bits(), bits);
            for e in [3u32, 65537, 0xffff_ffff, (OsRng.next_u32() | 1).max(3)] {
                let key = RsaVerifyingKey::with_exponent(&n, e).unwrap();
                assert_eq!(key.bits(), bits);
                assert_eq!(key.size(), len);
                for _ in 0..3 {
                    let s = BigUint::from_bytes_be(&random_bytes(len)) % &nb;
                    let mut sb = s.to_bytes_be();
                    while sb.len() < len {
                        sb.insert(0, 0);
                    }
                    let m = key.public_op(&sb).unwrap();
                    assert_eq!(m.len(), len);
                    assert_eq!(
                        BigUint::from_bytes_be(&m),
                        s.modpow(&BigUint::from(e), &nb),
                        "bits {bits} kind {kind} e {e}"
                    );
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} modpow results agree");
}

#[test]
fn key_validation() {
    let n = {
        let mut n = random_bytes(256);
        n[0] |= 0x80;
        n[255] |= 1;
        n
    };
    let e = [1u8, 0, 1];
    assert!(RsaVerifyingKey::new(&n, &e).is_some());
    // leading zeros are ignored
    let mut padded = vec![0, 0];
    padded.extend(&n);
    assert_eq!(
        RsaVerifyingKey::new(&padded, &[0, 1, 0, 1]),
        RsaVerifyingKey::new(&n, &e)
    );
    // even modulus
    let mut even = n.clone();
    even[255] &= 0xfe;
    assert!(RsaVerifyingKey::new(&even, &e).is_none());
    // too small / too large
    assert!(RsaVerifyingKey::new(&n[1..], &e).is_none());
    let mut small = n[1..].to_vec();
    small[0] |= 0x80;
    assert!(RsaVerifyingKey::new(&small, &e).is_none());
    let mut huge = vec![0x01];
    huge.extend(random_bytes(1024));
    huge[1024] |= 1;
    assert!(RsaVerifyingKey::new(&huge, &e).is_none());
    let mut max = vec![0x80];
    max.extend(random_bytes(1023));
    max[1023] |= 1;
    assert_eq!(RsaVerifyingKey::new(&max, &e).unwrap().bits(), 8192);
    assert!(RsaVerifyingKey::new(&[], &e).is_none());
    assert!(RsaVerifyingKey::new(&[0, 0], &e).is_none());
    // exponents: odd, 3 ≤ e < 2^32
    for bad in [
        &[][..],
        &[0],
        &[1],
        &[2],
        &[0, 1, 0, 0],
        &[1, 0, 0, 0, 1],
        &[0xff, 0xff, 0xff, 0xfe],
    ] {
        assert!(RsaVerifyingKey::new(&n, bad).is_none(), "{bad:?}");
    }
    for good in [
        &[3u8][..],
        &[0, 0, 0, 0, 3],
        &[0xff, 0xff, 0xff, 0xff],
        &[1, 0, 1],
    ] {
        assert!(RsaVerifyingKey::new(&n, good).is_some(), "{good:?}");
    }
    assert!(RsaVerifyingKey::with_exponent(&n, 1).is_none());
    assert!(RsaVerifyingKey::with_exponent(&n, 65536).is_none());
}
