//! `jose_verify::p256` (variable-time ES256 verification): every Wycheproof P-256/SHA-256 P1363
//! vector and differential tests against the `p256` crate (random keys, messages, corrupted and
//! random signatures, constructed edge cases, key validation), each on both verification paths.
//! The arithmetic (field, scalar, recoding, tables, point formulas, u1·G + u2·Q) is tested
//! against big integers and the `p256` crate in `src/p256/tests.rs`.
//!
//! `P256_ITERS=<factor>` scales the random tests (e.g. `P256_ITERS=20 cargo test -p
//! jose-verify --test p256`); `P256_SEED` replays a printed seed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/p256.rs"]
mod support;
#[path = "support/wycheproof.rs"]
mod wycheproof;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jose_verify::p256::P256VerifyingKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::{AffinePoint, ProjectivePoint, Scalar};
use rand_core::OsRng;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::*;

/// The automatic switch: a key object's first verification takes the 256-bit path, the
/// second prepares it; clones keep the prepared tables.
#[test]
fn keys_prepare_themselves_on_second_use() {
    let sk = SigningKey::random(&mut OsRng);
    let (x, y) = affine_xy(sk.verifying_key().as_affine());
    let digest: [u8; 32] = Sha256::digest(b"reuse").into();
    let sig: [u8; 64] = PrehashSigner::<Signature>::sign_prehash(&sk, &digest)
        .unwrap()
        .to_bytes()
        .into();
    let key = P256VerifyingKey::from_affine(&x, &y).unwrap();
    let early_clone = key.clone();
    assert!(!key.is_prepared());
    assert!(key.verify_prehashed(&digest, &sig));
    assert!(!key.is_prepared());
    let mut bad = sig;
    bad[5] ^= 1;
    assert!(!key.verify_prehashed(&digest, &bad));
    assert!(key.is_prepared());
    assert!(key.verify_prehashed(&digest, &sig));
    assert!(key.clone().is_prepared());
    assert!(!early_clone.is_prepared());
    assert!(early_clone.verify_prehashed(&digest, &sig));
}

// ---------------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------------

const WYCHEPROOF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json"
);

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// The group's key coordinates: from `publicKeyJwk` when present, else from `publicKey.wx/wy`
/// (hex, possibly with a leading zero byte or shorter than 32 bytes), left-padded to 32.
fn group_key(group: &Value) -> ([u8; 32], [u8; 32]) {
    if let Some(j) = group.get("publicKeyJwk") {
        assert_eq!(j["kty"], "EC");
        assert_eq!(j["crv"], "P-256");
        let c = |name: &str| -> [u8; 32] {
            let v = b64(j[name].as_str().unwrap());
            v.try_into().expect("JWK coordinate is not 32 bytes")
        };
        return (c("x"), c("y"));
    }
    let pk = &group["publicKey"];
    assert_eq!(pk["curve"], "secp256r1");
    let c = |name: &str| -> [u8; 32] {
        let v = wycheproof::padded_coordinate(pk, name, 32);
        v.try_into().unwrap()
    };
    (c("wx"), c("wy"))
}

#[test]
fn wycheproof_ecdsa_secp256r1_sha256_p1363() {
    let mut from_raw = 0usize;
    let key = |gi: usize, group: &Value| {
        from_raw += usize::from(group.get("publicKeyJwk").is_none());
        let (x, y) = group_key(group);
        let key = Both::new(&x, &y);
        // Every key in the file is a valid public key; the crate must agree with p256.
        assert_eq!(key.is_some(), ref_key(&x, &y).is_some(), "group {gi}");
        let key = key.unwrap_or_else(|| panic!("group {gi}: key refused"));
        assert_eq!(key.prepared.to_affine(), (x, y));
        assert_eq!(key.fresh().to_affine(), (x, y));
        Some(key)
    };
    let t = wycheproof::run(WYCHEPROOF, key, |key, case| {
        key.verify_sha256(&case.msg, &case.sig)
    });
    println!(
        "wycheproof p256: {from_raw} of {} keys from raw wx/wy",
        t.groups
    );
}

// ---------------------------------------------------------------------------------------------
// Differential: signatures made by p256
// ---------------------------------------------------------------------------------------------

