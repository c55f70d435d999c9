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
//! The multiplication and squaring bodies are generated (coefficient rule: ×19 where the
//! limb indices wrap past 10, ×2 where both are odd), and checked against exact integers in
//! the tests. Variable time throughout: only public data is handled.

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

/// d = −121665/121666, the curve constant.
pub const D: Fe = Fe([
    0x35978a3, 0xd37284, 0x3156ebd, 0x6a0a0e, 0x1c029, 0x179e898, 0x3a03cbb, 0x1ce7198, 0x2e2b6ff,
    0x1480db3,
]);
/// 2·d.
pub const D2: Fe = Fe([
    0x2b2f159, 0x1a6e509, 0x22add7a, 0xd4141d, 0x38052, 0xf3d130, 0x3407977, 0x19ce331, 0x1c56dff,
    0x901b67,
]);
/// √−1 = 2^((p−1)/4).
pub const SQRT_M1: Fe = Fe([
    0x20ea0b0, 0x186c9d2, 0x8f189d, 0x35697f, 0xbd0c60, 0x1fbd7a7, 0x2804c9e, 0x1e16569, 0x4fc1d,
    0xae0c92,
]);
/// x of the base point B (even).
pub const BASE_X: Fe = Fe([
    0x325d51a, 0x18b5823, 0xf6592a, 0x104a92d, 0x1a4b31d, 0x1d6dc5c, 0x27118fe, 0x7fd814,
    0x13cd6e5, 0x85a4db,
]);
/// y of the base point B = 4/5.
pub const BASE_Y: Fe = Fe([
    0x2666658, 0x1999999, 0xcccccc, 0x1333333, 0x1999999, 0x666666, 0x3333333, 0xcccccc, 0x2666666,
    0x1999999,
]);

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
    pub fn to_bytes(&self) -> [u8; 32] {
        let [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9] = self.carry().0.map(i64::from);
        // q = ⌊V / p⌋ ∈ {0, 1} for a reduced V (ref10 fe_tobytes)
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
        Fe(r)
    }

    pub fn sub(&self, rhs: &Fe) -> Fe {
        let mut r = self.0;
        for (x, y) in r.iter_mut().zip(rhs.0.iter()) {
            *x -= *y;
        }
        Fe(r)
    }

    pub fn neg(&self) -> Fe {
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
        Fe([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9].map(|x| x as i32))
    }

    /// self · rhs (reduced).
    #[inline]
    pub fn mul(&self, rhs: &Fe) -> Fe {
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);
        let [g0, g1, g2, g3, g4, g5, g6, g7, g8, g9] = rhs.0.map(i64::from);
        let g1_19 = 19 * g1;
        let g2_19 = 19 * g2;
        let g3_19 = 19 * g3;
        let g4_19 = 19 * g4;
        let g5_19 = 19 * g5;
        let g6_19 = 19 * g6;
        let g7_19 = 19 * g7;
        let g8_19 = 19 * g8;
        let g9_19 = 19 * g9;
        let f1_2 = 2 * f1;
        let f3_2 = 2 * f3;
        let f5_2 = 2 * f5;
        let f7_2 = 2 * f7;
        let f9_2 = 2 * f9;
        let h0 = f0 * g0
            + f1_2 * g9_19
            + f2 * g8_19
            + f3_2 * g7_19
            + f4 * g6_19
            + f5_2 * g5_19
            + f6 * g4_19
            + f7_2 * g3_19
            + f8 * g2_19
            + f9_2 * g1_19;
        let h1 = f0 * g1
            + f1 * g0
            + f2 * g9_19
            + f3 * g8_19
            + f4 * g7_19
            + f5 * g6_19
            + f6 * g5_19
            + f7 * g4_19
            + f8 * g3_19
            + f9 * g2_19;
        let h2 = f0 * g2
            + f1_2 * g1
            + f2 * g0
            + f3_2 * g9_19
            + f4 * g8_19
            + f5_2 * g7_19
            + f6 * g6_19
            + f7_2 * g5_19
            + f8 * g4_19
            + f9_2 * g3_19;
        let h3 = f0 * g3
            + f1 * g2
            + f2 * g1
            + f3 * g0
            + f4 * g9_19
            + f5 * g8_19
            + f6 * g7_19
            + f7 * g6_19
            + f8 * g5_19
            + f9 * g4_19;
        let h4 = f0 * g4
            + f1_2 * g3
            + f2 * g2
            + f3_2 * g1
            + f4 * g0
            + f5_2 * g9_19
            + f6 * g8_19
            + f7_2 * g7_19
            + f8 * g6_19
            + f9_2 * g5_19;
        let h5 = f0 * g5
            + f1 * g4
            + f2 * g3
            + f3 * g2
            + f4 * g1
            + f5 * g0
            + f6 * g9_19
            + f7 * g8_19
            + f8 * g7_19
            + f9 * g6_19;
        let h6 = f0 * g6
            + f1_2 * g5
            + f2 * g4
            + f3_2 * g3
            + f4 * g2
            + f5_2 * g1
            + f6 * g0
            + f7_2 * g9_19
            + f8 * g8_19
            + f9_2 * g7_19;
        let h7 = f0 * g7
            + f1 * g6
            + f2 * g5
            + f3 * g4
            + f4 * g3
            + f5 * g2
            + f6 * g1
            + f7 * g0
            + f8 * g9_19
            + f9 * g8_19;
        let h8 = f0 * g8
            + f1_2 * g7
            + f2 * g6
            + f3_2 * g5
            + f4 * g4
            + f5_2 * g3
            + f6 * g2
            + f7_2 * g1
            + f8 * g0
            + f9_2 * g9_19;
        let h9 = f0 * g9
            + f1 * g8
            + f2 * g7
            + f3 * g6
            + f4 * g5
            + f5 * g4
            + f6 * g3
            + f7 * g2
            + f8 * g1
            + f9 * g0;
        Fe::carry_wide([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9])
    }

    /// The column sums of self² before the carry chain.
    #[inline(always)]
    fn square_columns(&self) -> [i64; 10] {
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);
        let h0 = f0 * f0
            + f1 * (f9 * 76)
            + f2 * (f8 * 38)
            + f3 * (f7 * 76)
            + f4 * (f6 * 38)
            + f5 * (f5 * 38);
        let h1 = f0 * (f1 * 2) + f2 * (f9 * 38) + f3 * (f8 * 38) + f4 * (f7 * 38) + f5 * (f6 * 38);
        let h2 = f0 * (f2 * 2)
            + f1 * (f1 * 2)
            + f3 * (f9 * 76)
            + f4 * (f8 * 38)
            + f5 * (f7 * 76)
            + f6 * (f6 * 19);
        let h3 = f0 * (f3 * 2) + f1 * (f2 * 2) + f4 * (f9 * 38) + f5 * (f8 * 38) + f6 * (f7 * 38);
        let h4 = f0 * (f4 * 2)
            + f1 * (f3 * 4)
            + f2 * f2
            + f5 * (f9 * 76)
            + f6 * (f8 * 38)
            + f7 * (f7 * 38);
        let h5 = f0 * (f5 * 2) + f1 * (f4 * 2) + f2 * (f3 * 2) + f6 * (f9 * 38) + f7 * (f8 * 38);
        let h6 = f0 * (f6 * 2)
            + f1 * (f5 * 4)
            + f2 * (f4 * 2)
            + f3 * (f3 * 2)
            + f7 * (f9 * 76)
            + f8 * (f8 * 19);
        let h7 = f0 * (f7 * 2) + f1 * (f6 * 2) + f2 * (f5 * 2) + f3 * (f4 * 2) + f8 * (f9 * 38);
        let h8 = f0 * (f8 * 2)
            + f1 * (f7 * 4)
            + f2 * (f6 * 2)
            + f3 * (f5 * 4)
            + f4 * f4
            + f9 * (f9 * 38);
        let h9 = f0 * (f9 * 2) + f1 * (f8 * 2) + f2 * (f7 * 2) + f3 * (f6 * 2) + f4 * (f5 * 2);
        [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9]
    }

    /// self² (reduced).
    #[inline]
    pub fn square(&self) -> Fe {
        Fe::carry_wide(self.square_columns())
    }

    /// 2·self² (reduced). The input must be reduced (the doubled columns then stay < 2^63).
    #[inline]
    pub fn square2(&self) -> Fe {
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
