//! The arithmetic of `p256` against big integers and the `p256` crate: field and scalar
//! operations, the wNAF recoding, the static tables of G and 2^128·G, point formulas at the
//! limits of the lazy field's bound contract, and u1·G + u2·Q on both paths (including the
//! exceptional additions and x(R) ≥ n). Verification is tested differentially in
//! `tests/p256.rs`; both use the helpers in `tests/support/p256.rs`.
//!
//! The tests of the lazy field's bound contract (and the point formulas at its limits) are in
//! the `bound_contract` submodule (tests/bound_contract.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../tests/support/p256.rs"]
mod support;

use super::field::Fe;
use super::point::{Affine, Jacobian};
use super::scalar::Sc;
use super::{P256VerifyingKey, G128_ODD, G_ODD};
use ::p256::ecdsa::VerifyingKey;
use ::p256::elliptic_curve::group::Group;
use ::p256::elliptic_curve::ops::LinearCombination;
use ::p256::elliptic_curve::sec1::FromEncodedPoint;
use ::p256::elliptic_curve::PrimeField;
use ::p256::{AffinePoint, EncodedPoint, ProjectivePoint, Scalar};
use ::rsa::BigUint;
use support::*;

mod bound_contract;
mod table_collisions;

/// The support module's copies of p and n are the crate's.
#[test]
fn support_constants_are_the_crates() {
    assert_eq!(P, super::field32::P);
    assert_eq!(N, super::scalar::N);
}

/// u1·G + u2·Q for a key, as computed during verification (affine, `None` = identity): by
/// the prepared path if the key is prepared, else by the 256-bit path.
fn key_lincomb(key: &P256VerifyingKey, u1: &Sc, u2: &Sc) -> Option<Affine> {
    let r = match key.prepared.get() {
        Some(Some(p)) => super::lincomb_prepared(u1, u2, p),
        _ => super::lincomb(u1, u2, &super::q_table(&key.q)),
    };
    r?.to_affine()
}

/// u1·G + u2·Q by both paths of a [`Both`] (they must agree).
fn lincomb(key: &Both, u1: &Scalar, u2: &Scalar) -> Option<Affine> {
    let a = key_lincomb(&key.fresh(), &sc(u1), &sc(u2));
    let b = key_lincomb(&key.prepared, &sc(u1), &sc(u2));
    assert_eq!(a, b, "the two paths disagree: u1 {u1:?} u2 {u2:?}");
    a
}

// ---------------------------------------------------------------------------------------------
// u1·G + u2·Q against p256
// ---------------------------------------------------------------------------------------------

/// Points R whose x-coordinate is ≥ n (so r = x(R) − n, the X = (r + n)·Z² path) and points
/// with a tiny x (r < p − n, where the (r + n) comparison is tried and must fail).
#[test]
fn x_of_r_at_least_n_and_tiny_x() {
    let mut rng = Rng::new("x_of_r_at_least_n_and_tiny_x");
    let n = n_big();
    let p = p_big();
    // candidate x values: n, n + 1, …, and p − 1, p − 2, …; tiny: 1, 2, 3, …
    let mut xs: Vec<BigUint> = Vec::new();
    for k in 0u64..40 {
        xs.push(&n + BigUint::from(k));
        xs.push(&p - BigUint::from(k + 1));
        xs.push(BigUint::from(k + 1));
    }
    let mut high = 0;
    let mut tiny = 0;
    for xr in xs {
        // decompress (either y)
        let mut enc = vec![0x02u8];
        enc.extend_from_slice(&to32(&xr));
        let Ok(ep) = EncodedPoint::from_bytes(&enc) else {
            continue;
        };
        let Some(big_r) = Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&ep)) else {
            continue;
        };
        // Key Q = (R − u1·G)/u2 for random u1, u2: then u1·G + u2·Q = R.
        let u1 = rng.scalar();
        let u2 = rng.scalar();
        let q =
            (ProjectivePoint::from(big_r) - ProjectivePoint::GENERATOR * u1) * u2.invert().unwrap();
        let (qx, qy) = affine_xy(&q.to_affine());
        let key = Both::new(&qx, &qy).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        let (digest, sig, x) = constructed(&q, &u1, &u2).unwrap();
        assert_eq!(big(&x), xr);
        assert!(ref_verify(&vk, &digest, &sig));
        assert!(key.verify_prehashed(&digest, &sig), "x(R) = {xr:x}");
        // u1·G + u2·Q as computed by the verifier is R
        let got = lincomb(&key, &u1, &u2).unwrap();
        assert_eq!(got, affine(&big_r));
        if xr >= n {
            high += 1;
            // r' = x(R) itself (≥ n) is out of range
            let bad = sig_bytes(&to32(&xr), sig[32..].try_into().unwrap());
            assert!(!key.verify_prehashed(&digest, &bad));
            assert!(!ref_verify(&vk, &digest, &bad));
        } else {
            tiny += 1;
            // r' = x(R) + 1: r' < p − n, neither r' nor r' + n is x(R)
            let r2 = to32(&(&xr + BigUint::from(1u8)));
            let bad = sig_bytes(&r2, sig[32..].try_into().unwrap());
            assert!(!key.verify_prehashed(&digest, &bad));
            assert!(!ref_verify(&vk, &digest, &bad));
        }
    }
    assert!(high >= 10 && tiny >= 10, "high {high} tiny {tiny}");
}

