//! Arithmetic modulo p = 2^255 − 19 on fiat-crypto's verified 32-bit code
//! (`fiat_crypto::curve25519_32`, generated and proven correct by fiat-crypto).
//!
//! An element is ten unsigned limbs of alternately 26 and 25 bits, V = Σ fᵢ·2^⌈25.5·i⌉, in
//! one of fiat's two bound classes, each its own type here:
//! - [`Fe`] is *tight*: limbs in [0, 2^26] (even i) and [0, 2^25] (odd i). Products, squares,
//!   carries, `from_bytes` and the constants are tight.
//! - [`FeLoose`] is *loose*: limbs in [0, 3·2^26] / [0, 3·2^25]. [`Fe::add`], [`Fe::sub`]
//!   and [`Fe::neg`] take tight operands and return loose sums (fiat's `sub` and `opp` add
//!   2p first, so nothing goes below zero).
//!
//! Fiat's functions are correct for inputs within these bounds, and the types enforce them:
//! [`Fe::mul`] and [`Fe::square`] (`carry_mul`, `carry_square`) accept either class, an
//! addition or subtraction takes only tight operands, and [`FeLoose::carry`] makes a loose
//! value tight again. The only limbs made outside fiat's functions are the constants below
//! (canonical, < 2^26 / 2^25) and [`cswap`]'s masked swap of two values of one class;
//! `scripts/limb_bounds.py` checks both, and evaluates the point formulas over these classes.
//! Variable time throughout: only public data is handled.

use fiat_crypto::curve25519_32::{
    fiat_25519_add, fiat_25519_carry, fiat_25519_carry_mul, fiat_25519_carry_square,
    fiat_25519_from_bytes, fiat_25519_loose_field_element as Loose, fiat_25519_opp,
    fiat_25519_relax, fiat_25519_sub, fiat_25519_tight_field_element as Tight, fiat_25519_to_bytes,
};

/// An element of GF(2^255 − 19) with fiat's tight limb bounds.
#[derive(Clone, Copy)]
pub struct Fe(Tight);

/// An element of GF(2^255 − 19) with fiat's loose limb bounds: an input of [`Fe::mul`],
/// [`Fe::square`] and [`FeLoose::carry`] only.
#[derive(Clone, Copy)]
pub struct FeLoose(Loose);

impl core::fmt::Debug for Fe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Fe({:?})", self.0 .0)
    }
}

impl core::fmt::Debug for FeLoose {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FeLoose({:?})", self.0 .0)
    }
}

/// d = −121665/121666, the curve constant.
pub const D: Fe = Fe(Tight([
    0x35978a3, 0xd37284, 0x3156ebd, 0x6a0a0e, 0x1c029, 0x179e898, 0x3a03cbb, 0x1ce7198, 0x2e2b6ff,
    0x1480db3,
]));
/// 2·d.
pub const D2: Fe = Fe(Tight([
    0x2b2f159, 0x1a6e509, 0x22add7a, 0xd4141d, 0x38052, 0xf3d130, 0x3407977, 0x19ce331, 0x1c56dff,
    0x901b67,
]));
/// √−1 = 2^((p−1)/4).
pub const SQRT_M1: Fe = Fe(Tight([
    0x20ea0b0, 0x186c9d2, 0x8f189d, 0x35697f, 0xbd0c60, 0x1fbd7a7, 0x2804c9e, 0x1e16569, 0x4fc1d,
    0xae0c92,
]));
/// x of the base point B (even).
pub const BASE_X: Fe = Fe(Tight([
    0x325d51a, 0x18b5823, 0xf6592a, 0x104a92d, 0x1a4b31d, 0x1d6dc5c, 0x27118fe, 0x7fd814,
    0x13cd6e5, 0x85a4db,
]));
/// y of the base point B = 4/5.
pub const BASE_Y: Fe = Fe(Tight([
    0x2666658, 0x1999999, 0xcccccc, 0x1333333, 0x1999999, 0x666666, 0x3333333, 0xcccccc, 0x2666666,
    0x1999999,
]));