#[test]
fn random_keys_and_messages_signed_by_p256_verify() {
    let mut rng = Rng::new("random_keys_and_messages_signed_by_p256_verify");
    let mut high_s = 0;
    let keys = iters(40);
    for _ in 0..keys {
        let sk = SigningKey::random(&mut OsRng);
        let key = fast_key(sk.verifying_key());
        for _ in 0..10 {
            let mut msg = vec![0u8; rng.below(100)];
            for b in msg.iter_mut() {
                *b = rng.next() as u8;
            }
            let digest: [u8; 32] = Sha256::digest(&msg).into();
            let sig: Signature = sk.sign_prehash(&digest).unwrap();
            let sig: [u8; 64] = sig.to_bytes().into();
            assert!(
                key.verify_prehashed(&digest, &sig),
                "digest {digest:x?} sig {sig:x?}"
            );
            assert!(key.verify_sha256(&msg, &sig));
            high_s += usize::from(sig[32] >= 0x80);
        }
    }
    assert!(high_s > 0, "no high-S signature in the sample");
    println!("{} signatures verified ({high_s} with s > n/2)", keys * 10);
}

#[test]
fn corrupted_signatures_digests_and_keys_are_refused() {
    let mut rng = Rng::new("corrupted_signatures_digests_and_keys_are_refused");
    let rounds = iters(60);
    for _ in 0..rounds {
        let sk = SigningKey::random(&mut OsRng);
        let vk = *sk.verifying_key();
        let key = fast_key(&vk);
        let digest = rng.bytes32();
        let sig: [u8; 64] = PrehashSigner::<Signature>::sign_prehash(&sk, &digest)
            .unwrap()
            .to_bytes()
            .into();
        assert!(key.verify_prehashed(&digest, &sig));

        // one bit of r or s
        let mut bad = sig;
        let bit = rng.below(512);
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !key.verify_prehashed(&digest, &bad),
            "flipped sig bit {bit}"
        );
        assert!(!ref_verify(&vk, &digest, &bad));

        // one bit of the digest (a flip only matters mod n; a 256-bit digest flip always does)
        let mut d2 = digest;
        let bit = rng.below(256);
        d2[bit / 8] ^= 1 << (bit % 8);
        assert!(!key.verify_prehashed(&d2, &sig), "flipped digest bit {bit}");

        // one bit of the key: either not a point any more, or another key
        let (mut x, mut y) = affine_xy(vk.as_affine());
        let bit = rng.below(512);
        if bit < 256 {
            x[bit / 8] ^= 1 << (bit % 8);
        } else {
            y[(bit - 256) / 8] ^= 1 << (bit % 8);
        }
        let other = Both::new(&x, &y);
        assert_eq!(other.is_some(), ref_key(&x, &y).is_some());
        if let Some(k) = other {
            assert!(!k.verify_prehashed(&digest, &sig));
        }
        // another valid key
        let k2 = fast_key(SigningKey::random(&mut OsRng).verifying_key());
        assert!(!k2.verify_prehashed(&digest, &sig));
        // wrong lengths
        assert!(!key.verify_sha256(b"x", &sig[..63]));
        assert!(!key.verify_sha256(b"x", &[sig.as_slice(), &[0]].concat()));
    }
}

#[test]
fn random_signatures_agree_with_p256() {
    let mut rng = Rng::new("random_signatures_agree_with_p256");
    let sk = SigningKey::random(&mut OsRng);
    let vk = *sk.verifying_key();
    let key = fast_key(&vk);
    let mut accepted = 0;
    for i in 0..iters(400) {
        let digest = if i % 2 == 0 {
            rng.bytes32()
        } else {
            rng.edgy32()
        };
        let sig = sig_bytes(&rng.edgy32(), &rng.edgy32());
        let want = ref_verify(&vk, &digest, &sig);
        assert_eq!(
            key.verify_prehashed(&digest, &sig),
            want,
            "digest {digest:x?} sig {sig:x?}"
        );
        accepted += usize::from(want);
    }
    assert_eq!(accepted, 0, "a random signature verified");
}

