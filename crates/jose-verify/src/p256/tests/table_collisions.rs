//! Keys whose tables collide with the static tables of G and 2^128·G: Q = c·G (Q's odd
//! multiples are odd multiples of G's), Q = c·2^128·G (Q's table is 2^128·G's, scaled) and
//! Q = c·2^−128·G (2^128·Q's table is G's). With scalars chosen so that the half-scalars on
//! colliding tables carry the same digits, the interleaved loops add a point to itself or to
//! its negation: the exceptional branches of the additions (doubling, identity) run in the
//! middle of a chain, on the 256-bit path (`add_cached`) and on the prepared 2 × 128-bit path
//! (`add_affine`). The `exceptional` counters of `point.rs` show that they do.
//!
//! Every u1·G + u2·Q is checked against the `p256` crate, on both paths; every signature
//! (made by the `p256` crate with the key's known secret c·2^k, or constructed from chosen
//! u1, u2) is accepted on both paths and by `p256`, and its bit flips are refused by both.

use super::super::point::exceptional;
use super::*;
use ::p256::ecdsa::signature::hazmat::PrehashSigner;
use ::p256::ecdsa::{Signature, SigningKey};

fn two_128() -> Scalar {
    Scalar::from_repr(to32(&(BigUint::from(1u8) << 128)).into()).unwrap()
}

