//! Fast variable-time RSA signature verification (RS256 and PS256) for wasm32.
//!
//! Verification only handles public data (modulus, exponent, signature, digest), so the
//! arithmetic here is deliberately variable-time. Big integers are little-endian `u32` limbs
//! with `u64` accumulators: wasm has native 64-bit integer multiply but no 64×64→128, so
//! 32-bit limbs are what runs fastest inside V8.
//!
//! **Key policy** (the one place it lives; the JWK layer relies on it): moduli of
//! [`MIN_BITS`]`..=`[`MAX_BITS`] bits and the public exponent [`EXPONENT`] only.
//! [`RsaVerifyingKey::new`] refuses every other key, and the fixed buffers are sized from
//! [`MAX_BITS`].
//!
//! A key is prepared once ([`RsaVerifyingKey::new`]: limbs, Montgomery constant, `R² mod n`
//! by one long division) and can be cached; a verification is then one Montgomery
//! exponentiation (for `e = 65537`: one multiply into the Montgomery domain, 16 squarings and
//! one multiply by the plain signature, which also leaves the domain) followed by a strict
//! comparison of the encoded message.
//!
//! Products and reductions run four rows at a time (separated operand scanning): four
//! independent carry chains and one load/store of the accumulator per four multiplies,
//! which is what the wasm → x86-64 code V8 emits is limited by (about 1.5 cycles per 32×32
//! multiply-add). The squaring computes each cross product once.
//!
//! Nothing here panics: every access is checked, and a malformed input is a `false`/`None`.

use sha2::{Digest, Sha256};

/// Smallest modulus accepted, in bits (RFC 7518 §3.3 requires at least 2048).
pub const MIN_BITS: usize = 2048;
/// Largest modulus accepted, in bits. It caps what an attacker-chosen key costs per proof (an
/// 8192-bit key with a 32-bit `e` cost 68× a normal proof) and sizes the stack buffers.
pub const MAX_BITS: usize = 4096;
/// The only public exponent accepted (what every real key uses; a larger `e` costs more
/// squarings, and `e = 3` is a footgun we have no reason to allow).
pub const EXPONENT: u32 = 65537;

const MAX_LIMBS: usize = MAX_BITS / 32;
const HASH_LEN: usize = 32;

/// `DigestInfo` DER prefix for SHA-256 (RFC 8017 §9.2 note 1), with the NULL parameter.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RSA public key prepared for fast verification.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaVerifyingKey {
    /// Modulus, little-endian limbs, padded with zero limbs to a multiple of 4.
    n: Box<[u32]>,
    /// `R² mod n`, `R = 2^(32·limbs)`.
    rr: Box<[u32]>,
    /// `-n⁻¹ mod 2³²`.
    n0inv: u32,
    /// Public exponent: [`EXPONENT`] (unit tests also make keys with other odd `3 ≤ e < 2³²`).
    e: u32,
    /// Bit length of the modulus.
    bits: usize,
}

impl core::fmt::Debug for RsaVerifyingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RsaVerifyingKey")
            .field("bits", &self.bits)
            .field("e", &self.e)
            .finish_non_exhaustive()
    }
}

impl RsaVerifyingKey {
    /// Prepares a key from the big-endian modulus and public exponent (leading zero octets
    /// are ignored). `None` unless the modulus is odd with [`MIN_BITS`]`..=`[`MAX_BITS`] bits
    /// and the exponent is [`EXPONENT`].
    pub fn new(n_be: &[u8], e_be: &[u8]) -> Option<Self> {
        if strip_zeros(e_be) != EXPONENT.to_be_bytes().get(1..)? {
            return None;
        }
        Self::with_exponent(n_be, EXPONENT)
    }