#[test]
fn constructed_signatures_with_chosen_u1_u2_agree_with_p256() {
    let mut rng = Rng::new("constructed_signatures_with_chosen_u1_u2_agree_with_p256");
    for i in 0..iters(200) {
        let d = rng.scalar();
        let q = ProjectivePoint::GENERATOR * d;
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        // u1 = 0 (digest ≡ 0), small, and random; u2 small and random
        let u1 = match i % 4 {
            0 => Scalar::ZERO,
            1 => Scalar::from(rng.next() % 1000),
            _ => rng.scalar(),
        };
        let u2 = if i % 3 == 0 {
            Scalar::from(1 + rng.next() % 1000)
        } else {
            rng.scalar()
        };
        let Some((digest, sig, _)) = constructed(&q, &u1, &u2) else {
            continue;
        };
        assert!(ref_verify(&vk, &digest, &sig));
        assert!(key.verify_prehashed(&digest, &sig), "u1 {u1:?} u2 {u2:?}");
        // the same e as digest + n when that still fits in 256 bits
        let dn = big(&digest) + n_big();
        if dn.bits() <= 256 {
            let d2 = to32(&dn);
            assert!(ref_verify(&vk, &d2, &sig));
            assert!(key.verify_prehashed(&d2, &sig), "digest ≥ n");
        }
    }
}

#[test]
fn edge_values_of_r_and_s() {
    let sk = SigningKey::random(&mut OsRng);
    let vk = *sk.verifying_key();
    let key = fast_key(&vk);
    let digest: [u8; 32] = Sha256::digest(b"edge").into();
    let sig: [u8; 64] = PrehashSigner::<Signature>::sign_prehash(&sk, &digest)
        .unwrap()
        .to_bytes()
        .into();
    let r: [u8; 32] = sig[..32].try_into().unwrap();
    let s: [u8; 32] = sig[32..].try_into().unwrap();
    assert!(key.verify_prehashed(&digest, &sig));
    let zero = [0u8; 32];
    let n = be(&N);
    let n1 = sub_small(&n, 1);
    let ones = [0xFFu8; 32];
    let r_plus_n = big(&r) + n_big();
    let s_plus_n = big(&s) + n_big();
    let mut cases = vec![
        sig_bytes(&zero, &s),
        sig_bytes(&r, &zero),
        sig_bytes(&zero, &zero),
        sig_bytes(&n, &s),
        sig_bytes(&r, &n),
        sig_bytes(&n1, &s),
        sig_bytes(&r, &n1),
        sig_bytes(&n1, &n1),
        sig_bytes(&ones, &s),
        sig_bytes(&r, &ones),
        sig_bytes(&be(&P), &s),
    ];
    if r_plus_n.bits() <= 256 {
        cases.push(sig_bytes(&to32(&r_plus_n), &s));
    }
    if s_plus_n.bits() <= 256 {
        cases.push(sig_bytes(&r, &to32(&s_plus_n)));
    }
    for c in &cases {
        assert!(!key.verify_prehashed(&digest, c), "{c:x?}");
        assert!(!ref_verify(&vk, &digest, c));
    }
    // (r, n − s) is the other valid signature (ECDSA malleability): accepted, like p256.
    let neg_s = to32(&(n_big() - big(&s)));
    let flipped = sig_bytes(&r, &neg_s);
    assert!(ref_verify(&vk, &digest, &flipped));
    assert!(key.verify_prehashed(&digest, &flipped));
}

#[test]
fn keys_refused_like_p256() {
    let mut rng = Rng::new("keys_refused_like_p256");
    let g = affine_xy(&AffinePoint::GENERATOR);
    let p = be(&P);
    // coordinates ≥ p (x + p still "on the curve" mod p), (0, 0), off-curve points
    let x_plus_p = big(&g.0) + p_big();
    let y_plus_p = big(&g.1) + p_big();
    let mut cases = vec![
        ([0u8; 32], [0u8; 32]),
        (p, g.1),
        (g.0, p),
        ([0xFF; 32], g.1),
    ];
    if x_plus_p.bits() <= 256 {
        cases.push((to32(&x_plus_p), g.1));
    }
    if y_plus_p.bits() <= 256 {
        cases.push((g.0, to32(&y_plus_p)));
    }
    let mut y1 = g.1;
    y1[31] ^= 1;
    cases.push((g.0, y1));
    for (x, y) in cases {
        assert!(
            P256VerifyingKey::from_affine(&x, &y).is_none(),
            "{x:x?} {y:x?}"
        );
        assert!(ref_key(&x, &y).is_none());
    }
    assert!(P256VerifyingKey::from_affine(&g.0, &g.1).is_some());
    for _ in 0..iters(300) {
        let (x, y) = (rng.edgy32(), rng.edgy32());
        assert_eq!(
            P256VerifyingKey::from_affine(&x, &y).is_some(),
            ref_key(&x, &y).is_some()
        );
    }
}