/// A scalar below 2^bits (bits ≤ 128), never zero.
fn small_scalar(rng: &mut Rng, bits: u32) -> Scalar {
    let v = (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> (128 - bits);
    Scalar::from_repr(to32(&BigUint::from(v.max(1))).into()).unwrap()
}

/// The colliding keys: secret d = ±c·2^k for k ∈ {0, 128, −128} and small or structured c.
fn colliding_secrets() -> Vec<(String, Scalar)> {
    let t = two_128();
    let t_inv = t.invert().unwrap();
    let mut out = Vec::new();
    for c in [1u64, 2, 3, 15, 16, 127, 0xFFFF_FFFF] {
        for (base, name) in [(Scalar::ONE, "G"), (t, "2^128·G"), (t_inv, "2^-128·G")] {
            let d = Scalar::from(c) * base;
            out.push((format!("{c}·{name}"), d));
            out.push((format!("-{c}·{name}"), -d));
        }
    }
    out
}

/// u1·G + u2·Q on each path, with the exceptional-branch counts each path hit.
fn lincomb_counted(key: &Both, u1: &Scalar, u2: &Scalar) -> (Option<Affine>, [u64; 6], [u64; 6]) {
    exceptional::take();
    let fresh = key_lincomb(&key.fresh(), &sc(u1), &sc(u2));
    let fresh_counts = exceptional::take();
    let prepared = key_lincomb(&key.prepared, &sc(u1), &sc(u2));
    let prepared_counts = exceptional::take();
    assert_eq!(
        fresh, prepared,
        "the two paths disagree: u1 {u1:?} u2 {u2:?}"
    );
    (fresh, fresh_counts, prepared_counts)
}

fn flip(sig: &[u8; 64], bit: usize) -> [u8; 64] {
    let mut bad = *sig;
    bad[bit / 8] ^= 1 << (bit % 8);
    bad
}

fn add_counts(total: &mut [u64; 6], c: &[u64; 6]) {
    for (t, x) in total.iter_mut().zip(c) {
        *t += x;
    }
}

#[test]
fn keys_colliding_with_the_g_tables() {
    let mut rng = Rng::new("keys_colliding_with_the_g_tables");
    let t = two_128();
    let mut fresh_total = [0u64; 6];
    let mut prepared_total = [0u64; 6];
    let (mut lincombs, mut identities, mut constructed_ok, mut signed_ok) = (0, 0, 0, 0);
    for (name, d) in colliding_secrets() {
        let q = ProjectivePoint::GENERATOR * d;
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();

        // 1. signatures by the p256 crate with the known secret
        let sk = SigningKey::from_bytes(&scalar_bytes(&d).into()).unwrap();
        assert_eq!(sk.verifying_key(), &vk);
        for _ in 0..2 {
            let digest = rng.bytes32();
            let sig: Signature = sk.sign_prehash(&digest).unwrap();
            let sig: [u8; 64] = sig.to_bytes().into();
            assert!(ref_verify(&vk, &digest, &sig));
            assert!(
                key.verify_prehashed(&digest, &sig),
                "{name}: p256's signature"
            );
            signed_ok += 1;
            let bit = rng.below(512);
            let bad = flip(&sig, bit);
            assert!(!ref_verify(&vk, &digest, &bad));
            assert!(!key.verify_prehashed(&digest, &bad), "{name}: bit {bit}");
        }

        // 2. u1, u2 whose half-scalars on colliding tables carry the same digits:
        //    u1 = ±d·u2 (+ δ), so u1·G and u2·Q are the same point (or opposite) and R is
        //    2·u1·G (+ δG) or the identity (+ δG); u2 of ≤ 100 bits, or 2^128 times one
        //    (then 2^128·Q's table meets G's), or any scalar
        for i in 0..iters(12) {
            let u2 = match i % 4 {
                0 => Scalar::from(1 + rng.below(16) as u64),
                1 => small_scalar(&mut rng, 100),
                2 => small_scalar(&mut rng, 100) * t,
                _ => rng.scalar(),
            };
            let delta = if i % 3 == 2 {
                Scalar::from(1 + rng.below(1000) as u64)
            } else {
                Scalar::ZERO
            };
            for sign in [Scalar::ONE, -Scalar::ONE] {
                let u1 = sign * d * u2 + delta;
                let want =
                    ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, &q, &u2).to_affine();
                let (got, fc, pc) = lincomb_counted(&key, &u1, &u2);
                add_counts(&mut fresh_total, &fc);
                add_counts(&mut prepared_total, &pc);
                lincombs += 1;
                if bool::from(want.is_identity()) {
                    assert!(
                        got.is_none(),
                        "{name}: identity expected, u1 {u1:?} u2 {u2:?}"
                    );
                    identities += 1;
                    // R = identity: no signature may verify. With u2 = r/s, u1 = e/s:
                    // any r, s and e = u1·s.
                    let s = rng.scalar();
                    let r = u2 * s;
                    let e = u1 * s;
                    let sig = sig_bytes(&scalar_bytes(&r), &scalar_bytes(&s));
                    let digest = scalar_bytes(&e);
                    assert!(!ref_verify(&vk, &digest, &sig));
                    assert!(!key.verify_prehashed(&digest, &sig), "{name}: R = identity");
                    continue;
                }
                assert_eq!(got, Some(affine(&want)), "{name}: u1 {u1:?} u2 {u2:?}");
                let Some((digest, sig, _)) = constructed(&q, &u1, &u2) else {
                    continue;
                };
                assert!(ref_verify(&vk, &digest, &sig));
                assert!(key.verify_prehashed(&digest, &sig), "{name}: constructed");
                constructed_ok += 1;
                for bit in [rng.below(256), 256 + rng.below(256)] {
                    let bad = flip(&sig, bit);
                    assert!(!ref_verify(&vk, &digest, &bad));
                    assert!(!key.verify_prehashed(&digest, &bad), "{name}: bit {bit}");
                }
            }
        }
    }
    println!(
        "{lincombs} lincombs ({identities} identities), {constructed_ok} constructed and \
         {signed_ok} p256 signatures verified; exceptional branches [affine doubled, \
         cancelled, cached doubled, cancelled, affine from identity, cached from identity]: \
         256-bit path {fresh_total:?}, prepared path {prepared_total:?}"
    );
    assert!(identities > 0 && constructed_ok > 0);
    // the exceptional branches were reached mid-chain, on both paths
    use exceptional::*;
    for b in [CACHED_DOUBLED, CACHED_CANCELLED, CACHED_FROM_IDENTITY] {
        assert!(
            fresh_total[b] > 0,
            "256-bit path, branch {b}: {fresh_total:?}"
        );
    }
    for b in [AFFINE_DOUBLED, AFFINE_CANCELLED] {
        assert!(
            prepared_total[b] > 0,
            "prepared path, branch {b}: {prepared_total:?}"
        );
    }
}

