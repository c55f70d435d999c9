//! Arithmetic modulo the P-256 prime p = 2^256 − 2^224 + 2^192 + 2^96 − 1, for wasm32.
//!
//! Representation: nine signed 64-bit limbs of radix 2^29, V = Σ lᵢ·2^(29·i), in the
//! Montgomery domain (an element x is held as any V ≡ x·R mod p, R = 2^261). wasm32 has
//! native 64-bit add/shift/multiply but emulates 64×64→128, so 29-bit limbs let a full
//! product be 81 plain i64 multiply-adds with no carry handling; the Montgomery reduction
//! needs no multiplications because p ≡ −1 (mod 2^29) and p is sparse
//! (m·p = m·2^256 − m·2^224 + m·2^192 + m·2^96 − m: four shifted adds per limb).
//!
//! Additions, subtractions and small multiples are lazy (limb-wise, no carries); their
//! results stay usable as multiplication inputs within the bounds below, and [`Fe::weak`]
//! brings a value back into range. Variable time throughout: only public data is handled.
//!
//! # Bounds (the contract every caller in `point.rs` is checked against)
//!
//! Write w(a) = maxᵢ |aᵢ| / 2^29 and v(a) = |V(a)| / T with T = 2^257.5 (≈ 2.83·p).
//! - [`Fe::mul`]/[`Fe::sqr`] need w(a)·w(b) ≤ 3.5 and v(a)·v(b) ≤ 3.3. Then every column
//!   sum is below 9·3.5·2^58 + 2^55.1 < 2^63 (no i64 overflow), and the result
//!   V = (ab + m·p)/R + p lies in [0, T) with limbs 0..7 in [0, 2^29) ("class M").
//! - [`Fe::weak`] needs |V| ≤ 8T and returns limbs in (−0.09, 1.09)·2^29, the top limb in
//!   [0, 2^24), and V ∈ (−2^229, 2^256 + 2^229) ("class W").
//! - [`Fe::is_zero`] needs |V| < 3p.
//!
//! Debug builds (and the tests, which run with debug assertions: `make unit` also runs them
//! at release optimisation) assert at run time the preconditions of the multiplication,
//! [`Fe::weak`] and [`Fe::is_zero`], and the classes of their results (M, W).
//! `scripts/limb_bounds.py` re-derives these bounds by interval analysis of this code (no i64
//! overflow in any column or reduction step, outputs in class M / W) and checks the bounds
//! every product and reduction in `point.rs` relies on.

use super::field32::{limbs_from_be, limbs_to_be, lt};

const M29: i64 = (1 << 29) - 1;

/// p in 29-bit limbs.
pub const P29: [i64; 9] = [
    0x1FFFFFFF, 0x1FFFFFFF, 0x1FFFFFFF, 0x1FF, 0x0, 0x0, 0x40000, 0x1FE00000, 0xFFFFFF,
];
/// R mod p (1 in the Montgomery domain), R = 2^261.
const ONE_M: [i64; 9] = [
    0x20, 0x0, 0x0, 0x1FFFC000, 0x1FFFFFFF, 0x1FFFFFFF, 0x1F7FFFFF, 0x3FFFFFF, 0x0,
];
/// R² mod p (converts into the Montgomery domain).
const R2: [i64; 9] = [
    0xC00, 0x0, 0x1FFF0000, 0x1FDFFFFF, 0x1FBFFFFF, 0x1FFFFFFF, 0x1FFFFFFF, 0x1FFFFFFE, 0x13,
];
/// b·R mod p (curve coefficient b in the Montgomery domain).
pub const B_M: [i64; 9] = [
    0x1897BBFB, 0x1CDF6229, 0x18486C4, 0x1732821, 0x1DAD59E0, 0xABF7212, 0x1A06D110, 0x17721D20,
    0x8600C3,
];
/// 3·R mod p.
pub const THREE_M: [i64; 9] = [
    0x60, 0x0, 0x0, 0x1FFF4000, 0x1FFFFFFF, 0x1FFFFFFF, 0x1E7FFFFF, 0xBFFFFFF, 0x0,
];
/// Normalized forms of the multiples of p that a value with |V| < 3p can equal when ≡ 0.
const ZERO_FORMS: [[i64; 9]; 5] = [
    [0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0],
    [
        0x1FFFFFFF, 0x1FFFFFFF, 0x1FFFFFFF, 0x1FF, 0x0, 0x0, 0x40000, 0x1FE00000, 0xFFFFFF,
    ],
    [
        0x1FFFFFFE, 0x1FFFFFFF, 0x1FFFFFFF, 0x3FF, 0x0, 0x0, 0x80000, 0x1FC00000, 0x1FFFFFF,
    ],
    [
        0x1, 0x0, 0x0, 0x1FFFFE00, 0x1FFFFFFF, 0x1FFFFFFF, 0x1FFBFFFF, 0x1FFFFF, -0x1000000,
    ],
    [
        0x2, 0x0, 0x0, 0x1FFFFC00, 0x1FFFFFFF, 0x1FFFFFFF, 0x1FF7FFFF, 0x3FFFFF, -0x2000000,
    ],
];

