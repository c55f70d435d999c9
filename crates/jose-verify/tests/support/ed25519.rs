//! Helpers shared by the Ed25519 unit tests (`src/ed25519/tests.rs`) and integration tests
//! (`tests/ed25519.rs`): big-integer references and the small-order encodings.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ::rsa::BigUint;
use rand_core::{OsRng, RngCore};

/// `ED25519_ITERS=<factor>` scales the random tests.
pub fn iters(base: usize) -> usize {
    let f: usize = std::env::var("ED25519_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * f
}

pub fn p() -> BigUint {
    (BigUint::from(1u8) << 255usize) - BigUint::from(19u8)
}

pub fn ell() -> BigUint {
    (BigUint::from(1u8) << 252usize)
        + BigUint::parse_bytes(b"14def9dea2f79cd65812631a5cf5d3ed", 16).unwrap()
}

pub fn le32(x: &BigUint) -> [u8; 32] {
    let mut v = x.to_bytes_le();
    v.resize(32, 0);
    v.try_into().unwrap()
}

pub fn value(b: &[u8; 32]) -> BigUint {
    BigUint::from_bytes_le(b)
}

pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// The y of every small-order point, canonical and (where y + p < 2^255) non-canonical.
pub fn small_order_encodings() -> Vec<[u8; 32]> {
    let p = p();
    let mut out = Vec::new();
    // y = 1, −1, 0 and the two y of the order-8 points
    // the order-8 encoding listed in "Taming the many EdDSAs" (little-endian)
    let y8 = BigUint::from_bytes_le(
        &hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a").unwrap(),
    );
    for y in [
        BigUint::from(1u8),
        &p - 1u8,
        BigUint::from(0u8),
        y8.clone(),
        &p - &y8,
    ] {
        for sign in [0u8, 0x80] {
            for yy in [y.clone(), &y + &p] {
                if yy >= (BigUint::from(1u8) << 255usize) {
                    continue;
                }
                let mut b = le32(&yy);
                b[31] |= sign;
                out.push(b);
            }
        }
    }
    out
}

/// Every non-canonical encoding of a y coordinate: y' = y + p for the y with y + p < 2^255
/// (y = 0 … 18), with either sign bit: 38 encodings, as (y, encoding). Which of them decode,
/// and which are small order, is for the caller to check.
pub fn non_canonical_encodings() -> Vec<(u8, [u8; 32])> {
    let p = p();
    let mut out = Vec::new();
    for y in 0u8..19 {
        let yy = &p + BigUint::from(y);
        assert!(yy < (BigUint::from(1u8) << 255usize));
        for sign in [0u8, 0x80] {
            let mut b = le32(&yy);
            b[31] |= sign;
            out.push((y, b));
        }
    }
    assert!(
        &p + 19u8 == BigUint::from(1u8) << 255usize,
        "y = 19 is the first without"
    );
    out
}

/// The canonical encoding of the small y with the sign bit of `nc`.
pub fn canonical_twin(y: u8, nc: &[u8; 32]) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = y;
    b[31] |= nc[31] & 0x80;
    b
}
