//! Bleichenbacher's 2006 signature forgery against a real e = 3 key: with e = 3 and a
//! 2048-bit modulus, s³ < n for any s < 2^682, so a forger picks s as a cube root of an
//! encoded message with the right *beginning* (garbage after the DigestInfo and hash) or the
//! right *end* (garbage in the padding), and a verifier that parses the encoded message
//! instead of comparing it whole accepts it. The policy refuses e = 3 keys outright
//! ([`RsaVerifyingKey::new`]); the arithmetic accepts them (`with_exponent`), so these tests
//! show the encoded-message check itself refuses every forgery, while a genuine signature by
//! the same key verifies and a lax reference parser (written here, as the vulnerable
//! verifiers were) accepts the forgeries, which proves they are real.

use super::*;
use ::rsa::traits::PublicKeyParts;
use ::rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

/// p of the e = 3 key (2048-bit n, p ≡ q ≡ 2 mod 3), hex.
const E3_P: &[&str] = &[
    "fb2da4e53de905bc8db40d894e4a17ed1f06d3f3b7bf94cba69cf8fe7404044567cab834c91ea595808eaed5",
    "a284f5684daff65f82aa1e6e642b58ca1432393c2066fce9e24742b7ac4f240cfe3f7eb93328e6173ea3c2e6",
    "267a448d0fa497193d2b90290f35377b3cbea3f3b36c0bf16d3563112fe686babc5d467bbfb3110b",
];
/// q of the e = 3 key.
const E3_Q: &[&str] = &[
    "c95f9c29ca7f482c8efae650e794b1fdf984e93de9d177a670ae602e0fe903a88e043cd10d7788ba5517bc7a",
    "c71a116c1299fb2d40b1562b251a38c0a883232d3c085c62f126958368c06c5b129b10219a067935faa2ebb6",
    "8b748176f884370280d6394a018010cb0bc572238d14efa6d0d7cc5043244da6decb72880f909bdb",
];

/// `DigestInfo` for SHA-256 with the NULL parameter (RFC 8017 §9.2 note 1).
const DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

pub(super) fn hex_big(parts: &[&str]) -> BigUint {
    BigUint::parse_bytes(parts.concat().as_bytes(), 16).unwrap()
}

fn be_bytes(x: &BigUint, len: usize) -> Vec<u8> {
    let v = x.to_bytes_be();
    assert!(v.len() <= len);
    let mut out = vec![0u8; len - v.len()];
    out.extend(v);
    out
}

/// The e = 3 key, made by the `rsa` crate from its primes.
fn e3_key() -> RsaPrivateKey {
    let sk = RsaPrivateKey::from_p_q(hex_big(E3_P), hex_big(E3_Q), BigUint::from(3u8)).unwrap();
    sk.validate().unwrap();
    assert_eq!(sk.n().bits(), 2048);
    sk
}

/// A verifier of the kind Bleichenbacher broke: `00 01`, then FF octets up to a zero, the
/// DigestInfo and the hash read from there on, and whatever follows ignored.
fn lax_prefix_parser(em: &[u8], digest: &[u8; 32]) -> bool {
    if em.get(..2) != Some(&[0, 1]) {
        return false;
    }
    let mut i = 2;
    while em.get(i) == Some(&0xff) {
        i += 1;
    }
    em.get(i) == Some(&0)
        && em.get(i + 1..i + 20) == Some(&DIGEST_INFO[..])
        && em.get(i + 20..i + 52) == Some(&digest[..])
}

/// The other kind: `00 01`, then anything, and the encoded message ends with
/// `00 ‖ DigestInfo ‖ H` (the padding string is never checked).
fn lax_suffix_parser(em: &[u8], digest: &[u8; 32]) -> bool {
    let mut tail = vec![0u8];
    tail.extend(DIGEST_INFO);
    tail.extend(digest);
    em.starts_with(&[0, 1]) && em.ends_with(&tail)
}

/// The odd x < 2^bits with x³ ≡ c (mod 2^bits), c odd (cubing permutes the odd residues):
/// bit by bit, since adding 2^i to x changes x³ by 3x²·2^i ≡ 2^i (mod 2^(i+1)).
fn cube_root_mod_2k(c: &BigUint, bits: usize) -> BigUint {
    let one = BigUint::from(1u8);
    let bit = |v: &BigUint, i: usize| (v >> i) & &one == one;
    assert!(bit(c, 0));
    let mut x = one.clone();
    for i in 1..bits {
        if bit(&((&x * &x * &x) ^ c), i) {
            x += &one << i;
        }
    }
    let m = BigUint::from(1u8) << bits;
    assert_eq!((&x * &x * &x) % &m, c % &m);
    x
}