    /// The key for any odd exponent `3 ≤ e < 2³²` (the arithmetic handles them all; the
    /// policy is [`RsaVerifyingKey::new`]'s, tests use other exponents).
    fn with_exponent(n_be: &[u8], e: u32) -> Option<Self> {
        if e < 3 || e & 1 == 0 {
            return None;
        }
        let n_be = strip_zeros(n_be);
        let top = *n_be.first()?;
        let bits = n_be.len() * 8 - top.leading_zeros() as usize;
        if !(MIN_BITS..=MAX_BITS).contains(&bits) || n_be.last()? & 1 == 0 {
            return None;
        }
        let mut n = be_to_limbs(n_be);
        // A multiple of four limbs (the arithmetic works on four rows at a time); zero top
        // limbs are harmless for Montgomery arithmetic (R = 2^(32k) > n still).
        while !n.len().is_multiple_of(ROWS) {
            n.push(0);
        }
        let n0 = *n.first()?;
        // Newton iteration for n0⁻¹ mod 2³²: n0·n0 ≡ 1 (mod 8) is correct to 3 bits, and each
        // step doubles the number of correct bits (3 → 6 → 12 → 24 → 48).
        let mut inv = n0;
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        if n0.wrapping_mul(inv) != 1 {
            return None;
        }
        let rr = r_squared_mod(&n)?;
        Some(RsaVerifyingKey {
            n: n.into_boxed_slice(),
            rr: rr.into_boxed_slice(),
            n0inv: inv.wrapping_neg(),
            e,
            bits,
        })
    }

