//! Differential fuzzing of `jose_verify::rsa` (RS256, PS256 and RSAVP1) against the RustCrypto
//! `rsa` crate: `Pkcs1v15Sign::new::<Sha256>()`, `pss::VerifyingKey::<Sha256>` with explicit
//! salt lengths (the prehash verifier, which like RFC 8017 refuses a signature ≥ n; the `Pss`
//! scheme's `RsaPublicKey::verify` does not check that, so s + n would "verify" there) and
//! `BigUint::modpow`. Verdicts and key validity must agree.
//!
//! Keys (rsa_keys.rs, loaded once into a `OnceLock`; no key generation per input): six
//! two-prime public keys and six multi-prime key pairs, each set of 2048, 2049, 2084, 3072,
//! 4095 and 4096 bits. The multi-prime keys sign: ~128-bit primes make the CRT private
//! operation cheap, which a fuzz target needs (the reference's bignum arithmetic under ASan and
//! coverage instrumentation costs ~10 ms per 2048-bit public operation; a two-prime private
//! one would cost ~300 ms). Each comparison runs three reference modpows: RS256, PS256 with
//! one salt length, RSAVP1. Input: a mode byte, then
//! - mode 0 (raw): any key, a digest, a salt length and a signature of any length (or
//!   0, 1, n − 1, n, n + 1, all-ones): RS256, PS256 with salt 32 or the fuzz salt, RSAVP1;
//! - mode 1 (raw key): a fuzz modulus (1920–4320 bits, optionally forced odd / full length)
//!   and exponent: `RsaVerifyingKey::new` must accept exactly the keys the `rsa` crate
//!   accepts that are inside our policy (2048–4096 bits, e = 65537), also with leading zero
//!   octets; then the same comparisons with a fuzz signature;
//! - modes 2, 3 (structured): a real signature by a multi-prime key (PKCS#1 v1.5, or PSS with
//!   salt 32 or a fuzz salt length, the salt from a seeded ChaCha8) over a fuzz digest; then one
//!   mutation (none: both must accept): bit flips, truncation, a prepended or appended zero,
//!   s + n, n − s, a byte set, a digest bit flipped, another key, or edits of the *encoded
//!   message* re-signed with the private key (so that every byte of the padding, the
//!   DigestInfo, the PSS salt, H, 0xbc and the top bits gets exercised behind a correct
//!   exponentiation); the verdicts under both schemes (PSS with the signing salt length, 32,
//!   or one more or one less) must agree.
#![no_main]

mod rsa_keys;

use jose_verify::rsa::RsaVerifyingKey;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rsa::sha2::Sha256;
use rsa::signature::hazmat::PrehashVerifier;
use rsa::traits::PublicKeyParts;
use rsa::{pss, BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use std::sync::OnceLock;

const E: [u8; 3] = [1, 0, 1];

struct Key {
    size: usize,
    n: BigUint,
    n_be: Vec<u8>,
    public: RsaPublicKey,
    /// For the multi-prime keys.
    private: Option<RsaPrivateKey>,
    ours: RsaVerifyingKey,
}

impl Key {
    fn new(bits: usize, n: &str, private: Option<(&str, &[&str])>) -> Key {
        let n = unhex(n);
        assert_eq!(n.bits(), bits);
        let e = BigUint::from_bytes_be(&E);
        let public = RsaPublicKey::new(n.clone(), e.clone()).unwrap();
        let private = private.map(|(d, primes)| {
            let primes = primes.iter().map(|p| unhex(p)).collect();
            let k = RsaPrivateKey::from_components(n.clone(), e, unhex(d), primes).unwrap();
            assert_eq!(k.to_public_key(), public);
            k
        });
        let n_be = n.to_bytes_be();
        let ours = RsaVerifyingKey::new(&n_be, &E).unwrap();
        assert_eq!(ours.bits(), bits);
        Key {
            size: public.size(),
            n,
            n_be,
            public,
            private,
            ours,
        }
    }
}

fn unhex(s: &str) -> BigUint {
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    };
    let b: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    BigUint::from_bytes_be(&b)
}

