//! The add-back step (Knuth's D6) of the long division computing R² mod n: it runs when the
//! quotient digit estimated from the top limbs is one too large, about once per 2^31 random
//! quotient digits, so random moduli never reach it. These moduli do, by construction:
//!
//! - s = 31 (bit length ≡ 1 mod 32), n = 2^(32(L−1)) + low with limbs L−2 = 0 and L−3 ≤ 1:
//!   the normalised divisor's top two limbs are 2^63, the first estimate is 1 and exact for
//!   those limbs, and the lower limbs make it one too large: add-back at the first digit;
//! - any shift s: the normalised top limbs V₂ = ⌊2^(s+64) / q₀⌋ for a q₀ ∈ (2^s, 2^(s+1)], the
//!   lower limbs nearly all ones: at the second digit the estimate is q₀, and q₀·n exceeds
//!   the partial remainder (for s = 0 this is every n with top 64 bits 0x8000…0);
//! - two real keys from those families (primes hard-coded, the second prime chosen next to
//!   ⌈2^k / p⌉): signatures made by the `rsa` crate verify, and bit flips do not.
//!
//! Each result is checked against R² mod n computed bit by bit (double, subtract: no
//! division at all) and against num-bigint; the add-back counter of `division.rs` shows the
//! step ran.

use super::bleichenbacher::hex_big;
use super::*;
use ::rsa::traits::PublicKeyParts;
use ::rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

/// p of a 2048-bit e = 65537 key with n ∈ (2^2047, 2^2047 + 2^1984): R² mod n takes the add-back step (at the second quotient digit).
const AB0_P: &[&str] = &[
    "c4de8423b111915247c01879799fff5ad90dd93ae4d077d690882725eb2832af763dcaf6e8e0a418bb1076f3",
    "2ceb0c2ff7b7e1d1d193cd5b369a8904b42eeb020216b7c506b3f9d78ee60fbea668a6b8d5bf38e40e389460",
    "ca3fb8a39a180d5f514127b44f8e60d417820419dc6ee783d6880825a0dcb6563a3e1c5a86115f6b",
];
/// q of that key (the prime after ⌈2^2047 / p⌉).
const AB0_Q: &[&str] = &[
    "a6720e993d365e48e6e565dc3f6af54475420f5afa2224db5e4405f019fcbfebb886f54ff51be7642de8a2fb",
    "b68376b8aebf1289b0874fc4ec7a639e864d2e28a2fbe67cc99c039590db6398a36554f99837b3886ee0fb3f",
    "d03eb712686d00779379727e6eeb59fec81e598a07184679038333c9e48a042baed40731d16fe043",
];
/// p of a 2049-bit e = 65537 key with n ∈ (2^2048, 2^2048 + 2^1984): R² mod n takes the add-back step at the first quotient digit.
const AB31_P: &[&str] = &[
    "1a8b201697603051d84cdc4124e4bd3121a07d7556d19bab44fab341d7161ffa90e5aeaafb1fbf4c92cd6304",
    "378d3178c631a82ef64272081265a90546989e432fce5b412c88ad133fdafb76279bbb30425946bcc8f77fe8",
    "e56c9f5b9b7b9baf3c01126572733e9a20f874f4b63a0de43a3ed523695dc546a54c2b39e62a2015f",
];
/// q of that key (the prime after ⌈2^2048 / p⌉).
const AB31_Q: &[&str] = &[
    "9a501f0ece3d9d8cb988f8189328ab62127482e2c3f1c70cea84082f9dd7ff0c405e6a7d966daf3e81064fa1",
    "a9119620d0adf74027cc047e948fb55533e8b6e315d0b8cebe27595eede7a7cc7a01fcc4c7b5f6f9b7b353c1",
    "3aaf912552e09ce216c159eb8177b41d224ee31fb57da62682e05cebb19727d0c693c36b387235b1",
];

