//! P-256 points: affine, Jacobian (x = X/Z², y = Y/Z³; the identity is Z ≡ 0) and Jacobian
//! with Z² and Z³ cached (table entries). Doubling uses the a = −3 formula (dbl-2001-b);
//! additions are the classic Jacobian ones with the exceptional cases (P = ±Q, either input
//! the identity) handled by explicit, variable-time branches.
//!
//! Field values follow the bound contract of `field` (w = limb bound / 2^29, v = |V| / T).
//! Every coordinate X, Y, Z held in a point is of class C: limbs in (−0.09, 1.09)·2^29 and
//! V ∈ (−2^229, T) — i.e. a product output (class M) or a `weak` output (class W). The
//! comments "[w, v]" give the bounds of each lazy intermediate that reaches a product.
//! Affine points (table entries, the key) are class M.

use super::field::{Fe, B_M, THREE_M};

/// Test-only counts (per thread) of the exceptional branches of the additions, so that tests
/// can show they reach them: P + P handed to the doubling, P + (−P) giving the identity.
#[cfg(test)]
pub mod exceptional {
    use std::cell::Cell;

    /// `add_affine` found P = Q (doubled), P = −Q (identity); the same for `add_cached`.
    pub const AFFINE_DOUBLED: usize = 0;
    pub const AFFINE_CANCELLED: usize = 1;
    pub const CACHED_DOUBLED: usize = 2;
    pub const CACHED_CANCELLED: usize = 3;
    /// An addition whose accumulator was the identity (other than at the start of a chain
    /// this follows a cancellation).
    pub const AFFINE_FROM_IDENTITY: usize = 4;
    pub const CACHED_FROM_IDENTITY: usize = 5;

    thread_local! {
        static COUNTS: Cell<[u64; 6]> = const { Cell::new([0; 6]) };
    }

    pub fn note(branch: usize) {
        COUNTS.with(|c| {
            let mut a = c.get();
            if let Some(x) = a.get_mut(branch) {
                *x += 1;
            }
            c.set(a);
        });
    }

    /// The counts since the last call (this thread).
    pub fn take() -> [u64; 6] {
        COUNTS.with(|c| c.replace([0; 6]))
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Affine {
    pub x: Fe,
    pub y: Fe,
}

#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
}

/// A Jacobian point with Z² and Z³ precomputed (saves 2M + 1S per addition).
#[derive(Clone, Copy, Debug)]
pub struct Cached {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
    pub zz: Fe,
    pub zzz: Fe,
}

impl PartialEq for Affine {
    fn eq(&self, o: &Affine) -> bool {
        self.x.to_u32_limbs() == o.x.to_u32_limbs() && self.y.to_u32_limbs() == o.y.to_u32_limbs()
    }
}

impl Eq for Affine {}

impl Affine {
    /// Whether (x, y) satisfies y² = x³ − 3x + b (x, y of class C).
    pub fn is_on_curve(&self) -> bool {
        let x = &self.x;
        // x² − 3: M − M = [1, 1], times x [1.09, 1]; then + b: [0, 2)·2^29, V ∈ [0, 2T).
        let rhs = x.sqr().sub(&Fe(THREE_M)).mul(x).add(&Fe(B_M));
        // y² − rhs: |V| < 2T → weak → |V| < 3p for is_zero.
        self.y.sqr().sub(&rhs).weak().is_zero()
    }

    /// −P, with y back in class W.
    pub fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg().weak(),
        }
    }
}