/// Q = ±G with u1 = ±u2 drives the interleaved loop into P + P and P + (−P).
#[test]
fn exceptional_additions_in_the_interleaved_loop() {
    let mut rng = Rng::new("exceptional_additions_in_the_interleaved_loop");
    let g = ProjectivePoint::GENERATOR;
    for q in [g, -g, g.double(), g * Scalar::from(3u64)] {
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        for i in 0..iters(20) {
            let u = if i < 3 {
                Scalar::from(i as u64 + 1)
            } else {
                rng.scalar()
            };
            for (u1, u2) in [
                (u, u),
                (-u, u),
                (u, -u),
                (u.double(), u),
                (u * Scalar::from(3u64), u),
            ] {
                let want = ProjectivePoint::lincomb(&g, &u1, &q, &u2).to_affine();
                let got = lincomb(&key, &u1, &u2);
                if bool::from(want.is_identity()) {
                    assert!(got.is_none(), "identity expected");
                } else {
                    assert_eq!(got, Some(affine(&want)));
                    if let Some((digest, sig, _)) = constructed(&q, &u1, &u2) {
                        assert!(ref_verify(&vk, &digest, &sig));
                        assert!(key.verify_prehashed(&digest, &sig));
                    }
                }
            }
        }
    }
}

#[test]
fn lincomb_matches_p256() {
    let mut rng = Rng::new("lincomb_matches_p256");
    for _ in 0..iters(50) {
        let q = ProjectivePoint::GENERATOR * rng.scalar();
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let u1 =
            Option::<Scalar>::from(Scalar::from_repr(rng.edgy32().into())).unwrap_or(Scalar::ONE);
        let u2 = rng.scalar();
        let want = ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, &q, &u2).to_affine();
        assert_eq!(lincomb(&key, &u1, &u2), Some(affine(&want)));
    }
}

// ---------------------------------------------------------------------------------------------
// Internals against reference arithmetic
// ---------------------------------------------------------------------------------------------

fn sc(s: &Scalar) -> Sc {
    Sc::reduce_be_bytes(&scalar_bytes(s))
}

fn affine(p: &AffinePoint) -> Affine {
    let (x, y) = affine_xy(p);
    Affine {
        x: Fe::from_be_bytes(&x).unwrap(),
        y: Fe::from_be_bytes(&y).unwrap(),
    }
}

fn fe_big(f: &Fe) -> BigUint {
    big(&f.to_be_bytes())
}

fn sc_big(s: &Sc) -> BigUint {
    big(&be(&s.0))
}