/// Forgery 1 (garbage after the hash): s = ⌊∛(EM_max)⌋ for the 256-octet message
/// `00 01 FF×ps 00 ‖ DigestInfo ‖ H ‖ garbage` with the largest garbage; then s³ keeps the
/// prefix (consecutive cubes are ≈ 2^1366 apart, the garbage spans ≥ 2^1360·…).
fn garbage_after_the_hash(digest: &[u8; 32], ps: usize) -> BigUint {
    let mut prefix = vec![0u8, 1];
    prefix.extend(std::iter::repeat_n(0xff, ps));
    prefix.push(0);
    prefix.extend(DIGEST_INFO);
    prefix.extend(digest);
    let garbage_bits = 8 * (256 - prefix.len());
    let top = BigUint::from_bytes_be(&prefix) << garbage_bits;
    let s = (&top + (BigUint::from(1u8) << garbage_bits) - 1u8).cbrt();
    let cube = &s * &s * &s;
    assert!(cube >= top && cube >> garbage_bits == BigUint::from_bytes_be(&prefix));
    s
}

/// Forgery 2 (garbage in the padding): the last 53 octets of s³ are `00 ‖ DigestInfo ‖ H`
/// (s's low 424 bits are the cube root of that modulo 2^424; H must be odd), the first ten are
/// `00 01 FF×8` (s's high bits are those of ∛ of the middle of that range): between them,
/// whatever the cube makes.
fn garbage_in_the_padding(digest: &[u8; 32]) -> BigUint {
    let mut tail = vec![0u8];
    tail.extend(DIGEST_INFO);
    tail.extend(digest);
    let low_bits = 8 * tail.len();
    let low = cube_root_mod_2k(&BigUint::from_bytes_be(&tail), low_bits);
    let head = [0u8, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let head_shift = 8 * (256 - head.len());
    let target =
        (BigUint::from_bytes_be(&head) << head_shift) + (BigUint::from(1u8) << (head_shift - 1));
    let high = target.cbrt() >> low_bits << low_bits;
    high + low
}

#[test]
fn bleichenbacher_forgeries_against_an_e3_key_are_refused() {
    let sk = e3_key();
    let pk = RsaPublicKey::from(&sk);
    let n_be = pk.n().to_bytes_be();
    // the policy refuses the key; the arithmetic takes it (the checks below run on it)
    assert!(RsaVerifyingKey::new(&n_be, &[3]).is_none());
    let key = RsaVerifyingKey::with_exponent(&n_be, 3).unwrap();
    let pkcs1 = || Pkcs1v15Sign::new::<Sha256>();

    let mut forged = 0;
    let mut attempt = 0u32;
    while forged < 12 {
        attempt += 1;
        let digest: [u8; 32] = Sha256::digest(attempt.to_be_bytes()).into();
        // a genuine signature by the same key verifies (on the lax parsers too)
        let genuine = sk.sign(pkcs1(), &digest).unwrap();
        assert!(key.verify_pkcs1v15_sha256(&digest, &genuine));
        let em = key.public_op(&genuine).unwrap();
        assert!(lax_prefix_parser(&em, &digest) && lax_suffix_parser(&em, &digest));

        let mut forgeries: Vec<(String, BigUint, bool)> = [0usize, 1, 8, 32]
            .iter()
            .map(|&ps| {
                (
                    format!("garbage after the hash, {ps} FF"),
                    garbage_after_the_hash(&digest, ps),
                    true,
                )
            })
            .collect();
        if digest[31] & 1 == 1 {
            forgeries.push((
                "garbage in the padding".into(),
                garbage_in_the_padding(&digest),
                false,
            ));
        }
        for (what, s, prefix_kind) in forgeries {
            assert!(&s < pk.n());
            let sig = be_bytes(&s, 256);
            // the forgery is real: s³ < n, so RSAVP1 yields the crafted message exactly …
            let em = key.public_op(&sig).unwrap();
            assert_eq!(BigUint::from_bytes_be(&em), &s * &s * &s, "{what}: s³ < n");
            if prefix_kind {
                assert!(
                    lax_prefix_parser(&em, &digest),
                    "{what}: {}",
                    hex::encode(&em)
                );
            } else {
                assert!(
                    lax_suffix_parser(&em, &digest),
                    "{what}: {}",
                    hex::encode(&em)
                );
                assert!(
                    em[10..203].iter().any(|b| *b != 0xff),
                    "{what}: garbage in PS"
                );
            }
            // … and refused, here and by the rsa crate
            assert!(!key.verify_pkcs1v15_sha256(&digest, &sig), "{what}");
            assert!(!key.verify_pss_sha256(&digest, &sig, 32), "{what}");
            assert!(pk.verify(pkcs1(), &digest, &sig).is_err(), "{what}");
            forged += 1;
        }
    }
    assert!(forged >= 12);
}
