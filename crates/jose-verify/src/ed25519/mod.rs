//! Fast variable-time Ed25519 verification (EdDSA, RFC 8032) for wasm32, with the exact
//! acceptance rules of ed25519-dalek's `verify_strict`:
//!
//! - s must be canonical (s < ℓ);
//! - R must be the canonical encoding of a point that is not of small order;
//! - A (the key) must not be of small order (non-canonical key encodings are accepted, and
//!   hashed as sent, as ed25519-dalek does);
//! - cofactorless equation: [s]B − [k]A = R, k = SHA-512(R ‖ A ‖ M) mod ℓ.
//!
//! Verification handles only public data, so the code is variable time. Design:
//!
//! - field: fiat-crypto's formally verified 32-bit code (ten 25.5-bit limbs, products in
//!   u64), its tight and loose bounds kept by types ([`field`]);
//! - no doublings for [s]B: a per-VM table of j·256^i·B (32 rows × 128 affine points,
//!   480 KiB, built once: [`warm_up`]) and signed radix-256 digits: 32 additions;
//! - a key verified a second time is *prepared* (once, kept in the key): a comb table of
//!   j·32^(4q)·A (13 rows × 16 affine points, 25 KiB), so [k]A is 52 additions and 15
//!   doublings instead of ~253 doublings; a one-shot key takes the wNAF path; a key used
//!   64 times gets a larger comb (43 additions, no doubling, 165 KiB) while the VM holds fewer
//!   than 8 of those;
//! - R is compared projectively with the decoded R (no inversion); decoding R is the one
//!   exponentiation per verification; R's small order is checked on its canonical y.
//!
//! This file holds the key, its table policy, point decoding and the verification equation;
//! the comb tables and scalar recodings are in `scalar_mul`, the point formulas in `point`.

mod field;
mod point;
mod scalar_mul;

use curve25519_dalek::scalar::Scalar;
use field::{Fe, BASE_X, BASE_Y, D};
use point::Ext;
use scalar_mul::{minus_mul_wnaf, signed_digits, Comb};
// The unit tests reach the recodings through `super::`.
#[cfg(test)]
use scalar_mul::wnaf;
use sha2::{Digest, Sha512};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Window of the base-point table: digits in [−128, 128), one row per byte of s.
const B_WINDOW: u32 = 8;
/// Window and teeth of a prepared key's comb: 52 signed radix-32 digits, 13 rows of 16
/// points (25 KiB): 52 additions and 15 doublings per verification.
const A_WINDOW: u32 = 5;
const A_TEETH: usize = 4;
/// A key verified `HOT_USES` times gets a larger comb while fewer than `HOT_KEYS` keys of the
/// VM hold one: 43 signed radix-64 digits, 43 rows of 32 points (165 KiB), so [k]A is 43
/// additions and no doubling. Bounds the extra memory to `HOT_KEYS` × 165 KiB per VM.
const HOT_WINDOW: u32 = 6;
const HOT_TEETH: usize = 1;
const HOT_USES: u8 = 64;
const HOT_KEYS: usize = 8;

/// Hot combs alive in this VM (wasm: one thread per VM; natively shared by all threads).
static HOT_COMBS: AtomicUsize = AtomicUsize::new(0);

/// A hot comb; its budget slot is given back when the key (and with it the comb) is dropped.
struct HotComb(Comb);

impl Drop for HotComb {
    fn drop(&mut self) {
        HOT_COMBS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes a hot-comb budget slot if one is free.
fn reserve_hot_slot() -> bool {
    HOT_COMBS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < HOT_KEYS).then_some(n + 1)
        })
        .is_ok()
}

fn base_comb() -> Option<&'static Comb> {
    static TABLE: OnceLock<Option<Comb>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let b = Ext::from_affine(&BASE_X, &BASE_Y);
            Comb::build(&b, B_WINDOW, 1)
        })
        .as_ref()
}

/// Builds the per-VM base-point table now (≈ 4k point additions), so that the first
/// request does not pay for it.
pub fn warm_up() {
    let _ = base_comb();
}