/// The multi-prime (signing) keys first, then the two-prime ones.
fn keys() -> &'static [Key] {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signing = rsa_keys::SIGNING
            .iter()
            .map(|&(bits, n, d, primes)| Key::new(bits, n, Some((d, primes))));
        let real = rsa_keys::REAL
            .iter()
            .map(|&(bits, n)| Key::new(bits, n, None));
        signing.chain(real).collect()
    })
}

/// The input as a stream; reads past the end give zeros, so every input is usable.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.arr())
    }
    fn arr<const K: usize>(&mut self) -> [u8; K] {
        let mut out = [0u8; K];
        for o in out.iter_mut() {
            *o = self.u8();
        }
        out
    }
    fn vec(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// `x` as exactly `len` big-endian octets (x < 2^(8·len)), or its minimal encoding if longer.
fn be(x: &BigUint, len: usize) -> Vec<u8> {
    let b = x.to_bytes_be();
    let b = if b == [0] { Vec::new() } else { b };
    let mut out = vec![0u8; len.saturating_sub(b.len())];
    out.extend_from_slice(&b);
    out
}

/// One key under both implementations.
struct Pair<'a> {
    public: &'a RsaPublicKey,
    ours: &'a RsaVerifyingKey,
}

fn reference_pss(public: &RsaPublicKey, digest: &[u8; 32], sig: &[u8], salt: usize) -> bool {
    let vk = pss::VerifyingKey::<Sha256>::new_with_salt_len(public.clone(), salt);
    pss::Signature::try_from(sig).is_ok_and(|s| vk.verify_prehash(digest, &s).is_ok())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a failure prints: enough to reproduce it outside the harness.
fn context(k: &Pair, digest: &[u8; 32], sig: &[u8]) -> String {
    format!(
        "n = {}\ne = 65537\ndigest = {}\nsig = {}",
        hex(&k.public.n().to_bytes_be()),
        hex(digest),
        hex(sig)
    )
}

/// RS256, PS256 with salt length `salt`, and RSAVP1: ours against the reference. Returns the
/// verdicts (PKCS#1 v1.5, PSS).
fn compare(k: &Pair, digest: &[u8; 32], sig: &[u8], salt: usize) -> (bool, bool) {
    let rs = k
        .public
        .verify(Pkcs1v15Sign::new::<Sha256>(), digest, sig)
        .is_ok();
    assert_eq!(
        k.ours.verify_pkcs1v15_sha256(digest, sig),
        rs,
        "RS256 verdict differs\n{}",
        context(k, digest, sig)
    );
    // RSAVP1 first: the PSS comparison needs it.
    let n = k.public.n();
    let s = BigUint::from_bytes_be(sig);
    let size = k.public.size();
    let want = (sig.len() == size && &s < n).then(|| be(&s.modpow(k.public.e(), n), size));
    assert_eq!(
        k.ours.public_op(sig),
        want,
        "RSAVP1 differs\n{}",
        context(k, digest, sig)
    );
    let ps_ref = reference_pss(k.public, digest, sig, salt);
    let ps = k.ours.verify_pss_sha256(digest, sig, salt);
    // The one known divergence, a laxness of the reference: when modBits ≡ 1 (mod 8),
    // emLen = k − 1 and rsa 0.9 drops the first octet of m = s^e mod n unchecked
    // (pss::verify_digest → emsa_pss_verify_digest, `&mut em[key_len - em_len..]`), so it
    // accepts m = 2^(8·emLen) + EM for a valid EM. RFC 8017 §8.1.2 step 2c refuses it
    // (I2OSP(m, emLen) fails: "integer too large"), as OpenSSL does ("first octet invalid") and
    // so must we. Only there may the verdicts differ, and ours must be the refusal.
    let first_octet_set = n.bits() % 8 == 1 && want.as_ref().is_some_and(|m| m[0] != 0);
    if first_octet_set {
        assert!(
            !ps,
            "PS256 accepted with m ≥ 256^emLen (salt length {salt})\n{}",
            context(k, digest, sig)
        );
    } else {
        assert_eq!(
            ps,
            ps_ref,
            "PS256 verdict differs (salt length {salt})\n{}",
            context(k, digest, sig)
        );
    }
    (rs, ps)
}

/// Any of the twelve keys.
fn any_key(rd: &mut Rd) -> &'static Key {
    let ks = keys();
    &ks[usize::from(rd.u8()) % ks.len()]
}

