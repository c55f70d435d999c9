//! Arithmetic modulo p = 2^255 − 19 for wasm32 (the ref10 representation).
//!
//! An element is ten signed limbs of alternately 26 and 25 bits, V = Σ fᵢ·2^⌈25.5·i⌉. wasm32
//! multiplies 64×64→64 natively but not 64×64→128, so a product is 100 i64 multiply-adds of
//! 32-bit values with no carry handling, then one carry chain (the reduction folds 2^255 ≡ 19).
//!
//! # Bounds (the ref10 contract; every caller in `point.rs` keeps to it)
//! - [`Fe::mul`], [`Fe::square`] and [`Fe::carry`] return *reduced* limbs: |fᵢ| ≤ 1.01·2^25
//!   (even i) and ≤ 1.01·2^24 (odd i).
//! - Their inputs may be the sum or difference of up to three reduced elements (limbs within
//!   3.3·2^25 / 3.3·2^24): every product column then stays below 2^63.
//! - [`Fe::add`], [`Fe::sub`], [`Fe::neg`] do not carry; their results only feed the above.
//!
//! Debug builds (and the tests, which run with debug assertions: `make unit` also runs them
//! at release optimisation) assert these bounds at run time: the reduced output of the carry
//! chain, the inputs of [`Fe::square`] and [`Fe::square2`], and the results of [`Fe::add`],
//! [`Fe::sub`], [`Fe::neg`] (within the product-input bound). [`Fe::mul`] is generated, so
//! its inputs are asserted where they are made: every `Fe` is a constant, a `from_bytes`
//! value (limbs < 2^26 / 2^25), a carry-chain output or one of those three lazy results.
//! `scripts/limb_bounds.py` re-derives the bounds (no i64 column overflows, the outputs are
//! reduced) by interval analysis of this code and of `field/generated.rs`.
//!
//! The multiplication and squaring column bodies and the constants ([`D`], [`D2`],
//! [`SQRT_M1`], [`BASE_X`], [`BASE_Y`]) are in `field/generated.rs`, written by
//! `scripts/gen-fe25519.py` (rule: ×19 where the limb indices wrap past 10, ×2 where both are
//! odd) and checked against exact integers in the tests. Variable time throughout: only
//! public data is handled.

mod generated;

pub use generated::{BASE_X, BASE_Y, D, D2, SQRT_M1};

/// An element of GF(2^255 − 19), see the module docs for the limb bounds.
#[derive(Clone, Copy, Debug)]
pub struct Fe(pub [i32; 10]);

/// Bit offset and width of each limb.
const LIMBS: [(u32, u32); 10] = [
    (0, 26),
    (26, 25),
    (51, 26),
    (77, 25),
    (102, 26),
    (128, 25),
    (153, 26),
    (179, 25),
    (204, 26),
    (230, 25),
];

/// The bounds of the contract as multiples of 2^25 (even limbs) and 2^24 (odd limbs), in
/// hundredths: a reduced element, and an input of a product (up to three reduced terms).
#[cfg(debug_assertions)]
const REDUCED_PERCENT: i64 = 101;
#[cfg(debug_assertions)]
const PRODUCT_INPUT_PERCENT: i64 = 330;

/// Every limb within `percent`/100 of 2^25 (even limbs) or 2^24 (odd limbs).
#[cfg(debug_assertions)]
fn within(limbs: &[i32; 10], percent: i64) -> bool {
    limbs
        .iter()
        .enumerate()
        .all(|(i, &x)| 100 * i64::from(x).abs() <= percent << (25 - i % 2))
}

