//! Helpers shared by the P-256 unit tests (`src/p256/tests.rs`) and integration tests
//! (`tests/p256.rs`): a seeded generator, big-integer conversions, the `p256` crate as the
//! reference, and a key verified on both paths. The including module must have
//! `P256VerifyingKey` in scope.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::P256VerifyingKey;
use ::p256::ecdsa::signature::hazmat::PrehashVerifier;
use ::p256::ecdsa::{Signature, VerifyingKey};
use ::p256::elliptic_curve::ops::{LinearCombination, Reduce};
use ::p256::elliptic_curve::point::AffineCoordinates;
use ::p256::elliptic_curve::sec1::ToEncodedPoint;
use ::p256::elliptic_curve::{Field, PrimeField};
use ::p256::{AffinePoint, EncodedPoint, ProjectivePoint, Scalar, U256};
use ::rsa::BigUint;
use rand_core::{OsRng, RngCore};

/// p, little-endian u32 limbs.
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

/// n (the group order), little-endian u32 limbs.
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

/// Scale factor for the random tests.
pub fn iters(base: usize) -> usize {
    let f: usize = std::env::var("P256_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * f.max(1)
}

/// A fast deterministic generator (xorshift128+), seeded from the OS; the seed is printed so
/// that a failure can be replayed with `P256_SEED`.
pub struct Rng(pub u64, pub u64);

impl Rng {
    pub fn new(name: &str) -> Rng {
        let seed = std::env::var("P256_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| OsRng.next_u64());
        println!("{name}: P256_SEED={seed}");
        let mut r = Rng(
            seed ^ 0x9E37_79B9_7F4A_7C15,
            seed.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1,
        );
        for _ in 0..16 {
            r.next();
        }
        r
    }
    pub fn next(&mut self) -> u64 {
        let (mut s1, s0) = (self.0, self.1);
        self.0 = s0;
        s1 ^= s1 << 23;
        self.1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        self.1.wrapping_add(s0)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
    /// 32 bytes biased towards edge values: all-ones/zero words, small and near-p/n values.
    pub fn edgy32(&mut self) -> [u8; 32] {
        let mut b = self.bytes32();
        match self.below(6) {
            0 => {
                for c in b.chunks_mut(4) {
                    match self.below(3) {
                        0 => c.copy_from_slice(&[0xFF; 4]),
                        1 => c.copy_from_slice(&[0; 4]),
                        _ => {}
                    }
                }
            }
            1 => b[..28].fill(0),
            2 => b = sub_small(&be(&P), self.below(1 << 20) as u64),
            3 => b = sub_small(&be(&N), self.below(1 << 20) as u64),
            _ => {}
        }
        b
    }
    pub fn scalar(&mut self) -> Scalar {
        loop {
            if let Some(s) = Option::from(Scalar::from_repr(self.bytes32().into())) {
                return s;
            }
        }
    }
}

pub fn be(l: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (c, x) in out.chunks_mut(4).zip(l.iter().rev()) {
        c.copy_from_slice(&x.to_be_bytes());
    }
    out
}

pub fn big(b: &[u8]) -> BigUint {
    BigUint::from_bytes_be(b)
}

pub fn to32(x: &BigUint) -> [u8; 32] {
    let v = x.to_bytes_be();
    assert!(v.len() <= 32);
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(&v);
    out
}

pub fn sub_small(b: &[u8; 32], k: u64) -> [u8; 32] {
    to32(&(big(b) - BigUint::from(k)))
}

pub fn p_big() -> BigUint {
    big(&be(&P))
}

pub fn n_big() -> BigUint {
    big(&be(&N))
}

pub fn affine_xy(p: &AffinePoint) -> ([u8; 32], [u8; 32]) {
    let e = p.to_encoded_point(false);
    ((*e.x().unwrap()).into(), (*e.y().unwrap()).into())
}

pub fn fast_key(vk: &VerifyingKey) -> Both {
    let (x, y) = affine_xy(vk.as_affine());
    Both::new(&x, &y).expect("valid key refused")
}

pub fn ref_key(x: &[u8; 32], y: &[u8; 32]) -> Option<VerifyingKey> {
    let ep = EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
    VerifyingKey::from_encoded_point(&ep).ok()
}

pub fn ref_verify(vk: &VerifyingKey, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    match Signature::from_slice(sig) {
        Ok(s) => vk.verify_prehash(digest, &s).is_ok(),
        Err(_) => false,
    }
}

pub fn sig_bytes(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

pub fn scalar_bytes(s: &Scalar) -> [u8; 32] {
    s.to_repr().into()
}

pub fn reduce_digest(d: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(d.into())
}

/// A valid signature over `digest` built from chosen u1, u2 (so R is known in advance):
/// R = u1·G + u2·Q, r = x(R) mod n, s = r/u2, and the digest must satisfy e = u1·s.
/// Returns (digest, sig, x(R)).
pub fn constructed(
    q: &ProjectivePoint,
    u1: &Scalar,
    u2: &Scalar,
) -> Option<([u8; 32], [u8; 64], [u8; 32])> {
    let big_r = ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, u1, q, u2).to_affine();
    if bool::from(big_r.is_identity()) {
        return None;
    }
    let xr: [u8; 32] = big_r.x().into();
    let r = reduce_digest(&xr);
    if bool::from(r.is_zero()) {
        return None;
    }
    let s = r * Option::<Scalar>::from(u2.invert())?;
    let e = *u1 * s;
    Some((
        scalar_bytes(&e),
        sig_bytes(&scalar_bytes(&r), &scalar_bytes(&s)),
        xr,
    ))
}

/// A key under test, verified through both paths: a fresh key object (first use: the
/// 256-bit path) and a prepared one (the split 2 × 128-bit path); the two must agree.
pub struct Both {
    pub x: [u8; 32],
    pub y: [u8; 32],
    pub prepared: P256VerifyingKey,
}

impl Both {
    pub fn new(x: &[u8; 32], y: &[u8; 32]) -> Option<Both> {
        let prepared = P256VerifyingKey::from_affine(x, y)?;
        prepared.prepare();
        assert!(prepared.is_prepared());
        Some(Both {
            x: *x,
            y: *y,
            prepared,
        })
    }
    pub fn fresh(&self) -> P256VerifyingKey {
        let k = P256VerifyingKey::from_affine(&self.x, &self.y).unwrap();
        assert!(!k.is_prepared());
        k
    }
    pub fn verify_prehashed(&self, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
        let a = self.fresh().verify_prehashed(digest, sig);
        let b = self.prepared.verify_prehashed(digest, sig);
        assert_eq!(
            a, b,
            "the two paths disagree: digest {digest:x?} sig {sig:x?}"
        );
        a
    }
    pub fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        let a = self.fresh().verify_sha256(msg, sig);
        let b = self.prepared.verify_sha256(msg, sig);
        assert_eq!(a, b, "the two paths disagree: msg {msg:x?} sig {sig:x?}");
        a
    }
}