/// One of the multi-prime keys, with its private key.
fn signing_key(rd: &mut Rd) -> (&'static Key, &'static RsaPrivateKey) {
    let ks = &keys()[..rsa_keys::SIGNING.len()];
    let k = &ks[usize::from(rd.u8()) % ks.len()];
    (k, k.private.as_ref().unwrap())
}

fn pair(k: &Key) -> Pair<'_> {
    Pair {
        public: &k.public,
        ours: &k.ours,
    }
}

/// Mode 0: a fixed key, fuzz digest, salt length and signature.
fn raw(rd: &mut Rd) {
    let k = any_key(rd);
    let digest: [u8; 32] = rd.arr();
    let salt = match rd.u8() {
        0..=127 => 32,
        s => usize::from(s - 128),
    };
    let one = BigUint::from(1u8);
    let sig = match rd.u8() {
        0..=199 => rd.vec(k.size),
        200 => vec![0; k.size],
        201 => be(&one, k.size),
        202 => be(&(&k.n - &one), k.size),
        203 => k.n_be.clone(),
        204 => be(&(&k.n + &one), k.size),
        205 => vec![0xff; k.size],
        206 => rd.vec(k.size - 1),
        207 => rd.vec(k.size + 1),
        208 => {
            let mut v = vec![0];
            v.extend(rd.vec(k.size));
            v
        }
        _ => rd.rest().to_vec(),
    };
    compare(&pair(k), &digest, &sig, salt);
}

/// Mode 1: a fuzz modulus and exponent.
fn raw_key(rd: &mut Rd) {
    let e_be = match rd.u8() % 8 {
        0..=3 => E.to_vec(),
        4 => vec![0, 0, 1, 0, 1],
        5 => vec![3],
        _ => {
            let l = usize::from(rd.u8() % 10);
            rd.vec(l)
        }
    };
    let len = 240 + usize::from(rd.u16() % 301);
    let flags = rd.u8();
    let mut n_be = rd.vec(len);
    if flags & 1 != 0 {
        n_be[0] |= 0x80;
    }
    if flags & 2 != 0 {
        n_be[len - 1] |= 1;
    }
    if flags & 4 != 0 {
        // a modulus near a policy boundary: 2047, 2048, 4096 or 4097 bits
        let bits = [2047usize, 2048, 4096, 4097][usize::from(flags >> 3) % 4];
        let bytes = bits.div_ceil(8);
        n_be.resize(bytes, 0x5a);
        n_be[0] = 1u8 << ((bits - 1) % 8);
        n_be[bytes - 1] |= 1;
    }
    let ours = RsaVerifyingKey::new(&n_be, &e_be);
    let n = BigUint::from_bytes_be(&n_be);
    let e = BigUint::from_bytes_be(&e_be);
    let reference = RsaPublicKey::new(n.clone(), e.clone()).ok();
    let policy = (2048..=4096).contains(&n.bits()) && e == BigUint::from(65537u32);
    assert_eq!(
        ours.is_some(),
        reference.is_some() && policy,
        "key acceptance differs (bits {}, e {e})",
        n.bits()
    );
    let (Some(ours), Some(public)) = (ours, reference) else {
        return;
    };
    assert_eq!(ours.bits(), n.bits());
    // leading zero octets change nothing
    let mut padded = vec![0u8; usize::from(flags >> 5)];
    padded.extend_from_slice(&n_be);
    assert_eq!(
        RsaVerifyingKey::new(&padded, &[0, 1, 0, 1]).as_ref(),
        Some(&ours)
    );
    let digest: [u8; 32] = rd.arr();
    let salt = usize::from(rd.u8());
    let sig = match rd.u8() {
        0..=249 => rd.vec(ours.size()),
        250 => be(&(&n - BigUint::from(1u8)), ours.size()),
        _ => n_be.clone(),
    };
    compare(
        &Pair {
            public: &public,
            ours: &ours,
        },
        &digest,
        &sig,
        salt,
    );
}