/// An operand of a product: either bound class (a tight value is also loose).
pub trait Operand {
    fn loose(&self) -> Loose;
}

impl Operand for Fe {
    #[inline(always)]
    fn loose(&self) -> Loose {
        let mut out = Loose([0; 10]);
        fiat_25519_relax(&mut out, &self.0);
        out
    }
}

impl Operand for FeLoose {
    #[inline(always)]
    fn loose(&self) -> Loose {
        self.0
    }
}

/// The limbs of a value of either class, for [`cswap`].
pub trait Limbs {
    fn limbs_mut(&mut self) -> &mut [u32; 10];
}

impl Limbs for Fe {
    #[inline(always)]
    fn limbs_mut(&mut self) -> &mut [u32; 10] {
        &mut self.0 .0
    }
}

impl Limbs for FeLoose {
    #[inline(always)]
    fn limbs_mut(&mut self) -> &mut [u32; 10] {
        &mut self.0 .0
    }
}

/// Swaps `a` and `b` (two values of the same class) when `swap`, with masks instead of a
/// data-dependent branch: the sign of a scalar digit is unpredictable, and a mispredicted
/// branch per table addition costs more than these masks. Each result is one of the two
/// inputs, so the class is kept.
#[inline(always)]
pub fn cswap<T: Limbs>(a: &mut T, b: &mut T, swap: bool) {
    let m = 0u32.wrapping_sub(u32::from(swap));
    for (x, y) in a.limbs_mut().iter_mut().zip(b.limbs_mut().iter_mut()) {
        let t = (*x ^ *y) & m;
        *x ^= t;
        *y ^= t;
    }
}

/// Product of two operands (fiat's `carry_mul`).
#[inline(always)]
fn mul_loose(a: &Loose, b: &Loose) -> Fe {
    let mut out = Tight([0; 10]);
    fiat_25519_carry_mul(&mut out, a, b);
    Fe(out)
}

/// Square of an operand (fiat's `carry_square`).
#[inline(always)]
fn square_loose(a: &Loose) -> Fe {
    let mut out = Tight([0; 10]);
    fiat_25519_carry_square(&mut out, a);
    Fe(out)
}

impl FeLoose {
    /// self · rhs (tight).
    #[inline]
    pub fn mul<R: Operand>(&self, rhs: &R) -> Fe {
        mul_loose(&self.0, &rhs.loose())
    }

    /// self² (tight).
    #[inline]
    pub fn square(&self) -> Fe {
        square_loose(&self.0)
    }

    /// The same value with tight limbs (fiat's `carry`).
    #[inline]
    pub fn carry(&self) -> Fe {
        let mut out = Tight([0; 10]);
        fiat_25519_carry(&mut out, &self.0);
        Fe(out)
    }
}

impl Fe {
    /// The first and last limbs XORed: reading them brings the element's memory into cache
    /// (the comb tables' prefetch, `scalar_mul::touch_niels`).
    #[inline(always)]
    pub fn touch(&self) -> u32 {
        self.0 .0[0] ^ self.0 .0[9]
    }

    pub const ZERO: Fe = Fe(Tight([0; 10]));
    pub const ONE: Fe = Fe(Tight([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]));

    /// The low 255 bits of `b` (little-endian; the top bit is ignored). Values in [p, 2^255)
    /// are accepted unreduced: callers that need a canonical encoding check it themselves.
    pub fn from_bytes(b: &[u8; 32]) -> Fe {
        let mut bytes = *b;
        if let Some(top) = bytes.last_mut() {
            *top &= 0x7f; // fiat's input bound: the last byte ≤ 0x7f
        }
        let mut out = Tight([0; 10]);
        fiat_25519_from_bytes(&mut out, &bytes);
        Fe(out)
    }

