//! Points of the twisted Edwards curve −x² + y² = 1 + d·x²·y² (edwards25519), in the
//! coordinate systems of Hisil–Wong–Carter–Dawson as used by ref10 and curve25519-dalek:
//! extended (X:Y:Z:T, x = X/Z, y = Y/Z, xy = T/Z), projective (X:Y:Z), "completed"
//! ((X:Z), (Y:T)) as the output of an addition or doubling, and the Niels forms of an addend
//! (y+x, y−x, 2d·xy) that make one addition 7 multiplications. d is not a square, so the
//! addition law is complete: no exceptional cases.
//!
//! Limb bounds (see `field`): every coordinate stored in [`Ext`], [`Proj`] and [`Niels`], and
//! Z and 2d·T of a [`PNiels`], is tight (a product, a square or a carried sum); the sums
//! Y ± X of a [`PNiels`] and the four coordinates of a [`Completed`] are loose (one fiat
//! addition or subtraction of tight values), and only ever multiplied. A sum that is added to
//! or subtracted from again (2Z, Y² ± X², 2Z²) is carried first. `scripts/limb_bounds.py`
//! checks each fiat operation's inputs and each stored coordinate against these classes.

use super::field::{cswap, Fe, FeLoose, D2};

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
    x: FeLoose,
    y: FeLoose,
    z: FeLoose,
    t: FeLoose,
}

/// An affine addend: (y + x, y − x, 2d·x·y), all tight.
#[derive(Clone, Copy, Debug)]
pub struct Niels {
    pub ypx: Fe,
    pub ymx: Fe,
    pub xy2d: Fe,
}

/// A projective addend: (Y + X, Y − X, Z, 2d·T).
#[derive(Clone, Copy, Debug)]
pub struct PNiels {
    ypx: FeLoose,
    ymx: FeLoose,
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

    /// self + n, or self − n when `negate` (n affine). −n swaps y+x and y−x and negates
    /// 2d·xy, which swaps the sum and difference with 2Z; both swaps are masked ([`cswap`]).
    #[inline]
    pub fn add_niels(&self, n: &Niels, negate: bool) -> Completed {
        let (mut ypx, mut ymx) = (n.ypx, n.ymx);
        cswap(&mut ypx, &mut ymx, negate);
        let pp = self.y.add(&self.x).mul(&ypx);
        let mm = self.y.sub(&self.x).mul(&ymx);
        let txy2d = self.t.mul(&n.xy2d);
        let z2 = self.z.add(&self.z).carry();
        let mut z = z2.add(&txy2d);
        let mut t = z2.sub(&txy2d);
        cswap(&mut z, &mut t, negate);
        Completed {
            x: pp.sub(&mm),
            y: pp.add(&mm),
            z,
            t,
        }
    }

    /// self + n (n projective).
    pub fn add_pniels(&self, n: &PNiels) -> Completed {
        let pp = self.y.add(&self.x).mul(&n.ypx);
        let mm = self.y.sub(&self.x).mul(&n.ymx);
        let tt2d = self.t.mul(&n.t2d);
        let zz = self.z.mul(&n.z);
        let zz2 = zz.add(&zz).carry();
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
        let zz2 = zz.add(&zz).carry();
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
    /// 2·self (4 squarings, 3 carries).
    pub fn double(&self) -> Completed {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz = self.z.square();
        let zz2 = zz.add(&zz).carry();
        let xpy2 = self.x.add(&self.y).square();
        let yy_plus_xx = yy.add(&xx);
        let yy_minus_xx = yy.sub(&xx);
        let (sum, dif) = (yy_plus_xx.carry(), yy_minus_xx.carry());
        Completed {
            x: xpy2.sub(&sum),
            y: yy_plus_xx,
            z: yy_minus_xx,
            t: zz2.sub(&dif),
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