    /// Bit length of the modulus.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Length in octets of the modulus, which is also the length of every signature.
    pub fn size(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// The public exponent.
    pub fn exponent(&self) -> u32 {
        self.e
    }

    /// RSAVP1 (RFC 8017 §5.2.2): `sig^e mod n` as `size()` big-endian octets. `None` unless
    /// `sig` is exactly `size()` octets and, as an integer, less than `n`.
    pub fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.size()];
        self.public_op_into(sig, &mut out).then_some(out)
    }

    /// RSASSA-PKCS1-v1_5 verification with SHA-256 (RFC 8017 §8.2.2): the whole encoded
    /// message `00 01 FF… 00 || DigestInfo(SHA-256, with NULL) || H` must match.
    pub fn verify_pkcs1v15_sha256(&self, digest: &[u8; 32], sig: &[u8]) -> bool {
        let mut em = [0u8; MAX_BITS / 8];
        let Some(em) = em.get_mut(..self.size()) else {
            return false;
        };
        if !self.public_op_into(sig, em) {
            return false;
        }
        let t_len = SHA256_DIGEST_INFO.len() + HASH_LEN;
        // 00 01 PS 00 T, PS at least 8 octets of FF
        let Some(ps_end) = em.len().checked_sub(t_len + 1) else {
            return false;
        };
        if ps_end < 2 + 8 {
            return false;
        }
        let (Some(head), Some(ps), Some(tail)) = (em.get(..2), em.get(2..ps_end), em.get(ps_end..))
        else {
            return false;
        };
        let Some((sep, t)) = tail.split_first() else {
            return false;
        };
        let Some((info, h)) = t.split_at_checked(SHA256_DIGEST_INFO.len()) else {
            return false;
        };
        head == [0x00, 0x01]
            && ps.iter().all(|b| *b == 0xff)
            && *sep == 0
            && info == SHA256_DIGEST_INFO
            && h == digest
    }

    /// RSASSA-PSS verification with SHA-256 and MGF1-SHA-256 (RFC 8017 §8.1.2, §9.1.2),
    /// with exactly `salt_len` octets of salt (JWS PS256 uses 32).
    pub fn verify_pss_sha256(&self, digest: &[u8; 32], sig: &[u8], salt_len: usize) -> bool {
        let mut buf = [0u8; MAX_BITS / 8];
        let Some(m) = buf.get_mut(..self.size()) else {
            return false;
        };
        if !self.public_op_into(sig, m) {
            return false;
        }
        // I2OSP(m, emLen) with emBits = modBits - 1: when emBits is a multiple of 8 the
        // encoded message is one octet shorter than the modulus and that octet must be zero.
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        let Some(extra) = m.len().checked_sub(em_len) else {
            return false;
        };
        let Some((lead, em)) = m.split_at_mut_checked(extra) else {
            return false;
        };
        if lead.iter().any(|b| *b != 0) {
            return false;
        }
        emsa_pss_verify(digest, em, em_bits, salt_len)
    }

    /// RSAVP1 into `out` (exactly `size()` octets). Returns false when the signature has the
    /// wrong length or is not less than the modulus.
    fn public_op_into(&self, sig: &[u8], out: &mut [u8]) -> bool {
        let k = self.n.len();
        if sig.len() != self.size() || out.len() != sig.len() {
            return false;
        }
        let mut s_buf = [0u32; MAX_LIMBS];
        let mut x_buf = [0u32; MAX_LIMBS];
        let mut y_buf = [0u32; MAX_LIMBS];
        let mut t_buf = [0u32; 2 * MAX_LIMBS];
        let (Some(s), Some(x), Some(y), Some(t)) = (
            s_buf.get_mut(..k),
            x_buf.get_mut(..k),
            y_buf.get_mut(..k),
            t_buf.get_mut(..2 * k),
        ) else {
            return false;
        };
        for (limb, chunk) in s.iter_mut().zip(sig.rchunks(4)) {
            *limb = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        }
        if !less_than(s, &self.n) {
            return false;
        }
        let n = &*self.n;
        let n0inv = self.n0inv;
        mont_mul(s, &self.rr, n, n0inv, t, x);
        y.copy_from_slice(x);
        let sm = &*y;
        // Left-to-right binary exponentiation. e is odd (checked when the key was made), so
        // the last step is always the multiply by the plain s, which also leaves the
        // Montgomery domain: (s^(e−1)·R)·s·R⁻¹ = s^e.
        let top = 31 - self.e.leading_zeros();
        for b in (0..top).rev() {
            mont_sqr(x, n, n0inv, t);
            if (self.e >> b) & 1 == 1 {
                if b == 0 {
                    mont_mul_inplace(x, s, n, n0inv, t);
                } else {
                    mont_mul_inplace(x, sm, n, n0inv, t);
                }
            }
        }
        for (chunk, limb) in out.rchunks_mut(4).zip(x.iter()) {
            for (dst, src) in chunk.iter_mut().rev().zip(limb.to_le_bytes()) {
                *dst = src;
            }
        }
        true
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with SHA-256 and MGF1-SHA-256, steps 3–14. `em` is the
/// encoded message of `emLen = ceil(em_bits / 8)` octets; it is unmasked in place.
fn emsa_pss_verify(m_hash: &[u8; 32], em: &mut [u8], em_bits: usize, s_len: usize) -> bool {
    let em_len = em.len();
    // 3.
    if em_len < HASH_LEN + s_len + 2 {
        return false;
    }
    // 4.
    let Some((last, rest)) = em.split_last_mut() else {
        return false;
    };
    if *last != 0xbc {
        return false;
    }
    // 5.
    let db_len = em_len - HASH_LEN - 1;
    let Some((db, h)) = rest.split_at_mut_checked(db_len) else {
        return false;
    };
    // 6. The leftmost 8·emLen − emBits bits of maskedDB must be zero.
    let unused = 8 * em_len - em_bits;
    let top_mask: u8 = 0xffu8.checked_shr(unused as u32).unwrap_or(0);
    let Some(first) = db.first_mut() else {
        return false;
    };
    if *first & !top_mask != 0 {
        return false;
    }
    // 7–8. DB = maskedDB ⊕ MGF1(H, emLen − hLen − 1)
    let mut counter = 0u32;
    for chunk in db.chunks_mut(HASH_LEN) {
        let mask = Sha256::new()
            .chain_update(&*h)
            .chain_update(counter.to_be_bytes())
            .finalize();
        for (d, m) in chunk.iter_mut().zip(mask.iter()) {
            *d ^= m;
        }
        counter = counter.wrapping_add(1);
    }
    // 9.
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // 10. PS (zeros) || 0x01 || salt
    let Some(ps_len) = db_len.checked_sub(s_len + 1) else {
        return false;
    };
    let (Some(ps), Some(one), Some(salt)) =
        (db.get(..ps_len), db.get(ps_len), db.get(ps_len + 1..))
    else {
        return false;
    };
    if ps.iter().any(|b| *b != 0) || *one != 0x01 {
        return false;
    }
    // 11–14. H' = Hash(0x00·8 || mHash || salt) must equal H.
    let h2 = Sha256::new()
        .chain_update([0u8; 8])
        .chain_update(m_hash)
        .chain_update(salt)
        .finalize();
    h2.iter().eq(h.iter())
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let lead = b.iter().take_while(|x| **x == 0).count();
    b.get(lead..).unwrap_or(&[])
}

/// Big-endian octets to little-endian limbs (`ceil(len/4)` limbs).
fn be_to_limbs(b: &[u8]) -> Vec<u32> {
    b.rchunks(4)
        .map(|c| c.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
        .collect()
}

/// `a < b` for equal-length little-endian limbs.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` (equal lengths), wrapping modulo `2^(32·len)`.
fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let v = u64::from(*x)
            .wrapping_sub(u64::from(*y))
            .wrapping_sub(borrow);
        *x = v as u32;
        borrow = (v >> 32) & 1;
    }
}