    /// The canonical little-endian encoding (value reduced into [0, p)).
    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        fiat_25519_to_bytes(&mut out, &self.0);
        out
    }

    /// self + rhs (loose).
    #[inline]
    pub fn add(&self, rhs: &Fe) -> FeLoose {
        let mut out = Loose([0; 10]);
        fiat_25519_add(&mut out, &self.0, &rhs.0);
        FeLoose(out)
    }

    /// self − rhs (loose).
    #[inline]
    pub fn sub(&self, rhs: &Fe) -> FeLoose {
        let mut out = Loose([0; 10]);
        fiat_25519_sub(&mut out, &self.0, &rhs.0);
        FeLoose(out)
    }

    /// −self (loose).
    #[inline]
    pub fn neg(&self) -> FeLoose {
        let mut out = Loose([0; 10]);
        fiat_25519_opp(&mut out, &self.0);
        FeLoose(out)
    }

    /// self · rhs (tight).
    #[inline]
    pub fn mul<R: Operand>(&self, rhs: &R) -> Fe {
        mul_loose(&self.loose(), &rhs.loose())
    }

    /// self² (tight).
    #[inline]
    pub fn square(&self) -> Fe {
        square_loose(&self.loose())
    }

    /// self^(2^n).
    pub fn pow2k(&self, n: u32) -> Fe {
        let mut r = *self;
        for _ in 0..n {
            r = r.square();
        }
        r
    }

    /// (self^(2^250 − 1), self^11): the shared head of the inversion and square-root chains.
    fn pow250_1(&self) -> (Fe, Fe) {
        let z2 = self.square();
        let z9 = z2.pow2k(2).mul(self);
        let z11 = z9.mul(&z2);
        let z_5_0 = z11.square().mul(&z9); // 2^5 − 1
        let z_10_0 = z_5_0.pow2k(5).mul(&z_5_0);
        let z_20_0 = z_10_0.pow2k(10).mul(&z_10_0);
        let z_40_0 = z_20_0.pow2k(20).mul(&z_20_0);
        let z_50_0 = z_40_0.pow2k(10).mul(&z_10_0);
        let z_100_0 = z_50_0.pow2k(50).mul(&z_50_0);
        let z_200_0 = z_100_0.pow2k(100).mul(&z_100_0);
        let z_250_0 = z_200_0.pow2k(50).mul(&z_50_0);
        (z_250_0, z11)
    }

    /// self^(p − 2) = 1/self (0 for 0).
    pub fn invert(&self) -> Fe {
        let (z_250_0, z11) = self.pow250_1();
        z_250_0.pow2k(5).mul(&z11)
    }

    /// self^((p − 5)/8) = self^(2^252 − 3), for square roots.
    pub fn pow_p58(&self) -> Fe {
        let (z_250_0, _) = self.pow250_1();
        z_250_0.pow2k(2).mul(self)
    }

    pub fn is_zero(&self) -> bool {
        self.to_bytes() == [0u8; 32]
    }

    /// The sign used by the point encoding: the low bit of the canonical value.
    pub fn is_negative(&self) -> bool {
        self.to_bytes().first().is_some_and(|b| b & 1 == 1)
    }

    pub fn equals(&self, rhs: &Fe) -> bool {
        self.to_bytes() == rhs.to_bytes()
    }

    /// √(u/v) when u/v is a square: `Some(x)` with x² = u/v (either root), else `None`.
    /// x = u·v³·(u·v⁷)^((p−5)/8), fixed by √−1 when x² = −u/v (RFC 8032 §5.1.3).
    pub fn sqrt_ratio(u: &Fe, v: &Fe) -> Option<Fe> {
        let v3 = v.square().mul(v);
        let v7 = v3.square().mul(v);
        let x = u.mul(&v3).mul(&u.mul(&v7).pow_p58());
        let vxx = v.mul(&x.square());
        if vxx.equals(u) {
            Some(x)
        } else if vxx.neg().carry().equals(u) {
            Some(x.mul(&SQRT_M1))
        } else {
            None
        }
    }
}