impl Fe {
    pub const ZERO: Fe = Fe([0; 10]);
    pub const ONE: Fe = Fe([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    /// The low 255 bits of `b` (little-endian; the top bit is ignored). Values in [p, 2^255)
    /// are accepted unreduced: callers that need a canonical encoding check it themselves.
    pub fn from_bytes(b: &[u8; 32]) -> Fe {
        let mut words = [0u64; 4];
        for (w, c) in words.iter_mut().zip(b.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            *w = u64::from_le_bytes(a);
        }
        if let Some(top) = words.get_mut(3) {
            *top &= (1 << 63) - 1;
        }
        Fe(LIMBS.map(|(off, width)| {
            let i = (off / 64) as usize;
            let s = off % 64;
            let lo = words.get(i).copied().unwrap_or(0) >> s;
            let hi = if s == 0 {
                0
            } else {
                words.get(i + 1).copied().unwrap_or(0) << (64 - s)
            };
            ((lo | hi) & ((1u64 << width) - 1)) as i32
        }))
    }

    /// The canonical little-endian encoding (value reduced into [0, p)).
    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_bytes(&self) -> [u8; 32] {
        let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9] = self.carry().0.map(i64::from);
        // q = ⌊V / p⌋ ∈ {−1, 0} for a reduced V (|V| < p; ref10 fe_tobytes)
        let mut q = (19 * h9 + (1 << 24)) >> 25;
        q = (h0 + q) >> 26;
        q = (h1 + q) >> 25;
        q = (h2 + q) >> 26;
        q = (h3 + q) >> 25;
        q = (h4 + q) >> 26;
        q = (h5 + q) >> 25;
        q = (h6 + q) >> 26;
        q = (h7 + q) >> 25;
        q = (h8 + q) >> 26;
        q = (h9 + q) >> 25;
        // V − q·p = V + 19q − 2^255·q: add 19q, carry, drop bit 255
        let mut h = [h0 + 19 * q, h1, h2, h3, h4, h5, h6, h7, h8, h9];
        let mut carry = 0i64;
        for (x, &(_, width)) in h.iter_mut().zip(LIMBS.iter()) {
            *x += carry;
            carry = *x >> width;
            *x -= carry << width;
        }
        let mut words = [0u64; 4];
        for (x, &(off, width)) in h.iter().zip(LIMBS.iter()) {
            let v = *x as u64;
            let i = (off / 64) as usize;
            let s = off % 64;
            if let Some(w) = words.get_mut(i) {
                *w |= v << s;
            }
            if s + width > 64 {
                if let Some(w) = words.get_mut(i + 1) {
                    *w |= v >> (64 - s);
                }
            }
        }
        let mut out = [0u8; 32];
        for (c, w) in out.chunks_exact_mut(8).zip(words.iter()) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    pub fn add(&self, rhs: &Fe) -> Fe {
        let mut r = self.0;
        for (x, y) in r.iter_mut().zip(rhs.0.iter()) {
            *x += *y;
        }
        #[cfg(debug_assertions)]
        debug_assert!(within(&r, PRODUCT_INPUT_PERCENT), "add: lazy result bound");
        Fe(r)
    }

    pub fn sub(&self, rhs: &Fe) -> Fe {
        let mut r = self.0;
        for (x, y) in r.iter_mut().zip(rhs.0.iter()) {
            *x -= *y;
        }
        #[cfg(debug_assertions)]
        debug_assert!(within(&r, PRODUCT_INPUT_PERCENT), "sub: lazy result bound");
        Fe(r)
    }

    pub fn neg(&self) -> Fe {
        #[cfg(debug_assertions)]
        debug_assert!(
            within(&self.0, PRODUCT_INPUT_PERCENT),
            "neg: lazy result bound"
        );
        Fe(self.0.map(|x| -x))
    }

    /// Reduced limbs (one carry chain), same value.
    pub fn carry(&self) -> Fe {
        Fe::carry_wide(self.0.map(i64::from))
    }

    /// The ref10 carry chain on 64-bit column sums; the result is reduced.
    #[inline(always)]
    fn carry_wide(h: [i64; 10]) -> Fe {
        let [mut h0, mut h1, mut h2, mut h3, mut h4, mut h5, mut h6, mut h7, mut h8, mut h9] = h;
        let mut c;
        c = (h0 + (1 << 25)) >> 26;
        h1 += c;
        h0 -= c << 26;
        c = (h4 + (1 << 25)) >> 26;
        h5 += c;
        h4 -= c << 26;
        c = (h1 + (1 << 24)) >> 25;
        h2 += c;
        h1 -= c << 25;
        c = (h5 + (1 << 24)) >> 25;
        h6 += c;
        h5 -= c << 25;
        c = (h2 + (1 << 25)) >> 26;
        h3 += c;
        h2 -= c << 26;
        c = (h6 + (1 << 25)) >> 26;
        h7 += c;
        h6 -= c << 26;
        c = (h3 + (1 << 24)) >> 25;
        h4 += c;
        h3 -= c << 25;
        c = (h7 + (1 << 24)) >> 25;
        h8 += c;
        h7 -= c << 25;
        c = (h4 + (1 << 25)) >> 26;
        h5 += c;
        h4 -= c << 26;
        c = (h8 + (1 << 25)) >> 26;
        h9 += c;
        h8 -= c << 26;
        c = (h9 + (1 << 24)) >> 25;
        h0 += c * 19;
        h9 -= c << 25;
        c = (h0 + (1 << 25)) >> 26;
        h1 += c;
        h0 -= c << 26;
        let r = [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9].map(|x| x as i32);
        #[cfg(debug_assertions)]
        debug_assert!(within(&r, REDUCED_PERCENT), "carry: reduced output bound");
        Fe(r)
    }

    /// self² (reduced).
    #[inline]
    pub fn square(&self) -> Fe {
        #[cfg(debug_assertions)]
        debug_assert!(
            within(&self.0, PRODUCT_INPUT_PERCENT),
            "square: input bound"
        );
        Fe::carry_wide(self.square_columns())
    }

    /// 2·self² (reduced). The input must be reduced (the doubled columns then stay < 2^63).
    #[inline]
    pub fn square2(&self) -> Fe {
        #[cfg(debug_assertions)]
        debug_assert!(within(&self.0, REDUCED_PERCENT), "square2: input bound");
        Fe::carry_wide(self.square_columns().map(|h| 2 * h))
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
        self.sub(rhs).is_zero()
    }

    /// √(u/v) when u/v is a square: `Some(x)` with x² = u/v (either root), else `None`.
    /// x = u·v³·(u·v⁷)^((p−5)/8), fixed by √−1 when x² = −u/v (RFC 8032 §5.1.3).
    pub fn sqrt_ratio(u: &Fe, v: &Fe) -> Option<Fe> {
        let v3 = v.square().mul(v);
        let v7 = v3.square().mul(v);
        let x = u.mul(&v3).mul(&u.mul(&v7).pow_p58());
        let vxx = v.mul(&x.square());
        if vxx.sub(u).is_zero() {
            Some(x)
        } else if vxx.add(u).is_zero() {
            Some(x.mul(&SQRT_M1))
        } else {
            None
        }
    }
}
