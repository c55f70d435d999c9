//! Arithmetic modulo the P-256 group order n (only what ECDSA verification needs).
//!
//! Multiplication is Montgomery (R = 2^256) over eight u32 limbs; inversion is a
//! variable-time binary extended GCD over four u64 limbs (wasm32 has native 64-bit add,
//! subtract and shift; only 64×64→128 products are emulated, and the GCD needs none).

use super::field32::{limbs_from_be, lt};

/// n, little-endian u32 limbs.
pub const N: [u32; 8] = [
    0xFC63_2551,
    0xF3B9_CAC2,
    0xA717_9E84,
    0xBCE6_FAAD,
    0xFFFF_FFFF,
    0xFFFF_FFFF,
    0,
    0xFFFF_FFFF,
];

/// −n⁻¹ mod 2^32.
const N0_INV: u32 = 0xEE00_BC4F;

/// R² mod n (R = 2^256), for converting into the Montgomery domain.
const R2: [u32; 8] = [
    0xBE79_EEA2,
    0x8324_4C95,
    0x49BD_6FA6,
    0x4699_799C,
    0x2B6B_EC59,
    0x2845_B239,
    0xF3D9_5620,
    0x66E1_2D94,
];

const N64: [u64; 4] = [
    0xF3B9_CAC2_FC63_2551,
    0xBCE6_FAAD_A717_9E84,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_0000_0000,
];

/// An integer mod n, fully reduced (< n). Little-endian u32 limbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sc(pub [u32; 8]);

/// a − n mod 2^256.
fn sub_n(a: &mut [u32; 8]) {
    let mut borrow: i64 = 0;
    for (x, m) in a.iter_mut().zip(N) {
        let t = i64::from(*x) - i64::from(m) + borrow;
        *x = t as u32;
        borrow = t >> 32;
    }
}

impl Sc {
    /// Big-endian bytes as an integer in [1, n − 1]; `None` for 0 or ≥ n.
    pub fn from_be_bytes_nonzero(b: &[u8; 32]) -> Option<Sc> {
        let l = limbs_from_be(b);
        if l.iter().all(|&x| x == 0) || !lt(&l, &N) {
            return None;
        }
        Some(Sc(l))
    }

    /// Big-endian bytes reduced mod n (a 256-bit value is < 2n: at most one subtraction).
    pub fn reduce_be_bytes(b: &[u8; 32]) -> Sc {
        let mut l = limbs_from_be(b);
        if !lt(&l, &N) {
            sub_n(&mut l);
        }
        Sc(l)
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&x| x == 0)
    }

    /// a·b mod n.
    pub fn mul(&self, b: &Sc) -> Sc {
        Sc(mont_mul(&mont_mul(&self.0, &b.0), &R2))
    }

    /// a⁻¹ mod n (variable time; 0 ↦ 0).
    pub fn invert(&self) -> Sc {
        if self.is_zero() {
            return Sc([0; 8]);
        }
        Sc(to_u32(&inv_mod_n(&to_u64(&self.0))))
    }
}

/// Montgomery product a·b·2^−256 mod n, for a, b < n (CIOS, 32-bit words).
// Cannot panic: every index is a loop counter over a constant range (j ∈ 0..8, j − 1 ≥ 0
// for j ∈ 1..8) or a constant, into fixed-size arrays of length 8 and 10.
#[allow(clippy::indexing_slicing)]
fn mont_mul(a: &[u32; 8], b: &[u32; 8]) -> [u32; 8] {
    let n = N.map(u64::from);
    let b = b.map(u64::from);
    let mut t = [0u64; 10];
    for &ai in a {
        let ai = u64::from(ai);
        let mut c: u64 = 0;
        for j in 0..8 {
            let x = t[j] + ai * b[j] + c;
            t[j] = x & 0xFFFF_FFFF;
            c = x >> 32;
        }
        let x = t[8] + c;
        t[8] = x & 0xFFFF_FFFF;
        t[9] = x >> 32;
        let m = u64::from((t[0] as u32).wrapping_mul(N0_INV));
        let x = t[0] + m * n[0];
        let mut c = x >> 32;
        for j in 1..8 {
            let x = t[j] + m * n[j] + c;
            t[j - 1] = x & 0xFFFF_FFFF;
            c = x >> 32;
        }
        let x = t[8] + c;
        t[7] = x & 0xFFFF_FFFF;
        t[8] = t[9] + (x >> 32);
    }
    let mut r = [0u32; 8];
    for (o, x) in r.iter_mut().zip(t) {
        *o = x as u32;
    }
    if t[8] != 0 || !lt(&r, &N) {
        sub_n(&mut r);
    }
    r
}