/// A field element (Montgomery domain, possibly unreduced: see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Fe(pub [i64; 9]);

/// Saturated little-endian u32 limbs (< 2^256) → 29-bit limbs.
fn from_u32(l: &[u32; 8]) -> [i64; 9] {
    let mut w = [0u64; 4];
    for (o, c) in w.iter_mut().zip(l.chunks_exact(2)) {
        if let &[lo, hi] = c {
            *o = u64::from(lo) | (u64::from(hi) << 32);
        }
    }
    let mut out = [0i64; 9];
    for (i, o) in out.iter_mut().enumerate() {
        let bit = 29 * i;
        let lo = w.get(bit / 64).copied().unwrap_or(0) >> (bit % 64);
        let hi = match bit % 64 {
            0 => 0,
            off => w.get(bit / 64 + 1).copied().unwrap_or(0) << (64 - off),
        };
        *o = ((lo | hi) & (M29 as u64)) as i64;
    }
    out
}

/// Normalized, non-negative 29-bit limbs of a value < 2^256 → saturated u32 limbs.
fn to_u32(l: &[i64; 9]) -> [u32; 8] {
    let mut w = [0u64; 5];
    for (i, &x) in l.iter().enumerate() {
        let bit = 29 * i;
        let x = x as u64;
        if let Some(o) = w.get_mut(bit / 64) {
            *o |= x << (bit % 64);
        }
        if bit % 64 > 64 - 29 {
            if let Some(o) = w.get_mut(bit / 64 + 1) {
                *o |= x >> (64 - bit % 64);
            }
        }
    }
    let mut out = [0u32; 8];
    for (c, x) in out.chunks_exact_mut(2).zip(w) {
        if let [lo, hi] = c {
            *lo = x as u32;
            *hi = (x >> 32) as u32;
        }
    }
    out
}

/// Carry propagation: limbs 0..7 into [0, 2^29), the top limb keeps the rest (signed).
#[inline(always)]
fn carry(a: &[i64; 9]) -> [i64; 9] {
    let mut out = *a;
    let mut c: i64 = 0;
    for (i, o) in out.iter_mut().enumerate() {
        let x = *o + c;
        if i == 8 {
            *o = x;
        } else {
            *o = x & M29;
            c = x >> 29;
        }
    }
    out
}