const LO32: u64 = 0xffff_ffff;

/// Limb counts are padded to a multiple of this: the products below work on four rows at
/// a time.
const ROWS: usize = 4;

/// Four rows of a product at once. Column by column, `t += x[0]·y + x[1]·p[0] + x[2]·p[1] +
/// x[3]·p[2]`, where `p` holds the `y` of the three previous columns (row `r` lags `r`
/// columns behind row 0). Each row keeps its own carry in `c[r]`: four independent carry
/// chains, and one load and one store of `t` for four products. No sum overflows: each is
/// at most `(2³²−1) + (2³²−1)² + (2³²−1) = 2⁶⁴−1`.
#[inline(always)]
fn step4(t: &mut u32, y: u64, x: &[u64; 4], c: &mut [u64; 4], p: &mut [u64; 3]) {
    let v0 = (u64::from(*t) + x[0] * y) + c[0];
    c[0] = v0 >> 32;
    let v1 = ((v0 & LO32) + x[1] * p[0]) + c[1];
    c[1] = v1 >> 32;
    let v2 = ((v1 & LO32) + x[2] * p[1]) + c[2];
    c[2] = v2 >> 32;
    let v3 = ((v2 & LO32) + x[3] * p[2]) + c[3];
    c[3] = v3 >> 32;
    *t = v3 as u32;
    p[2] = p[1];
    p[1] = p[0];
    p[0] = y;
}

/// `step4` over `t` and `y` (same length), unrolled by two.
#[inline(always)]
fn rows4(t: &mut [u32], y: &[u32], x: &[u64; 4], c: &mut [u64; 4], p: &mut [u64; 3]) {
    let mut ti = t.chunks_exact_mut(2);
    let mut yi = y.chunks_exact(2);
    for (tt, yy) in ti.by_ref().zip(yi.by_ref()) {
        let ([t0, t1], [y0, y1]) = (tt, yy) else {
            continue;
        };
        step4(t0, u64::from(*y0), x, c, p);
        step4(t1, u64::from(*y1), x, c, p);
    }
    for (tt, yy) in ti.into_remainder().iter_mut().zip(yi.remainder()) {
        step4(tt, u64::from(*yy), x, c, p);
    }
}

/// Reduces a Montgomery result held in `out` plus a carry bit below `n`.
fn finish(out: &mut [u32], extra: u64, n: &[u32]) {
    if extra != 0 || !less_than(out, n) {
        sub_in_place(out, n);
    }
}