/// Modes 2, 3: a real signature, one mutation.
fn structured(rd: &mut Rd) {
    let (k, private) = signing_key(rd);
    let digest: [u8; 32] = rd.arr();
    let scheme = rd.u8();
    let salt = match scheme % 3 {
        0 => None,
        1 => Some(32),
        _ => Some(usize::from(rd.u8())),
    };
    let sig = match salt {
        None => private.sign(Pkcs1v15Sign::new::<Sha256>(), &digest),
        Some(salt) => {
            let mut rng = ChaCha8Rng::seed_from_u64(rd.u64());
            private.sign_with_rng(&mut rng, Pss::new_with_salt::<Sha256>(salt), &digest)
        }
    };
    let Ok(mut sig) = sig else {
        // salt too long for the key: nothing to sign
        return;
    };
    assert_eq!(sig.len(), k.size);
    let sl = salt.unwrap_or(32);
    // the salt length the verifiers are asked for
    let vsalt = match rd.u8() % 8 {
        0 => 32,
        1 => sl + 1,
        2 => sl.saturating_sub(1),
        _ => sl,
    };

    let mut digest = digest;
    let s = BigUint::from_bytes_be(&sig);
    let mut target = k;
    let op = rd.u8() % 12;
    match op {
        0 => {}
        1 => {
            for _ in 0..=(rd.u8() & 1) {
                let bit = usize::from(rd.u16()) % (8 * sig.len());
                sig[bit / 8] ^= 1 << (bit % 8);
            }
        }
        2 => {
            if rd.u8() & 1 == 0 {
                sig.pop();
            } else {
                sig.remove(0);
            }
        }
        3 => sig.insert(0, 0),
        4 => sig.push(0),
        5 => sig = be(&(&s + &k.n), k.size),
        6 => sig = be(&(&k.n - &s), k.size),
        7 => {
            let i = usize::from(rd.u16()) % sig.len();
            sig[i] = rd.u8();
        }
        8 => {
            let bit = usize::from(rd.u8());
            digest[bit / 8] ^= 1 << (bit % 8);
        }
        9 => target = any_key(rd),
        _ => {
            // Edit the encoded message, then sign it again: m' = m ⊕ edits (mod n), s = m'^d.
            let mut em = be(&s.modpow(k.public.e(), &k.n), k.size);
            for _ in 0..=(rd.u8() % 3) {
                let i = match rd.u8() % 4 {
                    // the first, the last, and the octets around H and the separators
                    0 => usize::from(rd.u8() % 4),
                    1 => k.size - 1 - usize::from(rd.u8() % 80),
                    _ => usize::from(rd.u16()) % k.size,
                };
                let x = rd.u8();
                em[i] ^= if x == 0 { 1 } else { x };
            }
            let m = BigUint::from_bytes_be(&em) % &k.n;
            let s2 = rsa::hazmat::rsa_decrypt::<ChaCha8Rng>(None, private, &m).unwrap();
            sig = be(&s2, k.size);
        }
    }
    let (rs, ps) = compare(&pair(target), &digest, &sig, vsalt);
    if op == 0 {
        match salt {
            None => assert!(rs, "a fresh PKCS#1 v1.5 signature"),
            Some(_) if vsalt == sl => assert!(ps, "a fresh PSS signature"),
            Some(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rd = Rd(data);
    match rd.u8() % 4 {
        0 => raw(&mut rd),
        1 => raw_key(&mut rd),
        _ => structured(&mut rd),
    }
});
