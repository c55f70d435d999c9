//! The bound contract of the lazy 29-bit-limb field (see field.rs): multiplication and squaring
//! at the limits of their input bounds, weak reduction into class W and `is_zero` on its
//! forms, and the point formulas fed with extreme (non-canonical) representatives, each
//! against big integers or the `p256` crate.

use super::*;

/// T = 2^257.5 as a rational bound: V < T ⟺ V² < 2^515.
fn below_t(v: &BigUint) -> bool {
    v * v < (BigUint::from(1u8) << 515)
}

fn r_inv() -> BigUint {
    // R⁻¹ = (2^261)^(p−2) mod p
    let p = p_big();
    (BigUint::from(1u8) << 261).modpow(&(&p - BigUint::from(2u8)), &p)
}

fn random_limbs(rng: &mut Rng, bound: i64, top: i64) -> [i64; 9] {
    let mut l = [0i64; 9];
    for (i, x) in l.iter_mut().enumerate() {
        let b = if i == 8 { top } else { bound };
        *x = match rng.below(4) {
            0 => b,
            1 => -b,
            _ => (rng.next() % (2 * b as u64 + 1)) as i64 - b,
        };
    }
    l
}

#[test]
fn field_mul_at_the_limits_of_its_contract() {
    let mut rng = Rng::new("field_mul_at_the_limits_of_its_contract");
    let p = p_big();
    let ri = r_inv();
    // w(a)·w(b) ≤ 3.5 with the most lopsided and the balanced splits; top limbs sized so
    // that |V(a)|·|V(b)| ≤ 3.3·T² (T = 2^257.5 ⇒ top limb of a value < T is < 2^25.5).
    let splits: [(f64, f64); 3] = [(1.0, 3.5), (1.87, 1.87), (1.09, 3.2)];
    let mut n = 0;
    for _ in 0..iters(400) {
        let (wa, wb) = splits[rng.below(3)];
        let a_bound = (wa * (1u64 << 29) as f64) as i64 - 1;
        let b_bound = (wb * (1u64 << 29) as f64) as i64 - 1;
        let a = random_limbs(&mut rng, a_bound, 1 << 25);
        let b = random_limbs(&mut rng, b_bound, 1 << 25);
        let (am, av, _) = limb_value(&a);
        let (bm, bv, _) = limb_value(&b);
        if &av * &bv * BigUint::from(10u8) > (BigUint::from(33u8) << 515) {
            continue;
        }
        n += 1;
        let r = Fe(a).mul(&Fe(b)).0;
        let (rm, rv, rneg) = limb_value(&r);
        assert_eq!(rm, (&am * &bm % &p) * &ri % &p);
        assert!(!rneg && below_t(&rv), "result out of [0, T)");
        assert!(r[..8].iter().all(|&x| (0..1 << 29).contains(&x)), "{r:x?}");
        if wa == wb {
            let s = Fe(a).sqr().0;
            let (sm, sv, sneg) = limb_value(&s);
            assert_eq!(sm, (&am * &am % &p) * &ri % &p);
            assert!(!sneg && below_t(&sv));
        }
    }
    assert!(n > iters(200), "{n}");
}

#[test]
fn weak_reduction_lands_in_class_w() {
    let mut rng = Rng::new("weak_reduction_lands_in_class_w");
    let lim = (1i64 << 29) + (1 << 29) / 11; // 1.09·2^29
    for _ in 0..iters(3000) {
        // lazy values up to 8T in magnitude: limbs up to 8·2^29, top limb up to 8·2^25.5
        let a = random_limbs(&mut rng, 8 << 29, 362_000_000);
        let (am, av, _) = limb_value(&a);
        if av > (BigUint::from(8u8) << 257) + (BigUint::from(4u8) << 256) {
            continue; // (8T ≈ 2^260.5: stay below 2^260 + 2^258)
        }
        let w = Fe(a).weak().0;
        let (wm, wv, wneg) = limb_value(&w);
        assert_eq!(wm, am);
        assert!(w.iter().take(8).all(|&x| -lim < x && x < lim), "{w:x?}");
        assert!((0..1 << 24).contains(&w[8]), "{w:x?}");
        let bound = if wneg {
            BigUint::from(1u8) << 230
        } else {
            (BigUint::from(1u8) << 256) + (BigUint::from(1u8) << 230)
        };
        assert!(wv < bound);
        // is_zero on W values and on their differences with ±p multiples
        assert_eq!(Fe(w).is_zero(), wm == BigUint::from(0u8));
    }
    // values ≡ 0 in every form is_zero accepts
    let p = p_big();
    for k in [0u8, 1, 2] {
        let l = limbs_of(&(&p * BigUint::from(k)));
        assert!(Fe(l).is_zero());
        let neg = l.map(|x| -x);
        assert!(Fe(neg).is_zero());
        let mut off = l;
        off[0] += 1;
        assert!(!Fe(off).is_zero());
    }
}