/// Montgomery reduction: `out = t·R⁻¹ mod n`, fully reduced, for `t < n·R` held in exactly
/// `2k` limbs (`t` is clobbered; `k` a multiple of 4). `out` has `k` limbs.
///
/// Four rows at a time: the multipliers `m_i..m_(i+3)` that clear limbs `i..i+3` are found
/// in the first four columns (each once the rows before it have been added there), then
/// the four rows `m_(i+r)·n` run together.
fn redc(t: &mut [u32], n: &[u32], n0inv: u32, out: &mut [u32]) {
    let k = n.len();
    let ([n0, n1, n2, n3, ..], Some(n_rest)) = (n, n.get(ROWS..)) else {
        return;
    };
    let (n0, n1, n2, n3) = (
        u64::from(*n0),
        u64::from(*n1),
        u64::from(*n2),
        u64::from(*n3),
    );
    let ninv = u64::from(n0inv);
    let lo = |v: u64| v & LO32;
    let mut extra = 0u64;
    for i in (0..k).step_by(ROWS) {
        let Some(win) = t.get_mut(i..) else {
            return;
        };
        let Some((low, high)) = win.split_at_mut_checked(k) else {
            return;
        };
        let ([t0, t1, t2, t3, ..], [h0, h1, h2, h3, ..]) = (&mut *low, high) else {
            return;
        };
        // Column 0: m0 clears it.
        let m0 = lo(u64::from(*t0) * ninv);
        let mut c = [(u64::from(*t0) + m0 * n0) >> 32, 0, 0, 0];
        // Column 1: row 0, then m1 clears what is left.
        let v0 = (u64::from(*t1) + m0 * n1) + c[0];
        c[0] = v0 >> 32;
        let m1 = lo(lo(v0) * ninv);
        c[1] = (lo(v0) + m1 * n0) >> 32;
        // Column 2: rows 0 and 1, then m2.
        let v0 = (u64::from(*t2) + m0 * n2) + c[0];
        c[0] = v0 >> 32;
        let v1 = (lo(v0) + m1 * n1) + c[1];
        c[1] = v1 >> 32;
        let m2 = lo(lo(v1) * ninv);
        c[2] = (lo(v1) + m2 * n0) >> 32;
        // Column 3: rows 0 to 2, then m3.
        let v0 = (u64::from(*t3) + m0 * n3) + c[0];
        c[0] = v0 >> 32;
        let v1 = (lo(v0) + m1 * n2) + c[1];
        c[1] = v1 >> 32;
        let v2 = (lo(v1) + m2 * n1) + c[2];
        c[2] = v2 >> 32;
        let m3 = lo(lo(v2) * ninv);
        c[3] = (lo(v2) + m3 * n0) >> 32;
        // Columns 4..k: all four rows.
        let x = [m0, m1, m2, m3];
        let mut p = [n3, n2, n1];
        if let Some(body) = low.get_mut(ROWS..) {
            rows4(body, n_rest, &x, &mut c, &mut p);
        }
        // Columns k..k+3 (relative) hold the upper half: rows 1..3 finish there, plus the
        // carry out of the previous group.
        c[0] += extra;
        step4(h0, 0, &x, &mut c, &mut p);
        step4(h1, 0, &x, &mut c, &mut p);
        step4(h2, 0, &x, &mut c, &mut p);
        let w = u64::from(*h3) + c[0] + c[1] + c[2] + c[3];
        *h3 = w as u32;
        extra = w >> 32;
    }
    let Some(res) = t.get(k..) else {
        return;
    };
    out.copy_from_slice(res);
    finish(out, extra, n);
}

/// `t = a·b` (`2k` limbs; `k` a multiple of 4).
fn mul_wide(a: &[u32], b: &[u32], t: &mut [u32]) {
    let k = b.len();
    t.fill(0);
    for (g, quad) in a.chunks_exact(ROWS).enumerate() {
        let [a0, a1, a2, a3] = quad else {
            return;
        };
        let x = [a0, a1, a2, a3].map(|v| u64::from(*v));
        let Some(win) = t.get_mut(ROWS * g..) else {
            return;
        };
        let Some((low, high)) = win.split_at_mut_checked(k) else {
            return;
        };
        let [h0, h1, h2, h3, ..] = high else {
            return;
        };
        let (mut c, mut p) = ([0u64; 4], [0u64; 3]);
        // Rows 1..3 start with p = 0: no terms before their first column.
        rows4(low, b, &x, &mut c, &mut p);
        step4(h0, 0, &x, &mut c, &mut p);
        step4(h1, 0, &x, &mut c, &mut p);
        step4(h2, 0, &x, &mut c, &mut p);
        *h3 = (c[0] + c[1] + c[2] + c[3]) as u32;
    }
}

