//! `jose::ed25519_fast` (variable-time strict Ed25519 verification): differential tests
//! against ed25519-dalek's `verify_strict` (random keys and messages, corrupted signatures,
//! non-canonical and small-order encodings of R and A, s around ℓ), both verification paths
//! (one-shot wNAF and prepared comb), and the field arithmetic against big integers. The
//! Wycheproof and RFC 8032 vectors run through the JWK layer in `tests/vectors.rs`.
//!
//! `ED25519_FAST_ITERS=<factor>` scales the random tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dpop_guard::jose::ed25519_fast::internals::{self, Ext, Fe};
use dpop_guard::jose::ed25519_fast::Ed25519VerifyingKey;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use rsa::BigUint;

fn iters(base: usize) -> usize {
    let f: usize = std::env::var("ED25519_FAST_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * f
}

fn p() -> BigUint {
    (BigUint::from(1u8) << 255usize) - BigUint::from(19u8)
}

fn ell() -> BigUint {
    (BigUint::from(1u8) << 252usize)
        + BigUint::parse_bytes(b"14def9dea2f79cd65812631a5cf5d3ed", 16).unwrap()
}

fn le32(x: &BigUint) -> [u8; 32] {
    let mut v = x.to_bytes_le();
    v.resize(32, 0);
    v.try_into().unwrap()
}

fn value(b: &[u8; 32]) -> BigUint {
    BigUint::from_bytes_le(b)
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// dalek's strict verdict, with the same parsing of key bytes (a key that does not decode
/// verifies nothing).
fn dalek_verdict(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// Our verdict on both paths: a fresh key (one-shot wNAF) and a prepared one (comb). The
/// hot comb, when the process-wide budget lets this key have one, must agree with them.
fn our_verdicts(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> (bool, bool) {
    let Some(k) = Ed25519VerifyingKey::from_bytes(key) else {
        return (false, false);
    };
    let fresh = k.verify(msg, sig);
    k.prepare();
    assert!(k.is_prepared());
    let prepared = k.verify(msg, sig);
    if k.make_hot() {
        assert_eq!(k.verify(msg, sig), prepared, "hot comb disagrees");
    }
    (fresh, prepared)
}

fn assert_same(key: &[u8; 32], msg: &[u8], sig: &[u8; 64], what: &str) {
    let want = dalek_verdict(key, msg, sig);
    let (fresh, prepared) = our_verdicts(key, msg, sig);
    assert_eq!(
        (fresh, prepared),
        (want, want),
        "{what}: key {} sig {}",
        hex::encode(key),
        hex::encode(sig)
    );
}

// ---------------------------------------------------------------------------------------------
// field
// ---------------------------------------------------------------------------------------------

fn fe_value(f: &Fe) -> BigUint {
    value(&f.to_bytes())
}

#[test]
fn field_matches_big_integers() {
    let p = p();
    let mut samples: Vec<BigUint> = vec![
        BigUint::from(0u8),
        BigUint::from(1u8),
        BigUint::from(19u8),
        &p - 1u8,
        &p - 2u8,
        (BigUint::from(1u8) << 255usize) - 1u8, // 2^255 − 1 ≥ p: taken mod p
        BigUint::from(1u8) << 254usize,
    ];
    for _ in 0..iters(200) {
        samples.push(value(&random32()) % (BigUint::from(1u8) << 255usize));
    }
    for (i, a) in samples.iter().enumerate() {
        let b = &samples[(i * 7 + 3) % samples.len()];
        // from_bytes takes the low 255 bits unreduced; to_bytes is canonical
        let fa = Fe::from_bytes(&le32(a));
        let fb = Fe::from_bytes(&le32(b));
        assert_eq!(fe_value(&fa), a % &p, "from/to bytes {a}");
        assert_eq!(fe_value(&fa.mul(&fb)), (a * b) % &p, "mul {a} {b}");
        assert_eq!(fe_value(&fa.square()), (a * a) % &p, "square {a}");
        assert_eq!(fe_value(&fa.square2()), (a * a * 2u8) % &p, "square2 {a}");
        assert_eq!(fe_value(&fa.add(&fb)), (a + b) % &p, "add");
        assert_eq!(fe_value(&fa.sub(&fb)), (a + &p * 2u8 - b) % &p, "sub");
        assert_eq!(fe_value(&fa.neg()), (&p * 2u8 - a) % &p, "neg");
        // three-term sums (the widest multiplication inputs the point formulas make)
        let s3 = fa.add(&fb).sub(&fa.neg());
        let t3 = fb.sub(&fa).sub(&fa);
        let want = ((a * 2u8 + b) * (b + &p * 4u8 - a * 2u8)) % &p;
        assert_eq!(fe_value(&s3.mul(&t3)), want, "wide mul");
        if a % &p != BigUint::from(0u8) {
            assert_eq!(
                fe_value(&fa.invert().mul(&fa)),
                BigUint::from(1u8),
                "invert {a}"
            );
        } else {
            assert!(fa.is_zero());
        }
    }
}

#[test]
fn canonical_y_check() {
    let p = p();
    for (y, canonical) in [
        (BigUint::from(0u8), true),
        (&p - 1u8, true),
        (p.clone(), false),
        (&p + 1u8, false),
        ((BigUint::from(1u8) << 255usize) - 1u8, false),
    ] {
        let mut b = le32(&y);
        assert_eq!(internals::is_canonical_y(&b), canonical, "{y}");
        b[31] |= 0x80; // the sign bit is not part of y
        assert_eq!(internals::is_canonical_y(&b), canonical, "{y} with sign");
    }
}

// ---------------------------------------------------------------------------------------------
// recodings
// ---------------------------------------------------------------------------------------------

fn from_digits(d: &[i64], w: u32) -> BigUint {
    // Σ dᵢ·2^(w·i), computed as (positive part) − (negative part)
    let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
    for (i, &x) in d.iter().enumerate() {
        let t = BigUint::from(x.unsigned_abs()) << (w as usize * i);
        if x >= 0 {
            pos += t;
        } else {
            neg += t;
        }
    }
    pos - neg
}

#[test]
fn scalar_recodings_reconstruct_the_scalar() {
    let l = ell();
    let mut scalars = vec![BigUint::from(0u8), BigUint::from(1u8), &l - 1u8];
    for _ in 0..iters(300) {
        scalars.push(value(&random32()) % &l);
    }
    for k in &scalars {
        let b = le32(k);
        for w in [4u32, 5, 8] {
            let d = internals::signed_digits(&b, w);
            let n = 256usize.div_ceil(w as usize);
            let half = 1i64 << (w - 1);
            let d: Vec<i64> = d[..n].iter().map(|&x| i64::from(x)).collect();
            assert!(d.iter().all(|&x| (-half..half).contains(&x)), "range w={w}");
            assert_eq!(&from_digits(&d, w), k, "signed digits w={w}");
        }
        let naf = internals::wnaf(&b, 5);
        let d: Vec<i64> = naf.iter().map(|&x| i64::from(x)).collect();
        assert!(d.iter().all(|&x| x == 0 || (x % 2 != 0 && x.abs() < 16)));
        assert_eq!(&from_digits(&d, 1), k, "wnaf");
    }
}

// ---------------------------------------------------------------------------------------------
// verification, differential against ed25519-dalek verify_strict
// ---------------------------------------------------------------------------------------------

#[test]
fn random_signatures_verify_on_both_paths() {
    for i in 0..iters(40) {
        let sk = SigningKey::generate(&mut OsRng);
        let mut msg = vec![0u8; i * 13 % 300];
        OsRng.fill_bytes(&mut msg);
        let sig = sk.sign(&msg).to_bytes();
        let key = sk.verifying_key().to_bytes();
        let k = Ed25519VerifyingKey::from_bytes(&key).unwrap();
        assert!(k.verify(&msg, &sig), "one-shot");
        assert!(k.verify(&msg, &sig), "second use");
        assert!(k.is_prepared(), "prepared at the second use");
        assert!(k.verify(&msg, &sig), "prepared");
        assert!(!k.verify(&msg, &sig[..63]), "short signature");
        let mut other = msg.clone();
        other.push(0);
        assert!(!k.verify(&other, &sig), "other message");
    }
}

#[test]
fn keys_turn_hot_within_a_bounded_budget() {
    let sk = SigningKey::generate(&mut OsRng);
    let msg = b"hot";
    let sig = sk.sign(msg).to_bytes();
    let key = Ed25519VerifyingKey::from_bytes(&sk.verifying_key().to_bytes()).unwrap();
    // 64 verifications earn the hot comb (other tests may hold budget slots meanwhile)
    for _ in 0..70 {
        assert!(key.verify(msg, &sig));
    }
    let mut other = msg.to_vec();
    other.push(b'!');
    assert!(!key.verify(&other, &sig));
    // never more than 8 hot keys at once, however many are made hot
    let keys: Vec<_> = (0..12)
        .map(|_| {
            let sk = SigningKey::generate(&mut OsRng);
            Ed25519VerifyingKey::from_bytes(&sk.verifying_key().to_bytes()).unwrap()
        })
        .collect();
    let hot = keys.iter().filter(|k| k.make_hot()).count() + usize::from(key.is_hot());
    assert!(hot <= 8, "{hot} hot keys");
    assert!(
        keys.iter().any(|k| k.is_prepared()),
        "a key refused a hot comb is prepared"
    );
}

#[test]
fn corrupted_signatures_match_dalek() {
    for _ in 0..iters(30) {
        let sk = SigningKey::generate(&mut OsRng);
        let key = sk.verifying_key().to_bytes();
        let msg = random32();
        let sig = sk.sign(&msg).to_bytes();
        for _ in 0..4 {
            let mut bad = sig;
            let bit = (OsRng.next_u32() % 512) as usize;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_same(&key, &msg, &bad, "bit flip");
        }
        let mut random_sig = [0u8; 64];
        OsRng.fill_bytes(&mut random_sig);
        assert_same(&key, &msg, &random_sig, "random signature");
    }
}

/// The y of every small-order point, canonical and (where y + p < 2^255) non-canonical.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let p = p();
    let mut out = Vec::new();
    // y = 1, −1, 0 and the two y of the order-8 points
    // the order-8 encoding listed in "Taming the many EdDSAs" (little-endian)
    let y8 = BigUint::from_bytes_le(
        &hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a").unwrap(),
    );
    for y in [
        BigUint::from(1u8),
        &p - 1u8,
        BigUint::from(0u8),
        y8.clone(),
        &p - &y8,
    ] {
        for sign in [0u8, 0x80] {
            for yy in [y.clone(), &y + &p] {
                if yy >= (BigUint::from(1u8) << 255usize) {
                    continue;
                }
                let mut b = le32(&yy);
                b[31] |= sign;
                out.push(b);
            }
        }
    }
    out
}

#[test]
fn small_order_points_are_small_order() {
    let mut decoded = 0;
    for b in small_order_encodings() {
        if let Some((x, y)) = internals::decompress(&b) {
            decoded += 1;
            assert!(
                Ext::from_affine(&x, &y).is_small_order(),
                "{}",
                hex::encode(b)
            );
            assert_eq!(
                internals::is_small_order_y(&b),
                internals::is_canonical_y(&b),
                "the y shortcut names every canonical small-order encoding: {}",
                hex::encode(b)
            );
        }
    }
    // and no other point: random valid points are not small order by either test
    for _ in 0..iters(50) {
        let b = SigningKey::generate(&mut OsRng).verifying_key().to_bytes();
        let (x, y) = internals::decompress(&b).unwrap();
        assert!(!Ext::from_affine(&x, &y).is_small_order());
        assert!(!internals::is_small_order_y(&b));
    }
    assert!(decoded >= 8, "only {decoded} small-order encodings decoded");
    let sk = SigningKey::generate(&mut OsRng);
    let (x, y) = internals::decompress(&sk.verifying_key().to_bytes()).unwrap();
    assert!(!Ext::from_affine(&x, &y).is_small_order());
}

#[test]
fn small_order_and_non_canonical_r_match_dalek() {
    let sk = SigningKey::generate(&mut OsRng);
    let key = sk.verifying_key().to_bytes();
    let msg = b"edge cases";
    let good = sk.sign(msg).to_bytes();
    for r in small_order_encodings() {
        let mut sig = good;
        sig[..32].copy_from_slice(&r);
        assert_same(&key, msg, &sig, "small-order R");
        // s = 0 with a small-order R and A: the cofactorless equation can hold; strict refuses
        let mut zero_s = sig;
        zero_s[32..].fill(0);
        assert_same(&key, msg, &zero_s, "small-order R, s = 0");
    }
    // R replaced by a non-canonical encoding of itself (y + p), when that fits in 255 bits
    let p = p();
    for _ in 0..iters(20) {
        let sk = SigningKey::generate(&mut OsRng);
        let key = sk.verifying_key().to_bytes();
        let sig = sk.sign(msg).to_bytes();
        let mut r: [u8; 32] = sig[..32].try_into().unwrap();
        let sign = r[31] & 0x80;
        r[31] &= 0x7f;
        let y = value(&r);
        if &y + &p < (BigUint::from(1u8) << 255usize) {
            let mut nc = le32(&(&y + &p));
            nc[31] |= sign;
            let mut bad = sig;
            bad[..32].copy_from_slice(&nc);
            assert_same(&key, msg, &bad, "non-canonical R");
        }
        // the sign bit flipped: R's negation
        let mut neg = sig;
        neg[31] ^= 0x80;
        assert_same(&key, msg, &neg, "negated R");
    }
}

#[test]
fn s_around_ell_matches_dalek() {
    let l = ell();
    let sk = SigningKey::generate(&mut OsRng);
    let key = sk.verifying_key().to_bytes();
    let msg = b"s range";
    let sig = sk.sign(msg).to_bytes();
    let s = value(&sig[32..].try_into().unwrap());
    for candidate in [
        &s + &l,
        l.clone(),
        &l + 1u8,
        &l - 1u8,
        (BigUint::from(1u8) << 253usize) + &s,
        (BigUint::from(1u8) << 256usize) - 1u8,
    ] {
        if candidate >= (BigUint::from(1u8) << 256usize) {
            continue;
        }
        let mut bad = sig;
        bad[32..].copy_from_slice(&le32(&candidate));
        assert_same(&key, msg, &bad, "s variant");
        assert!(!our_verdicts(&key, msg, &bad).0 || candidate < l);
    }
}

#[test]
fn small_order_and_non_canonical_keys_match_dalek() {
    let msg = b"keys";
    for a in small_order_encodings() {
        // a signature that satisfies the cofactorless equation for small-order A and R
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&a);
        assert_same(&a, msg, &sig, "small-order key");
        let mut random_sig = [0u8; 64];
        OsRng.fill_bytes(&mut random_sig[..32]);
        assert_same(&a, msg, &random_sig, "small-order key, random R");
    }
    // a valid key's non-canonical twin (y + p) is accepted by dalek's decoding and hashed as
    // sent, so a signature under the canonical key does not verify under the twin
    let p = p();
    let mut found = 0;
    for _ in 0..2000 {
        let sk = SigningKey::generate(&mut OsRng);
        let key = sk.verifying_key().to_bytes();
        let mut y_bytes = key;
        let sign = y_bytes[31] & 0x80;
        y_bytes[31] &= 0x7f;
        let y = value(&y_bytes);
        if &y + &p >= (BigUint::from(1u8) << 255usize) {
            continue;
        }
        found += 1;
        let mut twin = le32(&(&y + &p));
        twin[31] |= sign;
        let sig = sk.sign(msg).to_bytes();
        assert_same(&twin, msg, &sig, "non-canonical key");
        assert_same(&key, msg, &sig, "canonical key");
        if found >= 2 {
            break;
        }
    }
}

#[test]
fn keys_that_do_not_decode_are_refused_like_dalek() {
    let mut refused = 0;
    for _ in 0..iters(200) {
        let b = random32();
        let ours = Ed25519VerifyingKey::from_bytes(&b).is_some();
        let theirs = VerifyingKey::from_bytes(&b).is_ok();
        assert_eq!(ours, theirs, "{}", hex::encode(b));
        refused += usize::from(!ours);
    }
    assert!(refused > 0, "about half of random strings are not points");
}
