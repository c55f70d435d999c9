//! The arithmetic against num-bigint (the `rsa` crate's `BigUint`): the Montgomery building
//! blocks, RSAVP1 for any odd exponent, and the key policy of [`RsaVerifyingKey::new`].
//! Differential tests against the `rsa` crate and Wycheproof are in `tests/rsa.rs`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use ::rsa::BigUint;
use rand_core::{OsRng, RngCore};

mod bleichenbacher;
mod long_division;

fn big(l: &[u32]) -> BigUint {
    BigUint::from_slice(l)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    OsRng.fill_bytes(&mut v);
    v
}

fn random_below(n: usize) -> usize {
    (OsRng.next_u64() % n as u64) as usize
}

/// The building blocks against num-bigint, for an even and a padded (odd) limb count.
#[test]
fn montgomery_pieces() {
    for limbs in [64usize, 65, 66, 67, 97, 256] {
        let mut n: Vec<u32> = (0..limbs as u32)
            .map(|i| i.wrapping_mul(2_654_435_761).wrapping_add(12345))
            .collect();
        n[0] |= 1;
        *n.last_mut().unwrap() |= 0x8000_0000;
        let nb = big(&n);
        while !n.len().is_multiple_of(ROWS) {
            n.push(0);
        }
        let k = n.len();
        let rr = r_squared_mod(&n).unwrap();
        let r = BigUint::from(1u32) << (32 * k);
        assert_eq!(big(&rr), (&r * &r) % &nb, "rr");
        let mut a: Vec<u32> = (0..k as u32)
            .map(|i| i.wrapping_mul(40503).wrapping_add(7))
            .collect();
        let ab = big(&a) % &nb;
        a.fill(0);
        for (i, d) in ab.to_bytes_le().chunks(4).enumerate() {
            let mut w = [0u8; 4];
            w[..d.len()].copy_from_slice(d);
            a[i] = u32::from_le_bytes(w);
        }
        let mut inv = n[0];
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        let n0inv = inv.wrapping_neg();
        let mut t = vec![0u32; 2 * k];
        sqr_wide(&a, &mut t);
        assert_eq!(big(&t), &ab * &ab, "sqr_wide");
        mul_wide(&a, &rr, &mut t);
        assert_eq!(big(&t), &ab * big(&rr), "mul_wide");
        let mut x = vec![0u32; k];
        mont_mul(&a, &rr, &n, n0inv, &mut t, &mut x);
        assert_eq!(big(&x), (&ab * &r) % &nb, "to mont");
        let xm = x.clone();
        mont_sqr(&mut x, &n, n0inv, &mut t);
        assert_eq!(big(&x), (&ab * &ab * &r) % &nb, "sqr");
        let mut y = xm.clone();
        mont_mul_inplace(&mut y, &xm, &n, n0inv, &mut t);
        assert_eq!(big(&y), (&ab * &ab * &r) % &nb, "mul");
    }
}