/// `t = a²` (`2k` limbs; `k` a multiple of 4): the cross products `a_i·a_j`, `i < j`, four
/// rows at a time, then doubled, plus the squares.
fn sqr_wide(a: &[u32], t: &mut [u32]) {
    let k = a.len();
    t.fill(0);
    for (g, quad) in a.chunks_exact(ROWS).enumerate() {
        let i = ROWS * g;
        let [a0, a1, a2, a3] = quad else {
            return;
        };
        let x = [a0, a1, a2, a3].map(|v| u64::from(*v));
        // Row r multiplies a_(i+r) by a_j, j > i+r, into column i+r+j; with row r lagging r
        // columns, column i+J gets a_(i+r)·a_(J−r), wanted only when J−r > i+r. The first
        // six columns (J = i+1..i+6) mask the rows not yet wanted.
        let (Some(win), Some(ys)) = (t.get_mut(2 * i + 1..=i + k + 3), a.get(i + 1..)) else {
            return;
        };
        let Some((last, cols)) = win.split_last_mut() else {
            return;
        };
        let (mut c, mut p) = ([0u64; 4], [0u64; 3]);
        let masked = |j: usize| {
            [
                x[0],
                if j >= 3 { x[1] } else { 0 },
                if j >= 5 { x[2] } else { 0 },
                if j >= 7 { x[3] } else { 0 },
            ]
        };
        let head = ys.len().min(6);
        let Some((cols_head, cols_rest)) = cols.split_at_mut_checked(head) else {
            return;
        };
        let (Some(ys_head), Some(ys_rest)) = (ys.get(..head), ys.get(head..)) else {
            return;
        };
        for (j, (tj, y)) in (1..).zip(cols_head.iter_mut().zip(ys_head)) {
            step4(tj, u64::from(*y), &masked(j), &mut c, &mut p);
        }
        let Some((cols_body, cols_tail)) = cols_rest.split_at_mut_checked(ys_rest.len()) else {
            return;
        };
        rows4(cols_body, ys_rest, &x, &mut c, &mut p);
        // Three more columns where rows 1..3 finish (still masked in the last groups).
        for (j, tj) in (ys.len() + 1..).zip(cols_tail.iter_mut()) {
            step4(tj, 0, &masked(j), &mut c, &mut p);
        }
        *last = (c[0] + c[1] + c[2] + c[3]) as u32;
    }
    // Double the cross products and add the squares a_i² at limb 2i.
    let mut carry = 0u64;
    let mut shifted_in = 0u32;
    for (pair, xi) in t.chunks_exact_mut(2).zip(a.iter()) {
        let sq = u64::from(*xi) * u64::from(*xi);
        let [d0, d1] = pair else {
            continue;
        };
        let v = u64::from((*d0 << 1) | shifted_in) + (sq & LO32) + carry;
        shifted_in = *d0 >> 31;
        *d0 = v as u32;
        carry = v >> 32;
        let v = u64::from((*d1 << 1) | shifted_in) + (sq >> 32) + carry;
        shifted_in = *d1 >> 31;
        *d1 = v as u32;
        carry = v >> 32;
    }
}

/// `out = a·b·R⁻¹ mod n`; `t` is `2k` limbs of scratch.
fn mont_mul(a: &[u32], b: &[u32], n: &[u32], n0inv: u32, t: &mut [u32], out: &mut [u32]) {
    mul_wide(a, b, t);
    redc(t, n, n0inv, out);
}

/// `x = x·b·R⁻¹ mod n`.
fn mont_mul_inplace(x: &mut [u32], b: &[u32], n: &[u32], n0inv: u32, t: &mut [u32]) {
    mul_wide(x, b, t);
    redc(t, n, n0inv, x);
}