impl Jacobian {
    pub const IDENTITY: Jacobian = Jacobian {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub fn from_affine(p: &Affine) -> Jacobian {
        Jacobian {
            x: p.x,
            y: p.y,
            z: Fe::ONE,
        }
    }

    #[inline(always)]
    pub fn is_identity(&self) -> bool {
        self.z.is_zero()
    }

    /// Affine coordinates; `None` for the identity. (One field inversion; tests only.)
    #[cfg(test)]
    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_affine(&self) -> Option<Affine> {
        if self.is_identity() {
            return None;
        }
        let zi = self.z.invert();
        let zi2 = zi.sqr();
        Some(Affine {
            x: self.x.mul(&zi2),
            y: self.y.mul(&zi2.mul(&zi)),
        })
    }

    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_cached(&self) -> Cached {
        let zz = self.z.sqr();
        Cached {
            x: self.x,
            y: self.y,
            z: self.z,
            zz,
            zzz: zz.mul(&self.z),
        }
    }

    /// 2·P, dbl-2001-b (a = −3), with Z3 = 2Y·Z: 4M + 4S. P-256 has no point of order 2,
    /// so a non-identity input never yields the identity, and Z ≡ 0 stays Z ≡ 0.
    #[inline]
    pub fn double(&self) -> Jacobian {
        let (x, y, z) = (&self.x, &self.y, &self.z);
        let delta = z.sqr(); // M
        let gamma = y.sqr(); // M
        let beta = x.mul(&gamma); // M
                                  // (X − δ)·(X + δ): C − M → [1.09, 1]; C + M → [2.09, 2]; products 2.28 and 2.
        let t = x.sub(&delta).mul(&x.add(&delta));
        let alpha = t.mul_small(3).weak(); // |V| < 3T → W
                                           // X3 = α² − 8β: (−8, 1)·2^29 limbs, |V| < 8T → W
        let x3 = alpha.sqr().sub(&beta.mul_small(8)).weak();
        // 4β − X3: limbs (−1.09, 4.09), V ∈ (−0.4T, 4T); carried: limbs [0, 1), top limb
        // |⌊V/2^232⌋| < 2^27.5, so [1, 4] against α [1.09, 0.36]: 1.09 and 1.44.
        let d = beta.mul_small(4).sub(&x3).carried();
        // Y3 = α·(4β − X3) − 8γ²: (−8, 1), |V| < 8T → W
        let y3 = alpha.mul(&d).sub(&gamma.sqr().mul_small(8)).weak();
        // Z3 = 2Y·Z: [2.18, 2]·[1.09, 1] → 2.38 and 2.
        let z3 = y.dbl().mul(z);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q for affine Q (class M, or its y negated and weak), madd-2004-hmv: 8M + 3S.
    #[inline]
    pub fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_identity() {
            #[cfg(test)]
            exceptional::note(exceptional::AFFINE_FROM_IDENTITY);
            return Jacobian::from_affine(q);
        }
        let z1z1 = self.z.sqr();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z.mul(&z1z1));
        // M − C: limbs (−1.09, 1.09), V ∈ (−T, T + 2^229): [1.09, 1], and |V| < 3p.
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            return if r.is_zero() {
                #[cfg(test)]
                exceptional::note(exceptional::AFFINE_DOUBLED);
                self.double()
            } else {
                #[cfg(test)]
                exceptional::note(exceptional::AFFINE_CANCELLED);
                Jacobian::IDENTITY
            };
        }
        let hh = h.sqr();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        // r² − H³ − 2V: (−3, 1), |V| < 3T → W
        let x3 = r.sqr().sub(&hhh).sub(&v.dbl()).weak();
        // V − X3: M − W = [1.09, 1]; r·(V − X3) − Y1·H³: M − M, |V| < T → W
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh)).weak();
        Jacobian {
            x: x3,
            y: y3,
            z: self.z.mul(&h),
        }
    }

    /// P + Q for cached Jacobian Q (coordinates class C, zz and zzz class M): 11M + 3S.
    /// `neg` adds −Q instead.
    #[inline]
    pub fn add_cached(&self, q: &Cached, neg: bool) -> Jacobian {
        // −Y: limbs (−1.09, 0.09), V ∈ (−T, 2^229): [1.09, 1] as a product input.
        let qy = if neg { q.y.neg() } else { q.y };
        if q.z.is_zero() {
            return *self;
        }
        if self.is_identity() {
            #[cfg(test)]
            exceptional::note(exceptional::CACHED_FROM_IDENTITY);
            return Jacobian {
                x: q.x,
                y: qy.weak(),
                z: q.z,
            };
        }
        let z1z1 = self.z.sqr();
        let u1 = self.x.mul(&q.zz);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.zzz);
        let s2 = qy.mul(&self.z.mul(&z1z1));
        // M − M: [1, 1], |V| < T < 3p.
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h.is_zero() {
            return if r.is_zero() {
                #[cfg(test)]
                exceptional::note(exceptional::CACHED_DOUBLED);
                self.double()
            } else {
                #[cfg(test)]
                exceptional::note(exceptional::CACHED_CANCELLED);
                Jacobian::IDENTITY
            };
        }
        let hh = h.sqr();
        let hhh = h.mul(&hh);
        let v = u1.mul(&hh);
        let x3 = r.sqr().sub(&hhh).sub(&v.dbl()).weak(); // (−3, 1), |V| < 3T → W
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&hhh)).weak(); // as in add_affine
        Jacobian {
            x: x3,
            y: y3,
            z: self.z.mul(&q.z).mul(&h),
        }
    }
}