fn to_u64(a: &[u32; 8]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (o, c) in out.iter_mut().zip(a.chunks_exact(2)) {
        if let &[lo, hi] = c {
            *o = u64::from(lo) | (u64::from(hi) << 32);
        }
    }
    out
}

fn to_u32(a: &[u64; 4]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (c, x) in out.chunks_exact_mut(2).zip(a) {
        if let [lo, hi] = c {
            *lo = *x as u32;
            *hi = (*x >> 32) as u32;
        }
    }
    out
}

fn is_one(a: &[u64; 4]) -> bool {
    a == &[1, 0, 0, 0]
}

fn geq(a: &[u64; 4], b: &[u64; 4]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// a −= b (caller guarantees a ≥ b).
fn sub_in_place(a: &mut [u64; 4], b: &[u64; 4]) {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(*y);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        *x = d;
        borrow = b1 | b2;
    }
}

/// a = (a − b) mod n, for a, b < n.
fn sub_mod_n(a: &mut [u64; 4], b: &[u64; 4]) {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(*y);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        *x = d;
        borrow = b1 | b2;
    }
    if borrow {
        let mut carry = false;
        for (x, m) in a.iter_mut().zip(N64) {
            let (s, c1) = x.overflowing_add(m);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *x = s;
            carry = c1 | c2;
        }
    }
}

/// a >>= k for 0 < k < 64 (a is nonzero and even when called).
fn shr_in_place(a: &mut [u64; 4], k: u32) {
    let [a0, a1, a2, a3] = *a;
    *a = [
        (a0 >> k) | (a1 << (64 - k)),
        (a1 >> k) | (a2 << (64 - k)),
        (a2 >> k) | (a3 << (64 - k)),
        a3 >> k,
    ];
}

/// x = x / 2 mod n, for x < n.
fn half_mod_n(x: &mut [u64; 4]) {
    let [mut x0, mut x1, mut x2, mut x3] = *x;
    let mut top = 0u64;
    if x0 & 1 == 1 {
        let [n0, n1, n2, n3] = N64;
        let (s, c) = x0.overflowing_add(n0);
        x0 = s;
        let (s, c1) = x1.overflowing_add(n1);
        let (s, c2) = s.overflowing_add(u64::from(c));
        x1 = s;
        let (s, c3) = x2.overflowing_add(n2);
        let (s, c4) = s.overflowing_add(u64::from(c1 | c2));
        x2 = s;
        let (s, c5) = x3.overflowing_add(n3);
        let (s, c6) = s.overflowing_add(u64::from(c3 | c4));
        x3 = s;
        top = u64::from(c5 | c6);
    }
    *x = [
        (x0 >> 1) | (x1 << 63),
        (x1 >> 1) | (x2 << 63),
        (x2 >> 1) | (x3 << 63),
        (x3 >> 1) | (top << 63),
    ];
}

/// Removes the factors of two from `u` (nonzero), halving `x` mod n as many times.
fn strip_twos(u: &mut [u64; 4], x: &mut [u64; 4]) {
    while let Some(&w0) = u.first() {
        let tz = if w0 != 0 {
            w0.trailing_zeros()
        } else if u.iter().any(|&w| w != 0) {
            63
        } else {
            return;
        };
        if tz == 0 {
            return;
        }
        shr_in_place(u, tz);
        for _ in 0..tz {
            half_mod_n(x);
        }
    }
}

/// s⁻¹ mod n for 0 < s < n: binary extended Euclid. Invariants: x1·s ≡ u, x2·s ≡ v (mod n).
fn inv_mod_n(s: &[u64; 4]) -> [u64; 4] {
    let mut u = *s;
    let mut v = N64;
    let mut x1 = [1u64, 0, 0, 0];
    let mut x2 = [0u64; 4];
    // n is prime and 0 < s < n, so gcd = 1 and the loop ends with u or v = 1; the bound is
    // only a guard (each round removes at least one bit from u·v, which starts < 2^512).
    for _ in 0..1100 {
        strip_twos(&mut u, &mut x1);
        strip_twos(&mut v, &mut x2);
        if is_one(&u) {
            return x1;
        }
        if is_one(&v) {
            return x2;
        }
        if geq(&u, &v) {
            sub_in_place(&mut u, &v);
            sub_mod_n(&mut x1, &x2);
        } else {
            sub_in_place(&mut v, &u);
            sub_mod_n(&mut x2, &x1);
        }
    }
    [0; 4]
}