/// A point decoded with ed25519-dalek's rules: the low 255 bits as y (values ≥ p taken
/// mod p), x the root whose low bit is the sign bit (x = 0 with the sign bit set gives 0).
pub(crate) fn decompress(bytes: &[u8; 32]) -> Option<(Fe, Fe)> {
    let y = Fe::from_bytes(bytes);
    let yy = y.square();
    let u = yy.sub(&Fe::ONE).carry();
    let v = yy.mul(&D).add(&Fe::ONE).carry();
    let mut x = Fe::sqrt_ratio(&u, &v)?;
    let sign = bytes.get(31).is_some_and(|b| b >> 7 == 1);
    if x.is_negative() != sign {
        x = x.neg().carry();
    }
    Some((x, y))
}

/// y < p for the low 255 bits (p = 2^255 − 19).
pub(crate) fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    let mut b = *bytes;
    if let Some(top) = b.last_mut() {
        *top &= 0x7f;
    }
    Fe::from_bytes(&b).to_bytes() == b
}

/// Canonical encodings of the y of the eight small-order points: 1 (identity), −1 (order 2),
/// 0 (order 4) and ±y₈ (order 8), little-endian.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [0; 32],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
];

/// A point with this canonical encoding (that decodes) has small order: its y is one of
/// the small-order points' (each y belongs to two points x, −x of the same order).
pub(crate) fn is_small_order_y(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    if let Some(top) = y.last_mut() {
        *top &= 0x7f;
    }
    SMALL_ORDER_Y.contains(&y)
}

/// A decoded Ed25519 public key. Construction decodes the point; the verification after the
/// first successful one with the same key object builds and keeps its comb table (≈ 15 KiB),
/// so keys held in a per-VM cache get the fast path, and one-shot keys or keys sent with junk
/// signatures never pay for it.
pub struct Ed25519VerifyingKey {
    bytes: [u8; 32],
    a: Ext,
    small_order: bool,
    /// Successful verifications so far, saturating.
    uses: AtomicU8,
    prepared: OnceLock<Option<Box<Comb>>>,
    hot: OnceLock<Option<Box<HotComb>>>,
}

impl std::fmt::Debug for Ed25519VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519VerifyingKey")
            .field("bytes", &self.bytes)
            .field("prepared", &self.is_prepared())
            .field("hot", &self.is_hot())
            .finish()
    }
}

impl Clone for Ed25519VerifyingKey {
    /// A clone starts unprepared (the table is not copied).
    fn clone(&self) -> Self {
        Ed25519VerifyingKey {
            bytes: self.bytes,
            a: self.a,
            small_order: self.small_order,
            uses: AtomicU8::new(0),
            prepared: OnceLock::new(),
            hot: OnceLock::new(),
        }
    }
}

impl Ed25519VerifyingKey {
    /// `None` when the bytes decode to no curve point. A small-order key decodes (as with
    /// ed25519-dalek) but verifies nothing.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let (x, y) = decompress(bytes)?;
        let a = Ext::from_affine(&x, &y);
        Some(Ed25519VerifyingKey {
            bytes: *bytes,
            a,
            small_order: a.is_small_order(),
            uses: AtomicU8::new(0),
            prepared: OnceLock::new(),
            hot: OnceLock::new(),
        })
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Builds the comb table now (otherwise done after the first successful verification).
    pub fn prepare(&self) {
        let _ = self.prepared();
    }

    pub fn is_prepared(&self) -> bool {
        matches!(self.prepared.get(), Some(Some(_)))
    }

    fn prepared(&self) -> Option<&Comb> {
        self.prepared
            .get_or_init(|| Comb::build(&self.a, A_WINDOW, A_TEETH).map(Box::new))
            .as_deref()
    }

    /// Whether this key holds a hot comb.
    pub fn is_hot(&self) -> bool {
        matches!(self.hot.get(), Some(Some(_)))
    }

