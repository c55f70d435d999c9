//! Saturated 256-bit helpers (eight little-endian u32 limbs): byte conversion and
//! comparison, shared by the field and scalar code.

/// p = 2^256 − 2^224 + 2^192 + 2^96 − 1, little-endian u32 limbs.
pub const P: [u32; 8] = [
    0xFFFF_FFFF,
    0xFFFF_FFFF,
    0xFFFF_FFFF,
    0,
    0,
    0,
    1,
    0xFFFF_FFFF,
];

/// Big-endian bytes → little-endian u32 limbs (no range check).
pub fn limbs_from_be(b: &[u8; 32]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (o, c) in out.iter_mut().rev().zip(b.chunks_exact(4)) {
        if let &[b0, b1, b2, b3] = c {
            *o = u32::from_be_bytes([b0, b1, b2, b3]);
        }
    }
    out
}

/// Little-endian u32 limbs → big-endian bytes.
pub fn limbs_to_be(l: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (c, x) in out.chunks_exact_mut(4).zip(l.iter().rev()) {
        c.copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// a < b.
pub fn lt(a: &[u32; 8], b: &[u32; 8]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// a + b mod 2^256 (callers know there is no carry).
pub fn add(a: &[u32; 8], b: &[u32; 8]) -> [u32; 8] {
    let mut r = [0u32; 8];
    let mut c: u64 = 0;
    for ((o, x), y) in r.iter_mut().zip(a).zip(b) {
        c += u64::from(*x) + u64::from(*y);
        *o = c as u32;
        c >>= 32;
    }
    r
}