/// RSAVP1 against num-bigint's modpow for random odd moduli of every size the policy allows
/// (any odd n works: primality plays no part in the verifier), several exponents (the
/// exponentiation loop handles any odd e; only e = 65537 is accepted by `new`) and random
/// bases, including sparse and dense moduli that stress the long division computing R² mod n.
/// Moduli outside the policy are refused.
#[test]
fn modpow_matches_biguint() {
    let mut sizes: Vec<usize> = vec![
        2048, 2049, 2055, 2056, 2057, 2079, 2080, 2081, 3072, 4095, 4096,
    ];
    for _ in 0..10 {
        sizes.push(MIN_BITS + random_below(MAX_BITS - MIN_BITS + 1));
    }
    let refused_sizes = [1024usize, 2047, 4097, 6000, 8191, 8192];
    let mut checked = 0;
    for &bits in sizes.iter().chain(&refused_sizes) {
        let in_policy = (MIN_BITS..=MAX_BITS).contains(&bits);
        let len = bits.div_ceil(8);
        let top_bits = bits - 8 * (len - 1);
        let shape = |kind: usize| -> Vec<u8> {
            let mut n = match kind {
                0 => random_bytes(len),
                1 => vec![0xff; len],
                _ => vec![0; len],
            };
            n[0] &= ((1u16 << top_bits) - 1) as u8;
            n[0] |= 1 << (top_bits - 1);
            n[len - 1] |= 1;
            n
        };
        for kind in 0..3 {
            let n = shape(kind);
            let nb = BigUint::from_bytes_be(&n);
            assert_eq!(nb.bits(), bits);
            for e in [3u32, EXPONENT, 0xffff_ffff, (OsRng.next_u32() | 1).max(3)] {
                let key = RsaVerifyingKey::with_exponent(&n, e);
                assert_eq!(
                    RsaVerifyingKey::new(&n, &e.to_be_bytes()).is_some(),
                    in_policy && e == EXPONENT,
                    "bits {bits} e {e}"
                );
                let Some(key) = key else {
                    assert!(!in_policy, "bits {bits} e {e} refused");
                    continue;
                };
                assert!(in_policy, "bits {bits} accepted");
                assert_eq!(key.bits(), bits);
                assert_eq!(key.size(), len);
                assert_eq!(key.exponent(), e);
                for _ in 0..3 {
                    let s = BigUint::from_bytes_be(&random_bytes(len)) % &nb;
                    let mut sb = s.to_bytes_be();
                    while sb.len() < len {
                        sb.insert(0, 0);
                    }
                    let m = key.public_op(&sb).unwrap();
                    assert_eq!(m.len(), len);
                    assert_eq!(
                        BigUint::from_bytes_be(&m),
                        s.modpow(&BigUint::from(e), &nb),
                        "bits {bits} kind {kind} e {e}"
                    );
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} modpow results agree");
}

#[test]
fn key_validation() {
    let n = {
        let mut n = random_bytes(256);
        n[0] |= 0x80;
        n[255] |= 1;
        n
    };
    let e = [1u8, 0, 1];
    assert!(RsaVerifyingKey::new(&n, &e).is_some());
    // leading zeros are ignored
    let mut padded = vec![0, 0];
    padded.extend(&n);
    assert_eq!(
        RsaVerifyingKey::new(&padded, &[0, 1, 0, 1]),
        RsaVerifyingKey::new(&n, &e)
    );
    // even modulus
    let mut even = n.clone();
    even[255] &= 0xfe;
    assert!(RsaVerifyingKey::new(&even, &e).is_none());
    // too small / too large
    assert!(RsaVerifyingKey::new(&n[1..], &e).is_none());
    let mut small = n[1..].to_vec();
    small[0] |= 0x80;
    assert!(RsaVerifyingKey::new(&small, &e).is_none());
    let mut over = vec![0x01];
    over.extend(random_bytes(512));
    over[512] |= 1;
    assert!(RsaVerifyingKey::new(&over, &e).is_none(), "4097 bits");
    let mut huge = vec![0x80];
    huge.extend(random_bytes(1023));
    huge[1023] |= 1;
    assert!(RsaVerifyingKey::new(&huge, &e).is_none(), "8192 bits");
    let mut max = vec![0x80];
    max.extend(random_bytes(511));
    max[511] |= 1;
    assert_eq!(RsaVerifyingKey::new(&max, &e).unwrap().bits(), MAX_BITS);
    assert!(RsaVerifyingKey::new(&[], &e).is_none());
    assert!(RsaVerifyingKey::new(&[0, 0], &e).is_none());
    // exponents: 65537 only, however spelled with leading zeros
    for bad in [
        &[][..],
        &[0],
        &[1],
        &[2],
        &[3],
        &[0, 0, 0, 0, 3],
        &[1, 0, 0],
        &[1, 0, 3],
        &[1, 1, 1],
        &[0, 1, 0, 0],
        &[1, 0, 0, 0, 1],
        &[1, 0, 1, 0],
        &[0xff, 0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0xfe],
    ] {
        assert!(RsaVerifyingKey::new(&n, bad).is_none(), "{bad:?}");
    }
    for good in [&[1u8, 0, 1][..], &[0, 1, 0, 1], &[0, 0, 0, 0, 0, 1, 0, 1]] {
        let key = RsaVerifyingKey::new(&n, good).unwrap();
        assert_eq!(key.exponent(), EXPONENT, "{good:?}");
    }
    // the arithmetic's own limits (below the policy): odd, 3 ≤ e < 2³²
    for (e, ok) in [
        (1, false),
        (2, false),
        (3, true),
        (65536, false),
        (u32::MAX, true),
    ] {
        assert_eq!(RsaVerifyingKey::with_exponent(&n, e).is_some(), ok, "{e}");
    }
}

/// An odd modulus of exactly `bits` bits (big-endian, no leading zero octet).
fn odd_modulus(bits: usize) -> Vec<u8> {
    let len = bits.div_ceil(8);
    let top_bits = bits - 8 * (len - 1);
    let mut n = random_bytes(len);
    n[0] &= ((1u16 << top_bits) - 1) as u8;
    n[0] |= 1 << (top_bits - 1);
    n[len - 1] |= 1;
    assert_eq!(BigUint::from_bytes_be(&n).bits(), bits);
    n
}

/// The key policy's limits, each refusal next to a control that differs only in the refused
/// property, so that the refusal is shown to be for that reason. (`new` has one way to say
/// no: `None`.) Sizes: one bit either side of [`MIN_BITS`] and [`MAX_BITS`], far outside, and
/// with leading zero octets (the size is the value's, not the encoding's). Exponents: 0, 1,
/// 2, 3, even ones next to 65537, 65537 with extra octets, 2^32 + 1, a 2048-bit e, e = n;
/// the arithmetic's own limits (`with_exponent`: odd, ≥ 3, < 2^32) likewise.
#[test]
fn key_limits_refused_for_their_reason() {
    let e = [1u8, 0, 1];
    for (bits, ok) in [
        (17, false),
        (1024, false),
        (MIN_BITS - 1, false),
        (MIN_BITS, true),
        (MIN_BITS + 1, true),
        (MAX_BITS - 1, true),
        (MAX_BITS, true),
        (MAX_BITS + 1, false),
        (MAX_BITS + 32, false),
        (2 * MAX_BITS, false),
        (16384, false),
    ] {
        let n = odd_modulus(bits);
        let key = RsaVerifyingKey::new(&n, &e);
        assert_eq!(key.is_some(), ok, "{bits} bits");
        assert_eq!(RsaVerifyingKey::with_exponent(&n, EXPONENT).is_some(), ok);
        if let Some(k) = key {
            assert_eq!((k.bits(), k.size()), (bits, bits.div_ceil(8)));
        }
        let mut padded = vec![0u8; 300];
        padded.extend(&n);
        assert_eq!(
            RsaVerifyingKey::new(&padded, &e),
            RsaVerifyingKey::new(&n, &e),
            "{bits}"
        );
        // the same size, even: refused whatever the size
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(
            RsaVerifyingKey::new(&even, &e).is_none(),
            "{bits} bits, even"
        );
    }
    // 2047 bits in 256 octets (top bit clear) vs the same octets with the top bit set
    let mut n = odd_modulus(MIN_BITS);
    n[0] &= 0x7f;
    assert!(RsaVerifyingKey::new(&n, &e).is_none());
    n[0] |= 0x80;
    assert!(RsaVerifyingKey::new(&n, &e).is_some());

    let n = odd_modulus(MIN_BITS);
    assert!(RsaVerifyingKey::new(&n, &e).is_some(), "the control");
    let mut long_zeros = vec![0u8; 1000];
    long_zeros.extend(e);
    assert_eq!(
        RsaVerifyingKey::new(&n, &long_zeros).unwrap().exponent(),
        EXPONENT
    );
    let huge = {
        let mut h = random_bytes(256);
        h[0] |= 0x80;
        h[255] |= 1;
        h
    };
    for bad in [
        vec![],
        vec![0],
        vec![1],
        vec![2],
        vec![3],
        vec![1, 0, 0],       // 65536, even
        vec![1, 0, 2],       // 65538, even
        vec![1, 0, 3],       // 65539
        vec![0, 1, 0, 0],    // 65536 with a leading zero
        vec![1, 0, 1, 0],    // 65537·256, even
        vec![1, 0, 1, 1],    // 65537·256 + 1
        vec![1, 0, 1, 0, 1], // 2^32 + 65537
        vec![1, 0, 0, 0, 1], // 2^32 + 1
        vec![0xff; 4],       // 2^32 − 1
        vec![1, 0, 0, 0, 0, 0, 0, 0, 1],
        huge,
        n.clone(),
    ] {
        assert!(
            RsaVerifyingKey::new(&n, &bad).is_none(),
            "e = {}",
            hex::encode(&bad)
        );
    }
    // the arithmetic's limits: e = 0, 1 (RSAVP1 would be the identity), 2 and even e refused
    for (e, ok) in [
        (0, false),
        (1, false),
        (2, false),
        (3, true),
        (4, false),
        (65536, false),
        (65538, false),
        (EXPONENT, true),
        (u32::MAX - 1, false),
        (u32::MAX, true),
    ] {
        assert_eq!(
            RsaVerifyingKey::with_exponent(&n, e).is_some(),
            ok,
            "e = {e}"
        );
    }
}