    /// Counts a successful verification. Only those earn tables: a key sent again and again
    /// with junk signatures never makes the VM build its 15–165 KiB combs.
    fn note_success(&self) {
        let n = self.uses.load(Ordering::Relaxed);
        self.uses.store(n.saturating_add(1), Ordering::Relaxed);
    }

    /// The best table this key has earned: the hot comb (after `HOT_USES` successful
    /// verifications, if the VM's budget has a slot), else the prepared comb (after one), else
    /// none (one-shot path).
    fn comb_for_use(&self) -> Option<(&Comb, u32)> {
        let uses = self.uses.load(Ordering::Relaxed);
        if let Some(Some(hot)) = self.hot.get() {
            return Some((&hot.0, HOT_WINDOW));
        }
        if uses >= HOT_USES && self.hot.get().is_none() && reserve_hot_slot() {
            let mut slot_used = false;
            let built = self.hot.get_or_init(|| {
                let comb = Comb::build(&self.a, HOT_WINDOW, HOT_TEETH);
                slot_used = comb.is_some();
                comb.map(|c| Box::new(HotComb(c)))
            });
            if !slot_used {
                // the build failed, or another thread initialised the cell first
                HOT_COMBS.fetch_sub(1, Ordering::Relaxed);
            }
            if let Some(hot) = built {
                return Some((&hot.0, HOT_WINDOW));
            }
        }
        if uses == 0 && self.prepared.get().is_none() {
            return None;
        }
        self.prepared().map(|c| (c, A_WINDOW))
    }

    /// Builds the hot comb now if the VM's budget has a slot (tests, benchmarks).
    pub fn make_hot(&self) -> bool {
        if self.is_hot() {
            return true;
        }
        self.uses.store(HOT_USES, Ordering::Relaxed);
        let _ = self.comb_for_use();
        self.is_hot()
    }

    /// Strict Ed25519 verification of a 64-byte signature R ‖ s over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <&[u8; 64]>::try_from(sig) else {
            return false;
        };
        if self.small_order {
            return false;
        }
        let (r_half, s_half) = sig.split_at(32);
        let (Ok(r_bytes), Ok(s_bytes)) =
            (<[u8; 32]>::try_from(r_half), <[u8; 32]>::try_from(s_half))
        else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        // both byte checks before the one exponentiation (decoding R)
        if !is_canonical_y(&r_bytes) || is_small_order_y(&r_bytes) {
            return false;
        }
        let Some(b_comb) = base_comb() else {
            return false;
        };
        let s_digits = signed_digits(&s.to_bytes(), B_WINDOW);
        // [s]B's table entries start loading now and arrive while R is decoded.
        b_comb.touch(&s_digits);
        let Some((rx, ry)) = decompress(&r_bytes) else {
            return false;
        };
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(self.bytes);
        h.update(msg);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&h.finalize());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        // R' = [s]B − [k]A
        let minus_ka = match self.comb_for_use() {
            Some((comb, window)) => {
                let k_digits = signed_digits(&k.to_bytes(), window);
                comb.touch(&k_digits);
                comb.add_multiple(Ext::IDENTITY, &k_digits, true)
            }
            None => minus_mul_wnaf(&self.a, &k.to_bytes()),
        };
        let r_prime = b_comb.add_multiple(minus_ka, &s_digits, false);
        let ok = r_prime.equals_affine(&rx, &ry);
        if ok {
            self.note_success();
        }
        ok
    }
}

/// The building blocks, for the per-part timing of `crates/verify-bench` (feature `bench`,
/// off everywhere else). Not an API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench {
    pub use super::field::Fe;

    /// [`super::decompress`]: a point from its encoding (the one exponentiation).
    pub fn decompress(bytes: &[u8; 32]) -> Option<(Fe, Fe)> {
        super::decompress(bytes)
    }

    /// [`super::signed_digits`]: the signed radix-2^w recoding of a scalar.
    pub fn signed_digits(bytes: &[u8; 32], window: u32) -> [i16; 64] {
        super::signed_digits(bytes, window)
    }
}

#[cfg(test)]
mod tests;
