//! Points of the twisted Edwards curve −x² + y² = 1 + d·x²·y² (edwards25519), in the
//! coordinate systems of Hisil–Wong–Carter–Dawson as used by ref10 and curve25519-dalek:
//! extended (X:Y:Z:T, x = X/Z, y = Y/Z, xy = T/Z), projective (X:Y:Z), "completed"
//! ((X:Z), (Y:T)) as the output of an addition or doubling, and the Niels forms of an addend
//! (y+x, y−x, 2d·xy) that make one addition 7 multiplications. d is not a square, so the
//! addition law is complete: no exceptional cases.
//!
//! Limb bounds (see `field`): every coordinate stored in [`Ext`], [`Proj`], [`Niels`] and
//! [`PNiels`] is reduced, except the sums y±x of a [`PNiels`] (two reduced terms) and the base
//! point made by [`Ext::from_affine`] from the constants `BASE_X`, `BASE_Y`, whose limbs are
//! canonical (< 2^26 / 2^25: up to 1.84·2^24 in an odd limb of x, not reduced). Every formula
//! below feeds multiplications at most three reduced terms, or for the base point sums y ± x
//! of at most 3.15·2^24 (an odd limb): within the 3.3 product-input bound either way.
//! `scripts/limb_bounds.py` checks each product and each stored coordinate against these.

use super::field::{Fe, D2};

/// Extended coordinates.
#[derive(Clone, Copy, Debug)]
pub struct Ext {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
    pub t: Fe,
}

/// Projective coordinates (doubling input).
#[derive(Clone, Copy, Debug)]
pub struct Proj {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
}

/// The result of an addition or doubling: x = X/Z, y = Y/T.
#[derive(Clone, Debug)]
pub struct Completed {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// An affine addend: (y + x, y − x, 2d·x·y), all reduced.
#[derive(Clone, Copy, Debug)]
pub struct Niels {
    pub ypx: Fe,
    pub ymx: Fe,
    pub xy2d: Fe,
}

impl Niels {
    /// −self when `negate` (swap y+x and y−x, negate 2dxy), without a data-dependent
    /// branch: the sign of a scalar digit is unpredictable, and a mispredicted branch per
    /// table addition costs more than these masks.
    #[inline(always)]
    pub fn negate_if(&self, negate: bool) -> Niels {
        let m = -i32::from(negate);
        let mut ypx = self.ypx.0;
        let mut ymx = self.ymx.0;
        for (a, b) in ypx.iter_mut().zip(ymx.iter_mut()) {
            let t = (*a ^ *b) & m;
            *a ^= t;
            *b ^= t;
        }
        Niels {
            ypx: Fe(ypx),
            ymx: Fe(ymx),
            xy2d: Fe(self.xy2d.0.map(|x| (x ^ m) - m)),
        }
    }
}

/// A projective addend: (Y + X, Y − X, Z, 2d·T).
#[derive(Clone, Copy, Debug)]
pub struct PNiels {
    ypx: Fe,
    ymx: Fe,
    z: Fe,
    t2d: Fe,
}

impl Ext {
    pub const IDENTITY: Ext = Ext {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        t: Fe::ZERO,
    };

    /// From reduced affine coordinates.
    pub fn from_affine(x: &Fe, y: &Fe) -> Ext {
        Ext {
            x: *x,
            y: *y,
            z: Fe::ONE,
            t: x.mul(y),
        }
    }

    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_proj(&self) -> Proj {
        Proj {
            x: self.x,
            y: self.y,
            z: self.z,
        }
    }

    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_pniels(&self) -> PNiels {
        PNiels {
            ypx: self.y.add(&self.x),
            ymx: self.y.sub(&self.x),
            z: self.z,
            t2d: self.t.mul(&D2),
        }
    }

    /// self + n (n affine).
    pub fn add_niels(&self, n: &Niels) -> Completed {
        let pp = self.y.add(&self.x).mul(&n.ypx);
        let mm = self.y.sub(&self.x).mul(&n.ymx);
        let txy2d = self.t.mul(&n.xy2d);
        let z2 = self.z.add(&self.z);
        Completed {
            x: pp.sub(&mm),
            y: pp.add(&mm),
            z: z2.add(&txy2d),
            t: z2.sub(&txy2d),
        }
    }

