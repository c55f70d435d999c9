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
//! This file holds the key, the policy and RSAVP1; the pieces behind it:
//!
//! - `montgomery`: products, squarings and Montgomery reduction, four rows at a time;
//! - `division`: the one long division computing `R² mod n` when a key is made;
//! - `padding`: the encoded-message checks of PKCS#1 v1.5 and PSS (SHA-256).
//!
//! Nothing here panics: every access is checked, and a malformed input is a `false`/`None`.

mod division;
mod montgomery;
mod padding;

use division::r_squared_mod;
use montgomery::{less_than, mont_mul, mont_mul_inplace, mont_sqr, ROWS};
// The unit tests reach the building blocks through `super::*`.
#[cfg(test)]
use division::add_back;
#[cfg(test)]
use montgomery::{mul_wide, sqr_wide};

/// Smallest modulus accepted, in bits (RFC 7518 §3.3 requires at least 2048).
pub const MIN_BITS: usize = 2048;
/// Largest modulus accepted, in bits. It caps what an attacker-chosen key costs per proof (an
/// 8192-bit key with a 32-bit `e` cost 68× a normal proof) and sizes the stack buffers.
pub const MAX_BITS: usize = 4096;
/// The only public exponent accepted (what every real key uses; a larger `e` costs more
/// squarings, and `e = 3` is a footgun we have no reason to allow).
pub const EXPONENT: u32 = 65537;

const MAX_LIMBS: usize = MAX_BITS / 32;

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
        self.public_op_into(sig, em) && padding::pkcs1v15_sha256_matches(em, digest)
    }

    /// RSASSA-PSS verification with SHA-256 and MGF1-SHA-256 (RFC 8017 §8.1.2, §9.1.2),
    /// with exactly `salt_len` octets of salt (JWS PS256 uses 32).
    pub fn verify_pss_sha256(&self, digest: &[u8; 32], sig: &[u8], salt_len: usize) -> bool {
        let mut buf = [0u8; MAX_BITS / 8];
        let Some(m) = buf.get_mut(..self.size()) else {
            return false;
        };
        self.public_op_into(sig, m) && padding::pss_sha256_matches(m, self.bits, digest, salt_len)
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

#[cfg(test)]
mod tests;
