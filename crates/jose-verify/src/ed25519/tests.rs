//! The arithmetic against big integers: field operations, canonical-y and small-order
//! checks, scalar recodings. Verification is tested differentially against ed25519-dalek in
//! `tests/ed25519.rs`; both use the helpers in `tests/support/ed25519.rs`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../../tests/support/ed25519.rs"]
mod support;

use super::field::Fe;
use super::point::Ext;
use super::{decompress, is_canonical_y, is_small_order_y, signed_digits, wnaf};
use ::rsa::BigUint;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use support::{
    canonical_twin, ell, iters, le32, non_canonical_encodings, p, random32, small_order_encodings,
    value,
};

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
        // from_bytes takes the low 255 bits unreduced (tight limbs); to_bytes is canonical
        let fa = Fe::from_bytes(&le32(a));
        let fb = Fe::from_bytes(&le32(b));
        assert_eq!(fe_value(&fa), a % &p, "from/to bytes {a}");
        assert_eq!(fe_value(&fa.mul(&fb)), (a * b) % &p, "mul {a} {b}");
        assert_eq!(fe_value(&fa.square()), (a * a) % &p, "square {a}");
        assert_eq!(fe_value(&fa.add(&fb).carry()), (a + b) % &p, "add");
        assert_eq!(
            fe_value(&fa.sub(&fb).carry()),
            (a + &p * 2u8 - b) % &p,
            "sub"
        );
        assert_eq!(fe_value(&fa.neg().carry()), (&p * 2u8 - a) % &p, "neg");
        // loose operands (sums and differences) of products, and carried sums
        let s = fa.add(&fb);
        let t = fb.sub(&fa);
        let want = ((a + b) * (b + &p * 2u8 - a)) % &p;
        assert_eq!(fe_value(&s.mul(&t)), want, "loose mul");
        assert_eq!(
            fe_value(&t.mul(&fa)),
            ((b + &p * 2u8 - a) * a) % &p,
            "loose·tight"
        );
        assert_eq!(
            fe_value(&s.square()),
            ((a + b) * (a + b)) % &p,
            "loose square"
        );
        let s2 = s.carry().add(&t.carry());
        assert_eq!(fe_value(&s2.carry()), (b * 2u8) % &p, "carried sums");
        assert!(fa.equals(&Fe::from_bytes(&le32(&(a % &p)))), "equals {a}");
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
        assert_eq!(is_canonical_y(&b), canonical, "{y}");
        b[31] |= 0x80; // the sign bit is not part of y
        assert_eq!(is_canonical_y(&b), canonical, "{y} with sign");
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
            let d = signed_digits(&b, w);
            let n = 256usize.div_ceil(w as usize);
            let half = 1i64 << (w - 1);
            let d: Vec<i64> = d[..n].iter().map(|&x| i64::from(x)).collect();
            assert!(d.iter().all(|&x| (-half..half).contains(&x)), "range w={w}");
            assert_eq!(&from_digits(&d, w), k, "signed digits w={w}");
        }
        let naf = wnaf(&b, 5);
        let d: Vec<i64> = naf.iter().map(|&x| i64::from(x)).collect();
        assert!(d.iter().all(|&x| x == 0 || (x % 2 != 0 && x.abs() < 16)));
        assert_eq!(&from_digits(&d, 1), k, "wnaf");
    }
}

// ---------------------------------------------------------------------------------------------
// small order
// ---------------------------------------------------------------------------------------------

#[test]
fn small_order_points_are_small_order() {
    let mut decoded = 0;
    for b in small_order_encodings() {
        if let Some((x, y)) = decompress(&b) {
            decoded += 1;
            assert!(
                Ext::from_affine(&x, &y).is_small_order(),
                "{}",
                hex::encode(b)
            );
            assert_eq!(
                is_small_order_y(&b),
                is_canonical_y(&b),
                "the y shortcut names every canonical small-order encoding: {}",
                hex::encode(b)
            );
        }
    }
    // and no other point: random valid points are not small order by either test
    for _ in 0..iters(50) {
        let b = SigningKey::generate(&mut OsRng).verifying_key().to_bytes();
        let (x, y) = decompress(&b).unwrap();
        assert!(!Ext::from_affine(&x, &y).is_small_order());
        assert!(!is_small_order_y(&b));
    }
    assert!(decoded >= 8, "only {decoded} small-order encodings decoded");
    let sk = SigningKey::generate(&mut OsRng);
    let (x, y) = decompress(&sk.verifying_key().to_bytes()).unwrap();
    assert!(!Ext::from_affine(&x, &y).is_small_order());
}

/// Every non-canonical encoding (y + p, y < 19, either sign) decodes exactly when its
/// canonical twin (y) does, to the same point, which is the point curve25519-dalek decodes;
/// the canonical-y check refuses all 38 and accepts the twins. 24 decode: 4 of small order
/// (y = 0, 1) and 20 not.
#[test]
fn non_canonical_encodings_decode_as_their_canonical_twin() {
    let (mut decoded, mut large) = (0, 0);
    for (y, nc) in non_canonical_encodings() {
        let twin = canonical_twin(y, &nc);
        assert!(
            !is_canonical_y(&nc) && is_canonical_y(&twin),
            "{}",
            hex::encode(nc)
        );
        let dalek = CompressedEdwardsY(nc)
            .decompress()
            .map(|p| p.compress().to_bytes());
        match (decompress(&nc), decompress(&twin)) {
            (Some((x1, y1)), Some((x2, y2))) => {
                assert_eq!(
                    (x1.to_bytes(), y1.to_bytes()),
                    (x2.to_bytes(), y2.to_bytes())
                );
                assert_eq!(fe_value(&y1), BigUint::from(y));
                let mut ours = y1.to_bytes();
                ours[31] |= u8::from(x1.is_negative()) << 7;
                assert_eq!(Some(ours), dalek, "{}", hex::encode(nc));
                decoded += 1;
                let small = Ext::from_affine(&x1, &y1).is_small_order();
                assert_eq!(small, y < 2, "y = {y}");
                large += usize::from(!small);
            }
            (None, None) => assert_eq!(dalek, None),
            _ => panic!("{} and its twin disagree", hex::encode(nc)),
        }
    }
    assert_eq!((decoded, large), (24, 20));
}