/// A scalar < 2^128 whose width-8 and width-5 NAFs are the same digits: odd digits of
/// magnitude < 16, at least 8 positions apart, the top one positive. Returns it and its number
/// of nonzero digits.
fn sparse_scalar(rng: &mut Rng) -> (Scalar, u64) {
    let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
    let mut at = rng.below(4);
    let mut digits = 0;
    while at < 120 {
        let d = 1 + 2 * rng.below(8) as u64; // 1, 3, …, 15
        let next = at + 8 + rng.below(6);
        if next < 120 && rng.below(2) == 0 {
            neg += BigUint::from(d) << at;
        } else {
            pos += BigUint::from(d) << at;
        }
        digits += 1;
        at = next;
    }
    let v = pos - neg; // the top digit is positive: v > 0
    let l = limbs(&to32(&v));
    let (n5, n8) = (
        super::super::wnaf(&l, 5).unwrap(),
        super::super::wnaf(&l, 8).unwrap(),
    );
    assert_eq!(n5, n8, "the same digits in both windows");
    assert_eq!(n5.iter().filter(|d| **d != 0).count() as u64, digits);
    (Scalar::from_repr(to32(&v).into()).unwrap(), digits)
}

/// Keys whose table *is* a static table, or its negation, and scalars whose digits meet in
/// the same entries at every step: Q = ±G with u1 = u2 (the 256-bit path: G's entry by
/// `add_affine`, then Q's by `add_cached`), Q = ±2^128·G with u1 = 2^128·u2 (the prepared
/// path: 2^128·G's entry, then Q's, both by `add_affine`). For +, the first digit is added to
/// itself onto the identity (one doubling) and R = 2·u2·Q; for −, every digit cancels (one
/// identity per digit, and the next digit starts from the identity) and R is the identity.
/// The counts are exact.
#[test]
fn digits_meeting_in_the_same_table_entries() {
    use exceptional::*;
    let mut rng = Rng::new("digits_meeting_in_the_same_table_entries");
    let t = two_128();
    for (d, shift, prepared) in [
        (Scalar::ONE, Scalar::ONE, false),
        (-Scalar::ONE, Scalar::ONE, false),
        (Scalar::ONE, Scalar::ONE, true),
        (-Scalar::ONE, Scalar::ONE, true),
        (t, t, true),
        (-t, t, true),
    ] {
        let q = ProjectivePoint::GENERATOR * d;
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        let cancels = d == -Scalar::ONE || d == -t;
        for _ in 0..iters(20) {
            let (u2, digits) = sparse_scalar(&mut rng);
            let u1 = u2 * shift;
            let (got, fresh, prep) = lincomb_counted(&key, &u1, &u2);
            let c = if prepared { prep } else { fresh };
            let (doubled, cancelled) = if prepared {
                (c[AFFINE_DOUBLED], c[AFFINE_CANCELLED])
            } else {
                (c[CACHED_DOUBLED], c[CACHED_CANCELLED])
            };
            if cancels {
                assert!(got.is_none());
                assert_eq!((doubled, cancelled), (0, digits), "{c:?}");
                assert_eq!(c[AFFINE_FROM_IDENTITY], digits, "{c:?}");
                // R is the identity: a signature with these u1, u2 is refused
                let s = rng.scalar();
                let sig = sig_bytes(&scalar_bytes(&(u2 * s)), &scalar_bytes(&s));
                let digest = scalar_bytes(&(u1 * s));
                assert!(!ref_verify(&vk, &digest, &sig));
                assert!(!key.verify_prehashed(&digest, &sig));
            } else {
                assert_eq!((doubled, cancelled), (1, 0), "{c:?}");
                assert_eq!(c[AFFINE_FROM_IDENTITY], 1, "{c:?}");
                assert_eq!(got, Some(affine(&(q * (u2 + u2)).to_affine())));
                let (digest, sig, _) = constructed(&q, &u1, &u2).unwrap();
                assert!(ref_verify(&vk, &digest, &sig));
                assert!(key.verify_prehashed(&digest, &sig));
                let bad = flip(&sig, rng.below(512));
                assert!(!ref_verify(&vk, &digest, &bad));
                assert!(!key.verify_prehashed(&digest, &bad));
            }
        }
    }
}