/// R² mod n, R = 2^(32k), by 64k doublings with a conditional subtraction: the schoolbook
/// reference, on little-endian u32 limbs (k = n.len()).
fn r_squared_schoolbook(n: &[u32]) -> Vec<u32> {
    let k = n.len();
    let mut r = vec![0u32; k + 1];
    r[0] = 1;
    let geq = |a: &[u32], b: &[u32]| -> bool {
        // a has one more limb than b
        if a[k] != 0 {
            return true;
        }
        for i in (0..k).rev() {
            if a[i] != b[i] {
                return a[i] > b[i];
            }
        }
        true
    };
    for _ in 0..64 * k {
        let mut carry = 0u32;
        for x in r.iter_mut() {
            let v = (*x << 1) | carry;
            carry = *x >> 31;
            *x = v;
        }
        if geq(&r, n) {
            let mut borrow = 0i64;
            for (i, x) in r.iter_mut().enumerate() {
                let v = i64::from(*x) - i64::from(*n.get(i).unwrap_or(&0)) - borrow;
                *x = v as u32;
                borrow = i64::from(v < 0);
            }
        }
    }
    assert_eq!(r[k], 0);
    r.truncate(k);
    r
}

fn limbs_of(n: &BigUint) -> Vec<u32> {
    let mut l: Vec<u32> = n
        .to_bytes_le()
        .chunks(4)
        .map(|c| {
            c.iter()
                .rev()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
        })
        .collect();
    while !l.len().is_multiple_of(ROWS) {
        l.push(0);
    }
    l
}

/// R² mod n by the long division, with the number of add-backs it took; checked against the
/// schoolbook and num-bigint, and RSAVP1 of the key made from n against modpow.
fn checked_r_squared(n: &BigUint) -> u64 {
    let l = limbs_of(n);
    add_back::take();
    let rr = r_squared_mod(&l).unwrap();
    let add_backs = add_back::take();
    assert_eq!(
        rr,
        r_squared_schoolbook(&l),
        "R² mod n, {}-bit n {n:x}",
        n.bits()
    );
    let r = BigUint::from(1u8) << (32 * l.len());
    assert_eq!(big(&rr), (&r * &r) % n);
    let key = RsaVerifyingKey::new(&n.to_bytes_be(), &[1, 0, 1]).unwrap();
    let len = key.size();
    for _ in 0..2 {
        let s = BigUint::from_bytes_be(&random_bytes(len)) % n;
        let mut sb = s.to_bytes_be();
        sb.splice(0..0, std::iter::repeat_n(0, len - sb.len()));
        let m = key.public_op(&sb).unwrap();
        assert_eq!(
            BigUint::from_bytes_be(&m),
            s.modpow(&BigUint::from(65537u32), n)
        );
    }
    add_backs
}

fn random_big(bits: usize) -> BigUint {
    BigUint::from_bytes_be(&random_bytes(bits.div_ceil(8))) >> (8 * bits.div_ceil(8) - bits)
}

/// Family 1 (s = 31, first digit).
fn first_digit_family(bits: usize, limb_l3: u32) -> BigUint {
    assert_eq!(bits % 32, 1);
    let l = bits.div_ceil(32);
    let low = random_big(32 * (l - 3)) | BigUint::from(1u8);
    (BigUint::from(1u8) << (32 * (l - 1))) + (BigUint::from(limb_l3) << (32 * (l - 3))) + low
}