    /// self + n (n projective).
    pub fn add_pniels(&self, n: &PNiels) -> Completed {
        let pp = self.y.add(&self.x).mul(&n.ypx);
        let mm = self.y.sub(&self.x).mul(&n.ymx);
        let tt2d = self.t.mul(&n.t2d);
        let zz = self.z.mul(&n.z);
        let zz2 = zz.add(&zz);
        Completed {
            x: pp.sub(&mm),
            y: pp.add(&mm),
            z: zz2.add(&tt2d),
            t: zz2.sub(&tt2d),
        }
    }

    /// self − n (n projective).
    pub fn sub_pniels(&self, n: &PNiels) -> Completed {
        let pm = self.y.add(&self.x).mul(&n.ymx);
        let mp = self.y.sub(&self.x).mul(&n.ypx);
        let tt2d = self.t.mul(&n.t2d);
        let zz = self.z.mul(&n.z);
        let zz2 = zz.add(&zz);
        Completed {
            x: pm.sub(&mp),
            y: pm.add(&mp),
            z: zz2.sub(&tt2d),
            t: zz2.add(&tt2d),
        }
    }

    pub fn double(&self) -> Completed {
        self.to_proj().double()
    }

    /// [8]·self is the identity (the point has order 1, 2, 4 or 8).
    pub fn is_small_order(&self) -> bool {
        self.double()
            .to_proj()
            .double()
            .to_proj()
            .double()
            .to_ext()
            .is_identity()
    }

    /// X = 0 and Y = Z.
    pub fn is_identity(&self) -> bool {
        self.x.is_zero() && self.y.equals(&self.z)
    }

    /// Equal to the affine point (x, y) (reduced coordinates): X = x·Z and Y = y·Z.
    pub fn equals_affine(&self, x: &Fe, y: &Fe) -> bool {
        self.x.equals(&x.mul(&self.z)) && self.y.equals(&y.mul(&self.z))
    }
}

impl Proj {
    /// 2·self (4 squarings).
    pub fn double(&self) -> Completed {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz2 = self.z.square2();
        let xpy2 = self.x.add(&self.y).square();
        let yy_plus_xx = yy.add(&xx);
        let yy_minus_xx = yy.sub(&xx);
        Completed {
            x: xpy2.sub(&yy_plus_xx),
            y: yy_plus_xx,
            z: yy_minus_xx,
            t: zz2.sub(&yy_minus_xx),
        }
    }
}

impl Completed {
    pub fn to_ext(&self) -> Ext {
        Ext {
            x: self.x.mul(&self.t),
            y: self.y.mul(&self.z),
            z: self.z.mul(&self.t),
            t: self.x.mul(&self.y),
        }
    }

    pub fn to_proj(&self) -> Proj {
        Proj {
            x: self.x.mul(&self.t),
            y: self.y.mul(&self.z),
            z: self.z.mul(&self.t),
        }
    }
}

/// The affine Niels forms of `points`, with one shared inversion (Montgomery's trick).
/// `None` if a Z is zero (impossible for points of the curve).
pub fn batch_to_niels(points: &[Ext]) -> Option<Vec<Niels>> {
    // before[i] = Z0·…·Z(i−1)
    let mut before = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        before.push(acc);
        acc = acc.mul(&p.z);
    }
    if acc.is_zero() {
        return None;
    }
    let mut inv = acc.invert(); // 1/(Z0·…·Z(n−1))
    let mut out = vec![
        Niels {
            ypx: Fe::ZERO,
            ymx: Fe::ZERO,
            xy2d: Fe::ZERO,
        };
        points.len()
    ];
    for ((o, p), b) in out.iter_mut().zip(points).zip(before.iter()).rev() {
        let zinv = inv.mul(b);
        inv = inv.mul(&p.z);
        let x = p.x.mul(&zinv);
        let y = p.y.mul(&zinv);
        *o = Niels {
            ypx: y.add(&x).carry(),
            ymx: y.sub(&x).carry(),
            xy2d: x.mul(&y).mul(&D2),
        };
    }
    Some(out)
}