/// Lexicographic a ≥ b for normalized non-negative limbs.
fn geq(a: &[i64; 9], b: &[i64; 9]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

#[cfg(debug_assertions)]
fn approx(a: &[i64; 9]) -> f64 {
    a.iter()
        .enumerate()
        .map(|(i, &x)| x as f64 * 2f64.powi(29 * i as i32))
        .sum()
}

#[cfg(debug_assertions)]
fn check_mul(a: &[i64; 9], b: &[i64; 9]) {
    let w = |x: &[i64; 9]| x.iter().map(|l| l.unsigned_abs()).max().unwrap_or(0) as f64;
    debug_assert!(w(a) * w(b) <= 3.5 * 2f64.powi(58), "mul limb bound");
    let t2 = 2f64.powi(515);
    debug_assert!(
        approx(a).abs() * approx(b).abs() <= 3.3 * t2,
        "mul value bound"
    );
}

/// Class M (a product): limbs 0..7 in [0, 2^29), V ∈ [0, T). (V < T is checked in floating
/// point, with a relative slack of 2^-40 for its rounding.)
#[cfg(debug_assertions)]
fn check_class_m(r: &[i64; 9]) {
    debug_assert!(
        r.iter().take(8).all(|&x| (0..1 << 29).contains(&x)) && r.get(8) >= Some(&0),
        "mul: class M limbs"
    );
    debug_assert!(
        approx(r) < 2f64.powf(257.5) * (1.0 + 2f64.powi(-40)),
        "mul: class M value"
    );
}

/// Class W (a `weak` result): limbs 0..7 in (−0.09, 1.09)·2^29, the top limb in [0, 2^24),
/// V ∈ (−2^229, 2^256 + 2^229).
#[cfg(debug_assertions)]
fn check_class_w(r: &[i64; 9]) {
    debug_assert!(
        r.iter()
            .take(8)
            .all(|&x| -9 << 29 < 100 * x && 100 * x < 109 << 29)
            && r.get(8).is_some_and(|t| (0..1 << 24).contains(t)),
        "weak: class W limbs"
    );
    let v = approx(r);
    debug_assert!(
        -(2f64.powi(229)) < v && v < 2f64.powi(256) + 2f64.powi(229),
        "weak: class W value"
    );
}

impl Fe {
    pub const ZERO: Fe = Fe([0; 9]);
    pub const ONE: Fe = Fe(ONE_M);

    /// Big-endian bytes (canonical, < p) into the Montgomery domain; `None` if ≥ p.
    pub fn from_be_bytes(b: &[u8; 32]) -> Option<Fe> {
        Fe::from_u32_limbs(&limbs_from_be(b))
    }

    /// Saturated little-endian u32 limbs of an integer < p; `None` if ≥ p.
    pub fn from_u32_limbs(l: &[u32; 8]) -> Option<Fe> {
        if !lt(l, &super::field32::P) {
            return None;
        }
        Some(Fe(from_u32(l)).mul(&Fe(R2)))
    }

    /// The canonical value in [0, p), as saturated u32 limbs.
    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_u32_limbs(&self) -> [u32; 8] {
        // Leave the Montgomery domain: V·1/R, a class-M value in [0, T) with T < 3p.
        let mut v = Fe(self.0).mul(&Fe([1, 0, 0, 0, 0, 0, 0, 0, 0])).0;
        while geq(&v, &P29) {
            let mut d = [0i64; 9];
            for ((o, x), y) in d.iter_mut().zip(v).zip(P29) {
                *o = x - y;
            }
            v = carry(&d);
        }
        to_u32(&v)
    }

    #[allow(clippy::wrong_self_convention)] // by reference: a large Copy value
    pub fn to_be_bytes(&self) -> [u8; 32] {
        limbs_to_be(&self.to_u32_limbs())
    }

    /// Whether V ≡ 0 (mod p). Needs |V| < 3p: then V ∈ {0, ±p, ±2p}, each with one
    /// normalized form.
    pub fn is_zero(&self) -> bool {
        #[cfg(debug_assertions)]
        debug_assert!(
            approx(&self.0).abs() < 2.95 * 2f64.powi(256),
            "is_zero bound"
        );
        let n = carry(&self.0);
        ZERO_FORMS.contains(&n)
    }

    /// Carry propagation (same value): limbs 0..7 in [0, 2^29), the top limb signed.
    #[inline(always)]
    pub fn carried(&self) -> Fe {
        Fe(carry(&self.0))
    }

    /// Lazy a + b.
    #[inline(always)]
    pub fn add(&self, b: &Fe) -> Fe {
        let mut r = self.0;
        for (o, y) in r.iter_mut().zip(b.0) {
            *o += y;
        }
        Fe(r)
    }

    /// Lazy a − b.
    #[inline(always)]
    pub fn sub(&self, b: &Fe) -> Fe {
        let mut r = self.0;
        for (o, y) in r.iter_mut().zip(b.0) {
            *o -= y;
        }
        Fe(r)
    }

    /// Lazy 2·a.
    #[inline(always)]
    pub fn dbl(&self) -> Fe {
        self.add(self)
    }

    /// Lazy k·a for a small k.
    #[inline(always)]
    pub fn mul_small(&self, k: i64) -> Fe {
        let mut r = self.0;
        for o in r.iter_mut() {
            *o *= k;
        }
        Fe(r)
    }

    /// Lazy −a.
    #[inline(always)]
    pub fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    /// Brings a value with |V| ≤ 8T into class W: carry, then fold the part above 2^256
    /// with 2^256 ≡ 2^224 − 2^192 − 2^96 + 1 (mod p).
    #[inline(always)]
    pub fn weak(&self) -> Fe {
        #[cfg(debug_assertions)]
        debug_assert!(
            approx(&self.0).abs() <= 8.0 * 2f64.powf(257.5),
            "weak bound"
        );
        let [l0, l1, l2, l3, l4, l5, l6, l7, l8] = carry(&self.0);
        // l8 holds bits ≥ 232 of V; h = ⌊V / 2^256⌋, |h| ≤ 2^4.5.
        let h = l8 >> 24;
        let r = [
            l0 + h,
            l1,
            l2,
            l3 - (h << 9),
            l4,
            l5,
            l6 - (h << 18),
            l7 + (h << 21),
            l8 & ((1 << 24) - 1),
        ];
        #[cfg(debug_assertions)]
        check_class_w(&r);
        Fe(r)
    }

    /// Montgomery product a·b/R (see the bounds in the module docs). Kept out of line on
    /// purpose: inlined into the point formulas it makes functions too large for V8's
    /// register allocator (measured: about 1.5× slower in V8, and 50 KiB more wasm).
    #[inline(never)]
    pub fn mul(&self, b: &Fe) -> Fe {
        #[cfg(debug_assertions)]
        check_mul(&self.0, &b.0);
        let r = mont_mul(&self.0, &b.0);
        #[cfg(debug_assertions)]
        check_class_m(&r);
        Fe(r)
    }

    /// Montgomery square a²/R (out of line, as [`Fe::mul`]).
    #[inline(never)]
    pub fn sqr(&self) -> Fe {
        #[cfg(debug_assertions)]
        check_mul(&self.0, &self.0);
        let r = mont_sqr(&self.0);
        #[cfg(debug_assertions)]
        check_class_m(&r);
        Fe(r)
    }

    /// Repeated squaring.
    fn sqn(&self, n: u32) -> Fe {
        let mut r = *self;
        for _ in 0..n {
            r = r.sqr();
        }
        r
    }

    /// a^(p−2) = a⁻¹ (0 ↦ 0). Addition chain: 255 squarings and 13 multiplications.
    pub fn invert(&self) -> Fe {
        let x1 = self.weak();
        let x2 = x1.sqr().mul(&x1); // 2^2 − 1
        let x3 = x2.sqr().mul(&x1); // 2^3 − 1
        let x6 = x3.sqn(3).mul(&x3);
        let x12 = x6.sqn(6).mul(&x6);
        let x15 = x12.sqn(3).mul(&x3);
        let x30 = x15.sqn(15).mul(&x15);
        let x32 = x30.sqn(2).mul(&x2);
        // p − 2 = ffffffff 00000001 00000000 00000000 00000000 ffffffff ffffffff fffffffd
        let t = x32.sqn(32).mul(&x1); // ffffffff 00000001
        let t = t.sqn(128).mul(&x32); // … 00000000 ×3, ffffffff
        let t = t.sqn(32).mul(&x32); // … ffffffff
        let t = t.sqn(30).mul(&x30); // … 30 ones
        t.sqn(2).mul(&x1) // … fffffffd
    }

    /// Square root for p ≡ 3 (mod 4): a^((p+1)/4), if it exists. (Tests only.)
    #[cfg(test)]
    pub fn sqrt(&self) -> Option<Fe> {
        // (p+1)/4 = ((2^32 − 1)·2^32 + 1)·2^96 + 1)·2^94
        let x1 = self.weak();
        let x2 = x1.sqr().mul(&x1);
        let x4 = x2.sqn(2).mul(&x2);
        let x8 = x4.sqn(4).mul(&x4);
        let x16 = x8.sqn(8).mul(&x8);
        let x32 = x16.sqn(16).mul(&x16);
        let t = x32.sqn(32).mul(&x1);
        let t = t.sqn(96).mul(&x1);
        let r = t.sqn(94);
        if r.sqr().sub(&x1).weak().is_zero() {
            Some(r)
        } else {
            None
        }
    }
}

/// Montgomery reduction of a 17-column product: nine rounds, each clearing one limb by
/// adding m·p (m = the limb mod 2^29, as −p⁻¹ ≡ 1 mod 2^29) and carrying it out; then
/// (columns 9..16 + p), carried. Straight-line code (generated).
#[inline(always)]
fn mont_reduce(t: [i64; 17]) -> [i64; 9] {
    let [t0, mut t1, mut t2, mut t3, mut t4, mut t5, mut t6, mut t7, mut t8, mut t9, mut t10, mut t11, mut t12, mut t13, mut t14, mut t15, mut t16] =
        t;
    // round 0
    let m = t0 & M29;
    t1 += t0 >> 29;
    t3 += m << 9;
    t6 += m << 18;
    t7 -= m << 21;
    t8 += m << 24;
    // round 1
    let m = t1 & M29;
    t2 += t1 >> 29;
    t4 += m << 9;
    t7 += m << 18;
    t8 -= m << 21;
    t9 += m << 24;
    // round 2
    let m = t2 & M29;
    t3 += t2 >> 29;
    t5 += m << 9;
    t8 += m << 18;
    t9 -= m << 21;
    t10 += m << 24;
    // round 3
    let m = t3 & M29;
    t4 += t3 >> 29;
    t6 += m << 9;
    t9 += m << 18;
    t10 -= m << 21;
    t11 += m << 24;
    // round 4
    let m = t4 & M29;
    t5 += t4 >> 29;
    t7 += m << 9;
    t10 += m << 18;
    t11 -= m << 21;
    t12 += m << 24;
    // round 5
    let m = t5 & M29;
    t6 += t5 >> 29;
    t8 += m << 9;
    t11 += m << 18;
    t12 -= m << 21;
    t13 += m << 24;
    // round 6
    let m = t6 & M29;
    t7 += t6 >> 29;
    t9 += m << 9;
    t12 += m << 18;
    t13 -= m << 21;
    t14 += m << 24;
    // round 7
    let m = t7 & M29;
    t8 += t7 >> 29;
    t10 += m << 9;
    t13 += m << 18;
    t14 -= m << 21;
    t15 += m << 24;
    // round 8
    let m = t8 & M29;
    t9 += t8 >> 29;
    t11 += m << 9;
    t14 += m << 18;
    t15 -= m << 21;
    t16 += m << 24;
    carry(&[
        t9 + P29[0],
        t10 + P29[1],
        t11 + P29[2],
        t12 + P29[3],
        t13 + P29[4],
        t14 + P29[5],
        t15 + P29[6],
        t16 + P29[7],
        P29[8],
    ])
}

/// Full product, 81 multiply-adds in 17 columns (straight-line, generated).
#[inline(always)]
fn mont_mul(a: &[i64; 9], b: &[i64; 9]) -> [i64; 9] {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8] = *a;
    let [b0, b1, b2, b3, b4, b5, b6, b7, b8] = *b;
    let t0 = a0 * b0;
    let t1 = a0 * b1 + a1 * b0;
    let t2 = a0 * b2 + a1 * b1 + a2 * b0;
    let t3 = a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0;
    let t4 = a0 * b4 + a1 * b3 + a2 * b2 + a3 * b1 + a4 * b0;
    let t5 = a0 * b5 + a1 * b4 + a2 * b3 + a3 * b2 + a4 * b1 + a5 * b0;
    let t6 = a0 * b6 + a1 * b5 + a2 * b4 + a3 * b3 + a4 * b2 + a5 * b1 + a6 * b0;
    let t7 = a0 * b7 + a1 * b6 + a2 * b5 + a3 * b4 + a4 * b3 + a5 * b2 + a6 * b1 + a7 * b0;
    let t8 =
        a0 * b8 + a1 * b7 + a2 * b6 + a3 * b5 + a4 * b4 + a5 * b3 + a6 * b2 + a7 * b1 + a8 * b0;
    let t9 = a1 * b8 + a2 * b7 + a3 * b6 + a4 * b5 + a5 * b4 + a6 * b3 + a7 * b2 + a8 * b1;
    let t10 = a2 * b8 + a3 * b7 + a4 * b6 + a5 * b5 + a6 * b4 + a7 * b3 + a8 * b2;
    let t11 = a3 * b8 + a4 * b7 + a5 * b6 + a6 * b5 + a7 * b4 + a8 * b3;
    let t12 = a4 * b8 + a5 * b7 + a6 * b6 + a7 * b5 + a8 * b4;
    let t13 = a5 * b8 + a6 * b7 + a7 * b6 + a8 * b5;
    let t14 = a6 * b8 + a7 * b7 + a8 * b6;
    let t15 = a7 * b8 + a8 * b7;
    let t16 = a8 * b8;
    mont_reduce([
        t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16,
    ])
}