/// Family 2 (any s, second digit).
fn second_digit_family(bits: usize) -> BigUint {
    let l = bits.div_ceil(32);
    let s = 32 * l - bits;
    // q₀ ∈ (2^s, 2^(s+1)] and below 2^32
    let span = (1u64 << s).min((1u64 << 32) - 1 - (1u64 << s));
    let q0 = (1u64 << s) + 1 + OsRng.next_u64() % span;
    let v2 = (BigUint::from(1u8) << (s + 64)) / BigUint::from(q0);
    assert!(v2.bits() == 64, "normalised top limbs");
    // lower limbs: b^(l−2) − 2^s·(odd < 2^(32(l−2) − s − 40)), so n = vn >> s is odd
    let lower_bits = 32 * (l - 2);
    let dent = (random_big(lower_bits - s - 40) << 1) + 1u8;
    let vn = (v2 << lower_bits) + (BigUint::from(1u8) << lower_bits) - (dent << s);
    let n = vn >> s;
    assert_eq!(n.bits(), bits);
    n
}

#[test]
fn moduli_that_take_the_add_back_step() {
    let mut tally = Vec::new();
    for bits in [2049usize, 2081, 3073, 4065] {
        for l3 in [0u32, 1] {
            let n = first_digit_family(bits, l3);
            let a = checked_r_squared(&n);
            assert!(a >= 1, "{bits} bits, first-digit family: no add-back");
            tally.push((bits, "first digit", a));
        }
    }
    for bits in [
        2048usize, 2049, 2050, 2063, 2079, 2080, 2081, 2100, 3072, 4000, 4095, 4096,
    ] {
        for _ in 0..2 {
            let n = second_digit_family(bits);
            let a = checked_r_squared(&n);
            assert!(
                a >= 1,
                "{bits} bits, second-digit family: no add-back, n = {n:x}"
            );
            tally.push((bits, "second digit", a));
        }
    }
    // random moduli of the same sizes (the add-back is a 2^-31 event per digit: these are
    // the control, their count is reported, not asserted)
    let mut random_add_backs = 0;
    for bits in [2048usize, 2049, 3072, 4096] {
        let mut n = random_big(bits) | BigUint::from(1u8);
        n |= BigUint::from(1u8) << (bits - 1);
        random_add_backs += checked_r_squared(&n);
    }
    println!("add-backs per modulus: {tally:?}; random moduli: {random_add_backs}");
}

/// Real e = 65537 keys whose moduli take the add-back step, through the public API:
/// signatures made by the `rsa` crate (PKCS#1 v1.5 and PSS) verify, bit flips do not.
#[test]
fn real_keys_that_take_the_add_back_step() {
    for (p, q, bits) in [(AB0_P, AB0_Q, 2048usize), (AB31_P, AB31_Q, 2049)] {
        let sk = RsaPrivateKey::from_p_q(hex_big(p), hex_big(q), BigUint::from(65537u32)).unwrap();
        sk.validate().unwrap();
        let pk = RsaPublicKey::from(&sk);
        assert_eq!(pk.n().bits(), bits);
        assert!(
            checked_r_squared(pk.n()) >= 1,
            "{bits}-bit key: no add-back"
        );
        add_back::take();
        let key = RsaVerifyingKey::new(&pk.n().to_bytes_be(), &pk.e().to_bytes_be()).unwrap();
        assert!(
            add_back::take() >= 1,
            "making the key takes the add-back step"
        );
        for i in 0..4u8 {
            let digest: [u8; 32] = Sha256::digest([i]).into();
            let sig = sk.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap();
            let psig = sk
                .sign_with_rng(&mut OsRng, Pss::new_with_salt::<Sha256>(32), &digest)
                .unwrap();
            assert!(key.verify_pkcs1v15_sha256(&digest, &sig), "{bits} bits");
            assert!(key.verify_pss_sha256(&digest, &psig, 32), "{bits} bits");
            for _ in 0..4 {
                let mut bad = sig.clone();
                let bit = random_below(bad.len() * 8);
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!key.verify_pkcs1v15_sha256(&digest, &bad));
                assert!(pk
                    .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &bad)
                    .is_err());
                let mut bad = psig.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!key.verify_pss_sha256(&digest, &bad, 32));
                assert!(pk
                    .verify(Pss::new_with_salt::<Sha256>(32), &digest, &bad)
                    .is_err());
            }
        }
    }
}