#[test]
fn field_arithmetic_matches_bigint() {
    let mut rng = Rng::new("field_arithmetic_matches_bigint");
    let p = p_big();
    let fe = |rng: &mut Rng| loop {
        if let Some(f) = Fe::from_be_bytes(&rng.edgy32()) {
            return f;
        }
    };
    let mut specials = vec![Fe::ZERO, Fe::ONE];
    for k in 1..4u64 {
        specials.push(Fe::from_be_bytes(&sub_small(&be(&P), k)).unwrap());
    }
    specials.push(Fe::from_be_bytes(&to32(&((&p - BigUint::from(1u8)) >> 1))).unwrap());
    for i in 0..iters(5000) {
        let a = if i < specials.len() * specials.len() {
            specials[i % specials.len()]
        } else {
            fe(&mut rng)
        };
        let b = if i < specials.len() * specials.len() {
            specials[i / specials.len()]
        } else {
            fe(&mut rng)
        };
        let (x, y) = (fe_big(&a), fe_big(&b));
        assert_eq!(fe_big(&a.mul(&b)), (&x * &y) % &p, "{a:?} * {b:?}");
        assert_eq!(fe_big(&a.sqr()), (&x * &x) % &p, "{a:?}²");
        assert_eq!(fe_big(&a.add(&b)), (&x + &y) % &p);
        assert_eq!(fe_big(&a.sub(&b)), (&x + &p - &y) % &p);
        assert_eq!(fe_big(&a.neg()), (&p - &x) % &p);
        assert_eq!(fe_big(&a.dbl()), (&x + &x) % &p);
        if i % 50 == 0 {
            let inv = a.invert();
            if a.is_zero() {
                assert!(inv.is_zero());
            } else {
                assert_eq!(fe_big(&inv.mul(&a)), BigUint::from(1u8));
                assert_eq!(fe_big(&inv), x.modpow(&(&p - BigUint::from(2u8)), &p));
            }
            let sq = a.sqr();
            let r = sq.sqrt().expect("a square has a root");
            assert!(r.to_be_bytes() == a.to_be_bytes() || r.to_be_bytes() == a.neg().to_be_bytes());
        }
    }
    // ≥ p is refused, p − 1 accepted, every top-limb pattern near p
    assert!(Fe::from_be_bytes(&be(&P)).is_none());
    assert!(Fe::from_be_bytes(&[0xFF; 32]).is_none());
    assert!(Fe::from_be_bytes(&sub_small(&be(&P), 1)).is_some());
    for _ in 0..iters(2000) {
        let b = rng.edgy32();
        assert_eq!(Fe::from_be_bytes(&b).is_some(), big(&b) < p);
    }
}

#[test]
fn scalar_arithmetic_matches_bigint() {
    let mut rng = Rng::new("scalar_arithmetic_matches_bigint");
    let n = n_big();
    for _ in 0..iters(3000) {
        let (ab, bb) = (rng.edgy32(), rng.edgy32());
        // parsing
        let na = Sc::from_be_bytes_nonzero(&ab);
        let ok = big(&ab) < n && big(&ab) != BigUint::from(0u8);
        assert_eq!(na.is_some(), ok);
        // reduction
        let a = Sc::reduce_be_bytes(&ab);
        let b = Sc::reduce_be_bytes(&bb);
        assert_eq!(sc_big(&a), big(&ab) % &n);
        assert_eq!(sc_big(&b), big(&bb) % &n);
        assert_eq!(sc_big(&a.mul(&b)), (sc_big(&a) * sc_big(&b)) % &n);
        let inv = a.invert();
        if a.is_zero() {
            assert!(inv.is_zero());
        } else {
            assert_eq!(sc_big(&inv.mul(&a)), BigUint::from(1u8), "{a:?}");
            assert_eq!(sc(&reduce_digest(&ab).invert().unwrap()), inv);
        }
    }
    for k in 1..2000u64 {
        let a = Sc::reduce_be_bytes(&to32(&BigUint::from(k)));
        assert_eq!(sc_big(&a.invert().mul(&a)), BigUint::from(1u8));
        let a = Sc::reduce_be_bytes(&sub_small(&be(&N), k));
        assert_eq!(sc_big(&a.invert().mul(&a)), BigUint::from(1u8));
    }
}