/// Full square: 45 products, cross terms against pre-doubled limbs (generated).
#[inline(always)]
fn mont_sqr(a: &[i64; 9]) -> [i64; 9] {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8] = *a;
    let [d0, d1, d2, d3, d4, d5, d6, d7] = [
        a0 * 2,
        a1 * 2,
        a2 * 2,
        a3 * 2,
        a4 * 2,
        a5 * 2,
        a6 * 2,
        a7 * 2,
    ];
    let t0 = a0 * a0;
    let t1 = a1 * d0;
    let t2 = a2 * d0 + a1 * a1;
    let t3 = a3 * d0 + a2 * d1;
    let t4 = a4 * d0 + a3 * d1 + a2 * a2;
    let t5 = a5 * d0 + a4 * d1 + a3 * d2;
    let t6 = a6 * d0 + a5 * d1 + a4 * d2 + a3 * a3;
    let t7 = a7 * d0 + a6 * d1 + a5 * d2 + a4 * d3;
    let t8 = a8 * d0 + a7 * d1 + a6 * d2 + a5 * d3 + a4 * a4;
    let t9 = a8 * d1 + a7 * d2 + a6 * d3 + a5 * d4;
    let t10 = a8 * d2 + a7 * d3 + a6 * d4 + a5 * a5;
    let t11 = a8 * d3 + a7 * d4 + a6 * d5;
    let t12 = a8 * d4 + a7 * d5 + a6 * a6;
    let t13 = a8 * d5 + a7 * d6;
    let t14 = a8 * d6 + a7 * a7;
    let t15 = a8 * d7;
    let t16 = a8 * a8;
    mont_reduce([
        t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15, t16,
    ])
}