/// `x = x²·R⁻¹ mod n`.
fn mont_sqr(x: &mut [u32], n: &[u32], n0inv: u32, t: &mut [u32]) {
    sqr_wide(x, t);
    redc(t, n, n0inv, x);
}

/// `R² mod n` with `R = 2^(32k)`, `k = n.len()`: the remainder of `2^(64k)` by `n`, by one
/// long division (Knuth, TAOCP vol. 2, 4.3.1, algorithm D).
fn r_squared_mod(n: &[u32]) -> Option<Vec<u32>> {
    let k = n.len();
    let used = k - n.iter().rev().take_while(|x| **x == 0).count();
    let mut u = vec![0u32; 2 * k + 1];
    *u.last_mut()? = 1;
    let mut r = rem(&u, n.get(..used)?)?;
    r.resize(k, 0);
    Some(r)
}

/// `u mod v` for little-endian limbs; `v` has at least two limbs and a non-zero top limb.
fn rem(u: &[u32], v: &[u32]) -> Option<Vec<u32>> {
    let n = v.len();
    let m = u.len();
    if n < 2 || m < n {
        return None;
    }
    let vtop = *v.last()?;
    if vtop == 0 {
        return None;
    }
    let s = vtop.leading_zeros();
    let shl = |hi: u32, lo: u32| -> u32 {
        if s == 0 {
            hi
        } else {
            (hi << s) | (lo >> (32 - s))
        }
    };
    // Normalized divisor and dividend (one extra limb).
    let mut vn = Vec::with_capacity(n);
    let mut prev = 0u32;
    for x in v {
        vn.push(shl(*x, prev));
        prev = *x;
    }
    let mut un = Vec::with_capacity(m + 1);
    prev = 0;
    for x in u {
        un.push(shl(*x, prev));
        prev = *x;
    }
    un.push(shl(0, prev));

    let b: u64 = 1 << 32;
    let v1 = u64::from(*vn.last()?);
    let v2 = u64::from(*vn.get(n - 2)?);
    for j in (0..=m - n).rev() {
        let num = (u64::from(*un.get(j + n)?) << 32) | u64::from(*un.get(j + n - 1)?);
        let mut qhat = num / v1;
        let mut rhat = num % v1;
        let u2 = u64::from(*un.get(j + n - 2)?);
        while qhat >= b || qhat * v2 > (rhat << 32) + u2 {
            qhat -= 1;
            rhat += v1;
            if rhat >= b {
                break;
            }
        }
        // un[j..=j+n] -= qhat·vn
        let win = un.get_mut(j..=j + n)?;
        let (lo, hi) = win.split_at_mut_checked(n)?;
        let mut borrow = 0u64;
        let mut carry = 0u64;
        for (uj, vj) in lo.iter_mut().zip(&vn) {
            let p = qhat * u64::from(*vj) + carry;
            carry = p >> 32;
            let d = u64::from(*uj)
                .wrapping_sub(p & 0xffff_ffff)
                .wrapping_sub(borrow);
            *uj = d as u32;
            borrow = (d >> 32) & 1;
        }
        let top = hi.first_mut()?;
        let d = u64::from(*top).wrapping_sub(carry).wrapping_sub(borrow);
        *top = d as u32;
        if (d >> 32) != 0 {
            // qhat was one too large: add vn back.
            let mut c = 0u64;
            for (uj, vj) in lo.iter_mut().zip(&vn) {
                let s = u64::from(*uj) + u64::from(*vj) + c;
                *uj = s as u32;
                c = s >> 32;
            }
            *top = top.wrapping_add(c as u32);
        }
    }
    // Remainder: un[..n] >> s
    let mut r = Vec::with_capacity(n);
    for i in 0..n {
        let lo = *un.get(i)?;
        let hi = *un.get(i + 1)?;
        r.push(if s == 0 {
            lo
        } else {
            (lo >> s) | (hi << (32 - s))
        });
    }
    Some(r)
}

#[cfg(test)]
mod tests;