fn limbs_of(v: &BigUint) -> [i64; 9] {
    let mut l = [0i64; 9];
    let m = BigUint::from((1u64 << 29) - 1);
    for (i, x) in l.iter_mut().enumerate() {
        let d = ((v >> (29 * i)) & &m).to_bytes_be();
        *x = d.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b));
    }
    l
}

/// Point formulas fed with coordinates at the edge of class M (limbs near 2^29, V close
/// to T = 2.83p, i.e. non-canonical representatives x + p, x + 2p) agree with p256; debug
/// builds assert every multiplication's preconditions on the way.
#[test]
fn point_formulas_with_extreme_representatives() {
    let mut rng = Rng::new("point_formulas_with_extreme_representatives");
    let p = p_big();
    let g = ProjectivePoint::GENERATOR;
    let mont = |x: &BigUint| -> BigUint { (x << 261) % &p };
    // largest representative below T of a Montgomery value
    let extreme = |m: &BigUint| -> [i64; 9] {
        let mut v = m.clone();
        while below_t(&(&v + &p)) {
            v += &p;
        }
        limbs_of(&v)
    };
    for _ in 0..iters(60) {
        let pt = (g * rng.scalar()).to_affine();
        let (x, y) = affine_xy(&pt);
        // Jacobian (λ²x, λ³y, λ) with λ random, every coordinate pushed towards T
        let lam = big(&scalar_bytes(&rng.scalar())) % &p;
        let l2 = &lam * &lam % &p;
        let l3 = &l2 * &lam % &p;
        let jx = extreme(&mont(&(big(&x) * &l2 % &p)));
        let jy = extreme(&mont(&(big(&y) * &l3 % &p)));
        let jz = extreme(&mont(&lam));
        let j = Jacobian {
            x: Fe(jx),
            y: Fe(jy),
            z: Fe(jz),
        };
        let want2 = affine(&(ProjectivePoint::from(pt).double()).to_affine());
        assert_eq!(j.double().to_affine().unwrap(), want2);
        assert_eq!(
            j.double().double().to_affine().unwrap(),
            affine(&(ProjectivePoint::from(pt).double().double()).to_affine())
        );
        // + an affine point with extreme coordinates
        let q = (g * rng.scalar()).to_affine();
        let (qx, qy) = affine_xy(&q);
        let qa = Affine {
            x: Fe(extreme(&mont(&big(&qx)))),
            y: Fe(extreme(&mont(&big(&qy)))),
        };
        let sum = affine(&(ProjectivePoint::from(pt) + ProjectivePoint::from(q)).to_affine());
        assert_eq!(j.add_affine(&qa).to_affine().unwrap(), sum);
        let diff = affine(&(ProjectivePoint::from(pt) - ProjectivePoint::from(q)).to_affine());
        assert_eq!(j.add_affine(&qa.neg()).to_affine().unwrap(), diff);
        // P + P and P − P through the affine path
        let pa = Affine {
            x: Fe(extreme(&mont(&big(&x)))),
            y: Fe(extreme(&mont(&big(&y)))),
        };
        assert_eq!(j.add_affine(&pa).to_affine().unwrap(), want2);
        assert!(j.add_affine(&pa.neg()).to_affine().is_none());
    }
}

/// The bound assertions are live in this build (debug assertions: `cargo test`, and the
/// release-optimised run of `make unit`); each fires just beyond its bound. (The class M and
/// W checks of the results cannot be made to fire from inputs within the preconditions.)
#[cfg(debug_assertions)]
mod bound_assertions {
    use super::Fe;

    #[test]
    fn at_the_bounds_nothing_fires() {
        // w = 1.87 each (w² ≈ 3.497), |V| small
        let a = Fe([1_003_948_604, 0, 0, 0, 0, 0, 0, 0, 0]);
        let _ = a.mul(&a).weak().is_zero();
        // |V| just below 8T for weak, 2.95·2^256 for is_zero
        let _ = Fe([0, 0, 0, 0, 0, 0, 0, 0, 379_625_061]).weak();
        let _ = Fe([0, 0, 0, 0, 0, 0, 0, 0, 49_492_787]).is_zero();
    }

    #[test]
    #[should_panic(expected = "mul limb bound")]
    fn mul_limbs() {
        let a = Fe([1_004_800_000, 0, 0, 0, 0, 0, 0, 0, 0]); // w ≈ 1.8716: w² > 3.5
        let _ = a.sqr();
    }

    #[test]
    #[should_panic(expected = "mul value bound")]
    fn mul_value() {
        // limbs small, |V| ≈ 2^258.4 each: v² ≈ 3.6 > 3.3
        let a = Fe([0, 0, 0, 0, 0, 0, 0, 0, 89_000_000]);
        let _ = a.mul(&a);
    }

    #[test]
    #[should_panic(expected = "weak bound")]
    fn weak_input() {
        let _ = Fe([0, 0, 0, 0, 0, 0, 0, 0, 379_625_063]).weak();
    }

    #[test]
    #[should_panic(expected = "is_zero bound")]
    fn is_zero_input() {
        let _ = Fe([0, 0, 0, 0, 0, 0, 0, 0, 49_492_788]).is_zero();
    }
}