#[test]
fn wnaf_recoding_is_exact_and_sparse() {
    let mut rng = Rng::new("wnaf_recoding_is_exact_and_sparse");
    for i in 0..iters(2000) {
        let mut b = rng.edgy32();
        if i % 7 == 0 {
            b = [0xFF; 32];
        }
        if i == 1 {
            b = [0; 32];
        }
        let l = limbs(&b);
        for w in [5u32, 8] {
            let d = super::wnaf(&l, w).unwrap();
            let want = big(&b);
            assert_eq!(signed_value(&d), want.clone(), "w {w} {b:x?}");
            let half = 1i32 << (w - 1);
            let mut last: Option<usize> = None;
            for (j, &x) in d.iter().enumerate() {
                if x != 0 {
                    assert!(x % 2 != 0 && i32::from(x).abs() < half);
                    if let Some(k) = last {
                        assert!(j - k >= w as usize, "digits too close");
                    }
                    last = Some(j);
                }
            }
        }
    }
}

/// (Σ positive digits·2^i, Σ |negative digits|·2^i).
fn digit_sums(d: &[i8]) -> (BigUint, BigUint) {
    let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
    for (i, &x) in d.iter().enumerate() {
        if x > 0 {
            pos += BigUint::from(x as u8) << i;
        } else if x < 0 {
            neg += BigUint::from(x.unsigned_abs()) << i;
        }
    }
    (pos, neg)
}

fn signed_value(d: &[i8]) -> BigUint {
    let (pos, neg) = digit_sums(d);
    assert!(pos >= neg);
    pos - neg
}

/// (V mod p, |V|, V < 0) of signed 29-bit limbs.
fn limb_value(l: &[i64; 9]) -> (BigUint, BigUint, bool) {
    let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
    for (i, &x) in l.iter().enumerate() {
        if x >= 0 {
            pos += BigUint::from(x as u64) << (29 * i);
        } else {
            neg += BigUint::from(x.unsigned_abs()) << (29 * i);
        }
    }
    let p = p_big();
    let m = ((&pos % &p) + &p - (&neg % &p)) % &p;
    if pos >= neg {
        (m, pos - neg, false)
    } else {
        (m, neg - pos, true)
    }
}

fn limbs(b: &[u8; 32]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (o, c) in out.iter_mut().rev().zip(b.chunks(4)) {
        *o = u32::from_be_bytes(c.try_into().unwrap());
    }
    out
}

#[test]
fn g_table_is_odd_multiples_of_g() {
    let g = ProjectivePoint::GENERATOR;
    let g128 = g * Scalar::from_repr(to32(&(BigUint::from(1u8) << 128)).into()).unwrap();
    for (t, base, name) in [(&G_ODD[..], g, "G"), (&G128_ODD[..], g128, "2^128·G")] {
        assert_eq!(t.len(), 64);
        for (i, e) in t.iter().enumerate() {
            let want = (base * Scalar::from(2 * i as u64 + 1)).to_affine();
            assert_eq!(*e, affine(&want), "{}·{name}", 2 * i + 1);
            assert!(e.is_on_curve());
            // stored canonical (< p), as the generator script writes them
            for c in [&e.x, &e.y] {
                let (_, v, neg) = limb_value(&c.0);
                assert!(!neg && v < p_big() && c.0[..8].iter().all(|&l| (0..1 << 29).contains(&l)));
            }
        }
    }
}

#[test]
fn identity_and_point_helpers() {
    let g = affine(&AffinePoint::GENERATOR);
    let j = Jacobian::from_affine(&g);
    assert_eq!(
        j.double().to_affine().unwrap(),
        affine(&(ProjectivePoint::GENERATOR.double()).to_affine())
    );
    assert!(j.add_affine(&g.neg()).to_affine().is_none());
    assert!(Jacobian::IDENTITY.double().to_affine().is_none());
    assert_eq!(Jacobian::IDENTITY.add_affine(&g).to_affine(), Some(g));
}
