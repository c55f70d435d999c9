//! `jose::p256_fast` (variable-time ES256 verification): every Wycheproof P-256/SHA-256 P1363
//! vector, differential tests against the `p256` crate (random keys, messages, corrupted and
//! random signatures, constructed edge cases) and the field/scalar arithmetic against
//! big-integer reference math.
//!
//! Iteration counts are sized for the debug test profile; `P256_FAST_ITERS=<factor>` scales
//! the random tests (e.g. `P256_FAST_ITERS=20 cargo test --release --test p256_fast`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dpop_guard::b64;
use dpop_guard::jose::p256_fast::internals::{self, Affine, Fe, Sc, N, P};
use dpop_guard::jose::p256_fast::P256VerifyingKey;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::{LinearCombination, Reduce};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::elliptic_curve::{Field, PrimeField};
use p256::{AffinePoint, EncodedPoint, ProjectivePoint, Scalar, U256};
use rand_core::{OsRng, RngCore};
use rsa::BigUint;
use serde_json::Value;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// Scale factor for the random tests.
fn iters(base: usize) -> usize {
    let f: usize = std::env::var("P256_FAST_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * f.max(1)
}

/// A fast deterministic generator (xorshift128+), seeded from the OS; the seed is printed so
/// that a failure can be replayed with `P256_FAST_SEED`.
struct Rng(u64, u64);

impl Rng {
    fn new(name: &str) -> Rng {
        let seed = std::env::var("P256_FAST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| OsRng.next_u64());
        println!("{name}: P256_FAST_SEED={seed}");
        let mut r = Rng(
            seed ^ 0x9E37_79B9_7F4A_7C15,
            seed.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1,
        );
        for _ in 0..16 {
            r.next();
        }
        r
    }
    fn next(&mut self) -> u64 {
        let (mut s1, s0) = (self.0, self.1);
        self.0 = s0;
        s1 ^= s1 << 23;
        self.1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        self.1.wrapping_add(s0)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
    /// 32 bytes biased towards edge values: all-ones/zero words, small and near-p/n values.
    fn edgy32(&mut self) -> [u8; 32] {
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
    fn scalar(&mut self) -> Scalar {
        loop {
            if let Some(s) = Option::from(Scalar::from_repr(self.bytes32().into())) {
                return s;
            }
        }
    }
}

fn be(l: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (c, x) in out.chunks_mut(4).zip(l.iter().rev()) {
        c.copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn big(b: &[u8]) -> BigUint {
    BigUint::from_bytes_be(b)
}

fn to32(x: &BigUint) -> [u8; 32] {
    let v = x.to_bytes_be();
    assert!(v.len() <= 32);
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(&v);
    out
}

fn sub_small(b: &[u8; 32], k: u64) -> [u8; 32] {
    to32(&(big(b) - BigUint::from(k)))
}

fn p_big() -> BigUint {
    big(&be(&P))
}

fn n_big() -> BigUint {
    big(&be(&N))
}

fn affine_xy(p: &AffinePoint) -> ([u8; 32], [u8; 32]) {
    let e = p.to_encoded_point(false);
    ((*e.x().unwrap()).into(), (*e.y().unwrap()).into())
}

/// A key under test, verified through both paths: a fresh key object (first use: the
/// 256-bit path) and a prepared one (the split 2 × 128-bit path); the two must agree.
struct Both {
    x: [u8; 32],
    y: [u8; 32],
    prepared: P256VerifyingKey,
}

impl Both {
    fn new(x: &[u8; 32], y: &[u8; 32]) -> Option<Both> {
        let prepared = P256VerifyingKey::from_affine(x, y)?;
        prepared.prepare();
        assert!(prepared.is_prepared());
        Some(Both {
            x: *x,
            y: *y,
            prepared,
        })
    }
    fn fresh(&self) -> P256VerifyingKey {
        let k = P256VerifyingKey::from_affine(&self.x, &self.y).unwrap();
        assert!(!k.is_prepared());
        k
    }
    fn verify_prehashed(&self, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
        let a = self.fresh().verify_prehashed(digest, sig);
        let b = self.prepared.verify_prehashed(digest, sig);
        assert_eq!(
            a, b,
            "the two paths disagree: digest {digest:x?} sig {sig:x?}"
        );
        a
    }
    fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        let a = self.fresh().verify_sha256(msg, sig);
        let b = self.prepared.verify_sha256(msg, sig);
        assert_eq!(a, b, "the two paths disagree: msg {msg:x?} sig {sig:x?}");
        a
    }
    /// u1·G + u2·Q by both paths (must agree).
    fn lincomb(&self, u1: &Scalar, u2: &Scalar) -> Option<Affine> {
        let a = internals::lincomb(&self.fresh(), &sc(u1), &sc(u2));
        let b = internals::lincomb(&self.prepared, &sc(u1), &sc(u2));
        assert_eq!(a, b, "the two paths disagree: u1 {u1:?} u2 {u2:?}");
        a
    }
}

fn fast_key(vk: &VerifyingKey) -> Both {
    let (x, y) = affine_xy(vk.as_affine());
    Both::new(&x, &y).expect("valid key refused")
}

/// The automatic switch: a key object's first verification takes the 256-bit path, the
/// second prepares it; clones keep the prepared tables.
#[test]
fn keys_prepare_themselves_on_second_use() {
    let sk = SigningKey::random(&mut OsRng);
    let (x, y) = affine_xy(sk.verifying_key().as_affine());
    let digest: [u8; 32] = Sha256::digest(b"reuse").into();
    let sig: [u8; 64] = PrehashSigner::<Signature>::sign_prehash(&sk, &digest)
        .unwrap()
        .to_bytes()
        .into();
    let key = P256VerifyingKey::from_affine(&x, &y).unwrap();
    let early_clone = key.clone();
    assert!(!key.is_prepared());
    assert!(key.verify_prehashed(&digest, &sig));
    assert!(!key.is_prepared());
    let mut bad = sig;
    bad[5] ^= 1;
    assert!(!key.verify_prehashed(&digest, &bad));
    assert!(key.is_prepared());
    assert!(key.verify_prehashed(&digest, &sig));
    assert!(key.clone().is_prepared());
    assert!(!early_clone.is_prepared());
    assert!(early_clone.verify_prehashed(&digest, &sig));
}

fn ref_key(x: &[u8; 32], y: &[u8; 32]) -> Option<VerifyingKey> {
    let ep = EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
    VerifyingKey::from_encoded_point(&ep).ok()
}

fn ref_verify(vk: &VerifyingKey, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    match Signature::from_slice(sig) {
        Ok(s) => vk.verify_prehash(digest, &s).is_ok(),
        Err(_) => false,
    }
}

fn sig_bytes(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

fn scalar_bytes(s: &Scalar) -> [u8; 32] {
    s.to_repr().into()
}

fn reduce_digest(d: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(d.into())
}

/// A valid signature over `digest` built from chosen u1, u2 (so R is known in advance):
/// R = u1·G + u2·Q, r = x(R) mod n, s = r/u2, and the digest must satisfy e = u1·s.
/// Returns (digest, sig, x(R)).
fn constructed(
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

// ---------------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------------

const WYCHEPROOF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json"
);

/// The group's key coordinates: from `publicKeyJwk` when present, else from `publicKey.wx/wy`
/// (hex, possibly with a leading zero byte or shorter than 32 bytes), left-padded to 32.
fn group_key(group: &Value) -> ([u8; 32], [u8; 32]) {
    let pad = |raw: Vec<u8>| -> [u8; 32] {
        let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
        assert!(trimmed.len() <= 32);
        let mut out = [0u8; 32];
        out[32 - trimmed.len()..].copy_from_slice(&trimmed);
        out
    };
    if let Some(j) = group.get("publicKeyJwk") {
        assert_eq!(j["kty"], "EC");
        assert_eq!(j["crv"], "P-256");
        let c = |name: &str| -> [u8; 32] {
            let v = b64::decode(j[name].as_str().unwrap()).unwrap();
            v.try_into().expect("JWK coordinate is not 32 bytes")
        };
        return (c("x"), c("y"));
    }
    let pk = &group["publicKey"];
    assert_eq!(pk["curve"], "secp256r1");
    let c = |name: &str| pad(hex::decode(pk[name].as_str().unwrap()).unwrap());
    (c("wx"), c("wy"))
}

#[test]
fn wycheproof_ecdsa_secp256r1_sha256_p1363() {
    let text = std::fs::read_to_string(WYCHEPROOF).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let (mut total, mut valid, mut invalid, mut from_raw) = (0usize, 0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (gi, group) in doc["testGroups"].as_array().unwrap().iter().enumerate() {
        from_raw += usize::from(group.get("publicKeyJwk").is_none());
        let (x, y) = group_key(group);
        let key = Both::new(&x, &y);
        // Every key in the file is a valid public key; the crate must agree with p256.
        assert_eq!(key.is_some(), ref_key(&x, &y).is_some(), "group {gi}");
        let key = key.unwrap_or_else(|| panic!("group {gi}: key refused"));
        assert_eq!(key.prepared.to_affine(), (x, y));
        assert_eq!(key.fresh().to_affine(), (x, y));
        for t in group["tests"].as_array().unwrap() {
            total += 1;
            let id = t["tcId"].as_u64().unwrap();
            let msg = hex::decode(t["msg"].as_str().unwrap()).unwrap();
            let sig = hex::decode(t["sig"].as_str().unwrap()).unwrap();
            let want = match t["result"].as_str().unwrap() {
                "valid" => {
                    valid += 1;
                    true
                }
                "invalid" => {
                    invalid += 1;
                    false
                }
                other => panic!("tc {id}: result {other} has no policy here"),
            };
            let got = key.verify_sha256(&msg, &sig);
            if got != want {
                failures.push(format!(
                    "tc {id}: want {want}, got {got} ({})",
                    t["comment"].as_str().unwrap_or("")
                ));
            }
        }
    }
    println!("wycheproof p256: {total} vectors ({valid} valid, {invalid} invalid), {from_raw} keys from raw wx/wy");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, doc["numberOfTests"].as_u64().unwrap() as usize);
    assert!(valid > 0 && invalid > 0);
}

// ---------------------------------------------------------------------------------------------
// Differential: signatures made by p256
// ---------------------------------------------------------------------------------------------

#[test]
fn random_keys_and_messages_signed_by_p256_verify() {
    let mut rng = Rng::new("random_keys_and_messages_signed_by_p256_verify");
    let mut high_s = 0;
    let keys = iters(40);
    for _ in 0..keys {
        let sk = SigningKey::random(&mut OsRng);
        let key = fast_key(sk.verifying_key());
        for _ in 0..10 {
            let mut msg = vec![0u8; rng.below(100)];
            for b in msg.iter_mut() {
                *b = rng.next() as u8;
            }
            let digest: [u8; 32] = Sha256::digest(&msg).into();
            let sig: Signature = sk.sign_prehash(&digest).unwrap();
            let sig: [u8; 64] = sig.to_bytes().into();
            assert!(
                key.verify_prehashed(&digest, &sig),
                "digest {digest:x?} sig {sig:x?}"
            );
            assert!(key.verify_sha256(&msg, &sig));
            high_s += usize::from(sig[32] >= 0x80);
        }
    }
    assert!(high_s > 0, "no high-S signature in the sample");
    println!("{} signatures verified ({high_s} with s > n/2)", keys * 10);
}

#[test]
fn corrupted_signatures_digests_and_keys_are_refused() {
    let mut rng = Rng::new("corrupted_signatures_digests_and_keys_are_refused");
    let rounds = iters(60);
    for _ in 0..rounds {
        let sk = SigningKey::random(&mut OsRng);
        let vk = *sk.verifying_key();
        let key = fast_key(&vk);
        let digest = rng.bytes32();
        let sig: [u8; 64] = PrehashSigner::<Signature>::sign_prehash(&sk, &digest)
            .unwrap()
            .to_bytes()
            .into();
        assert!(key.verify_prehashed(&digest, &sig));

        // one bit of r or s
        let mut bad = sig;
        let bit = rng.below(512);
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !key.verify_prehashed(&digest, &bad),
            "flipped sig bit {bit}"
        );
        assert!(!ref_verify(&vk, &digest, &bad));

        // one bit of the digest (a flip only matters mod n; a 256-bit digest flip always does)
        let mut d2 = digest;
        let bit = rng.below(256);
        d2[bit / 8] ^= 1 << (bit % 8);
        assert!(!key.verify_prehashed(&d2, &sig), "flipped digest bit {bit}");

        // one bit of the key: either not a point any more, or another key
        let (mut x, mut y) = affine_xy(vk.as_affine());
        let bit = rng.below(512);
        if bit < 256 {
            x[bit / 8] ^= 1 << (bit % 8);
        } else {
            y[(bit - 256) / 8] ^= 1 << (bit % 8);
        }
        let other = Both::new(&x, &y);
        assert_eq!(other.is_some(), ref_key(&x, &y).is_some());
        if let Some(k) = other {
            assert!(!k.verify_prehashed(&digest, &sig));
        }
        // another valid key
        let k2 = fast_key(SigningKey::random(&mut OsRng).verifying_key());
        assert!(!k2.verify_prehashed(&digest, &sig));
        // wrong lengths
        assert!(!key.verify_sha256(b"x", &sig[..63]));
        assert!(!key.verify_sha256(b"x", &[sig.as_slice(), &[0]].concat()));
    }
}

#[test]
fn random_signatures_agree_with_p256() {
    let mut rng = Rng::new("random_signatures_agree_with_p256");
    let sk = SigningKey::random(&mut OsRng);
    let vk = *sk.verifying_key();
    let key = fast_key(&vk);
    let mut accepted = 0;
    for i in 0..iters(400) {
        let digest = if i % 2 == 0 {
            rng.bytes32()
        } else {
            rng.edgy32()
        };
        let sig = sig_bytes(&rng.edgy32(), &rng.edgy32());
        let want = ref_verify(&vk, &digest, &sig);
        assert_eq!(
            key.verify_prehashed(&digest, &sig),
            want,
            "digest {digest:x?} sig {sig:x?}"
        );
        accepted += usize::from(want);
    }
    assert_eq!(accepted, 0, "a random signature verified");
}

#[test]
fn constructed_signatures_with_chosen_u1_u2_agree_with_p256() {
    let mut rng = Rng::new("constructed_signatures_with_chosen_u1_u2_agree_with_p256");
    for i in 0..iters(200) {
        let d = rng.scalar();
        let q = ProjectivePoint::GENERATOR * d;
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        // u1 = 0 (digest ≡ 0), small, and random; u2 small and random
        let u1 = match i % 4 {
            0 => Scalar::ZERO,
            1 => Scalar::from(rng.next() % 1000),
            _ => rng.scalar(),
        };
        let u2 = if i % 3 == 0 {
            Scalar::from(1 + rng.next() % 1000)
        } else {
            rng.scalar()
        };
        let Some((digest, sig, _)) = constructed(&q, &u1, &u2) else {
            continue;
        };
        assert!(ref_verify(&vk, &digest, &sig));
        assert!(key.verify_prehashed(&digest, &sig), "u1 {u1:?} u2 {u2:?}");
        // the same e as digest + n when that still fits in 256 bits
        let dn = big(&digest) + n_big();
        if dn.bits() <= 256 {
            let d2 = to32(&dn);
            assert!(ref_verify(&vk, &d2, &sig));
            assert!(key.verify_prehashed(&d2, &sig), "digest ≥ n");
        }
    }
}

#[test]
fn edge_values_of_r_and_s() {
    let sk = SigningKey::random(&mut OsRng);
    let vk = *sk.verifying_key();
    let key = fast_key(&vk);
    let digest: [u8; 32] = Sha256::digest(b"edge").into();
    let sig: [u8; 64] = PrehashSigner::<Signature>::sign_prehash(&sk, &digest)
        .unwrap()
        .to_bytes()
        .into();
    let r: [u8; 32] = sig[..32].try_into().unwrap();
    let s: [u8; 32] = sig[32..].try_into().unwrap();
    assert!(key.verify_prehashed(&digest, &sig));
    let zero = [0u8; 32];
    let n = be(&N);
    let n1 = sub_small(&n, 1);
    let ones = [0xFFu8; 32];
    let r_plus_n = big(&r) + n_big();
    let s_plus_n = big(&s) + n_big();
    let mut cases = vec![
        sig_bytes(&zero, &s),
        sig_bytes(&r, &zero),
        sig_bytes(&zero, &zero),
        sig_bytes(&n, &s),
        sig_bytes(&r, &n),
        sig_bytes(&n1, &s),
        sig_bytes(&r, &n1),
        sig_bytes(&n1, &n1),
        sig_bytes(&ones, &s),
        sig_bytes(&r, &ones),
        sig_bytes(&be(&P), &s),
    ];
    if r_plus_n.bits() <= 256 {
        cases.push(sig_bytes(&to32(&r_plus_n), &s));
    }
    if s_plus_n.bits() <= 256 {
        cases.push(sig_bytes(&r, &to32(&s_plus_n)));
    }
    for c in &cases {
        assert!(!key.verify_prehashed(&digest, c), "{c:x?}");
        assert!(!ref_verify(&vk, &digest, c));
    }
    // (r, n − s) is the other valid signature (ECDSA malleability): accepted, like p256.
    let neg_s = to32(&(n_big() - big(&s)));
    let flipped = sig_bytes(&r, &neg_s);
    assert!(ref_verify(&vk, &digest, &flipped));
    assert!(key.verify_prehashed(&digest, &flipped));
}

/// Points R whose x-coordinate is ≥ n (so r = x(R) − n, the X = (r + n)·Z² path) and points
/// with a tiny x (r < p − n, where the (r + n) comparison is tried and must fail).
#[test]
fn x_of_r_at_least_n_and_tiny_x() {
    let mut rng = Rng::new("x_of_r_at_least_n_and_tiny_x");
    let n = n_big();
    let p = p_big();
    // candidate x values: n, n + 1, …, and p − 1, p − 2, …; tiny: 1, 2, 3, …
    let mut xs: Vec<BigUint> = Vec::new();
    for k in 0u64..40 {
        xs.push(&n + BigUint::from(k));
        xs.push(&p - BigUint::from(k + 1));
        xs.push(BigUint::from(k + 1));
    }
    let mut high = 0;
    let mut tiny = 0;
    for xr in xs {
        // decompress (either y)
        let mut enc = vec![0x02u8];
        enc.extend_from_slice(&to32(&xr));
        let Ok(ep) = EncodedPoint::from_bytes(&enc) else {
            continue;
        };
        let Some(big_r) = Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&ep)) else {
            continue;
        };
        // Key Q = (R − u1·G)/u2 for random u1, u2: then u1·G + u2·Q = R.
        let u1 = rng.scalar();
        let u2 = rng.scalar();
        let q =
            (ProjectivePoint::from(big_r) - ProjectivePoint::GENERATOR * u1) * u2.invert().unwrap();
        let (qx, qy) = affine_xy(&q.to_affine());
        let key = Both::new(&qx, &qy).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        let (digest, sig, x) = constructed(&q, &u1, &u2).unwrap();
        assert_eq!(big(&x), xr);
        assert!(ref_verify(&vk, &digest, &sig));
        assert!(key.verify_prehashed(&digest, &sig), "x(R) = {xr:x}");
        // u1·G + u2·Q as computed by the verifier is R
        let got = key.lincomb(&u1, &u2).unwrap();
        assert_eq!(got, affine(&big_r));
        if xr >= n {
            high += 1;
            // r' = x(R) itself (≥ n) is out of range
            let bad = sig_bytes(&to32(&xr), sig[32..].try_into().unwrap());
            assert!(!key.verify_prehashed(&digest, &bad));
            assert!(!ref_verify(&vk, &digest, &bad));
        } else {
            tiny += 1;
            // r' = x(R) + 1: r' < p − n, neither r' nor r' + n is x(R)
            let r2 = to32(&(&xr + BigUint::from(1u8)));
            let bad = sig_bytes(&r2, sig[32..].try_into().unwrap());
            assert!(!key.verify_prehashed(&digest, &bad));
            assert!(!ref_verify(&vk, &digest, &bad));
        }
    }
    assert!(high >= 10 && tiny >= 10, "high {high} tiny {tiny}");
}

/// Q = ±G with u1 = ±u2 drives the interleaved loop into P + P and P + (−P).
#[test]
fn exceptional_additions_in_the_interleaved_loop() {
    let mut rng = Rng::new("exceptional_additions_in_the_interleaved_loop");
    let g = ProjectivePoint::GENERATOR;
    for q in [g, -g, g.double(), g * Scalar::from(3u64)] {
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let vk = VerifyingKey::from_affine(q.to_affine()).unwrap();
        for i in 0..iters(20) {
            let u = if i < 3 {
                Scalar::from(i as u64 + 1)
            } else {
                rng.scalar()
            };
            for (u1, u2) in [
                (u, u),
                (-u, u),
                (u, -u),
                (u.double(), u),
                (u * Scalar::from(3u64), u),
            ] {
                let want = ProjectivePoint::lincomb(&g, &u1, &q, &u2).to_affine();
                let got = key.lincomb(&u1, &u2);
                if bool::from(want.is_identity()) {
                    assert!(got.is_none(), "identity expected");
                } else {
                    assert_eq!(got, Some(affine(&want)));
                    if let Some((digest, sig, _)) = constructed(&q, &u1, &u2) {
                        assert!(ref_verify(&vk, &digest, &sig));
                        assert!(key.verify_prehashed(&digest, &sig));
                    }
                }
            }
        }
    }
}

#[test]
fn lincomb_matches_p256() {
    let mut rng = Rng::new("lincomb_matches_p256");
    for _ in 0..iters(50) {
        let q = ProjectivePoint::GENERATOR * rng.scalar();
        let (x, y) = affine_xy(&q.to_affine());
        let key = Both::new(&x, &y).unwrap();
        let u1 =
            Option::<Scalar>::from(Scalar::from_repr(rng.edgy32().into())).unwrap_or(Scalar::ONE);
        let u2 = rng.scalar();
        let want = ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, &q, &u2).to_affine();
        assert_eq!(key.lincomb(&u1, &u2), Some(affine(&want)));
    }
}

#[test]
fn keys_refused_like_p256() {
    let mut rng = Rng::new("keys_refused_like_p256");
    let g = affine_xy(&AffinePoint::GENERATOR);
    let p = be(&P);
    // coordinates ≥ p (x + p still "on the curve" mod p), (0, 0), off-curve points
    let x_plus_p = big(&g.0) + p_big();
    let y_plus_p = big(&g.1) + p_big();
    let mut cases = vec![
        ([0u8; 32], [0u8; 32]),
        (p, g.1),
        (g.0, p),
        ([0xFF; 32], g.1),
    ];
    if x_plus_p.bits() <= 256 {
        cases.push((to32(&x_plus_p), g.1));
    }
    if y_plus_p.bits() <= 256 {
        cases.push((g.0, to32(&y_plus_p)));
    }
    let mut y1 = g.1;
    y1[31] ^= 1;
    cases.push((g.0, y1));
    for (x, y) in cases {
        assert!(
            P256VerifyingKey::from_affine(&x, &y).is_none(),
            "{x:x?} {y:x?}"
        );
        assert!(ref_key(&x, &y).is_none());
    }
    assert!(P256VerifyingKey::from_affine(&g.0, &g.1).is_some());
    for _ in 0..iters(300) {
        let (x, y) = (rng.edgy32(), rng.edgy32());
        assert_eq!(
            P256VerifyingKey::from_affine(&x, &y).is_some(),
            ref_key(&x, &y).is_some()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Internals against reference arithmetic
// ---------------------------------------------------------------------------------------------

fn sc(s: &Scalar) -> Sc {
    Sc::reduce_be_bytes(&scalar_bytes(s))
}

fn affine(p: &AffinePoint) -> Affine {
    let (x, y) = affine_xy(p);
    Affine {
        x: Fe::from_be_bytes(&x).unwrap(),
        y: Fe::from_be_bytes(&y).unwrap(),
    }
}

fn fe_big(f: &Fe) -> BigUint {
    big(&f.to_be_bytes())
}

fn sc_big(s: &Sc) -> BigUint {
    big(&be(&s.0))
}

#[test]
fn field_arithmetic_matches_bigint() {
    let mut rng = Rng::new("field_arithmetic_matches_bigint");
    let p = p_big();
    let fe = |rng: &mut Rng| loop {
        if let Some(f) = Fe::from_be_bytes(&rng.edgy32()) {
            return f;
        }
    };
    let mut specials = vec![Fe::ZERO, Fe::ONE];
    for k in 1..4u64 {
        specials.push(Fe::from_be_bytes(&sub_small(&be(&P), k)).unwrap());
    }
    specials.push(Fe::from_be_bytes(&to32(&((&p - BigUint::from(1u8)) >> 1))).unwrap());
    for i in 0..iters(5000) {
        let a = if i < specials.len() * specials.len() {
            specials[i % specials.len()]
        } else {
            fe(&mut rng)
        };
        let b = if i < specials.len() * specials.len() {
            specials[i / specials.len()]
        } else {
            fe(&mut rng)
        };
        let (x, y) = (fe_big(&a), fe_big(&b));
        assert_eq!(fe_big(&a.mul(&b)), (&x * &y) % &p, "{a:?} * {b:?}");
        assert_eq!(fe_big(&a.sqr()), (&x * &x) % &p, "{a:?}²");
        assert_eq!(fe_big(&a.add(&b)), (&x + &y) % &p);
        assert_eq!(fe_big(&a.sub(&b)), (&x + &p - &y) % &p);
        assert_eq!(fe_big(&a.neg()), (&p - &x) % &p);
        assert_eq!(fe_big(&a.dbl()), (&x + &x) % &p);
        if i % 50 == 0 {
            let inv = a.invert();
            if a.is_zero() {
                assert!(inv.is_zero());
            } else {
                assert_eq!(fe_big(&inv.mul(&a)), BigUint::from(1u8));
                assert_eq!(fe_big(&inv), x.modpow(&(&p - BigUint::from(2u8)), &p));
            }
            let sq = a.sqr();
            let r = sq.sqrt().expect("a square has a root");
            assert!(r.to_be_bytes() == a.to_be_bytes() || r.to_be_bytes() == a.neg().to_be_bytes());
        }
    }
    // ≥ p is refused, p − 1 accepted, every top-limb pattern near p
    assert!(Fe::from_be_bytes(&be(&P)).is_none());
    assert!(Fe::from_be_bytes(&[0xFF; 32]).is_none());
    assert!(Fe::from_be_bytes(&sub_small(&be(&P), 1)).is_some());
    for _ in 0..iters(2000) {
        let b = rng.edgy32();
        assert_eq!(Fe::from_be_bytes(&b).is_some(), big(&b) < p);
    }
}

#[test]
fn scalar_arithmetic_matches_bigint() {
    let mut rng = Rng::new("scalar_arithmetic_matches_bigint");
    let n = n_big();
    for _ in 0..iters(3000) {
        let (ab, bb) = (rng.edgy32(), rng.edgy32());
        // parsing
        let na = Sc::from_be_bytes_nonzero(&ab);
        let ok = big(&ab) < n && big(&ab) != BigUint::from(0u8);
        assert_eq!(na.is_some(), ok);
        // reduction
        let a = Sc::reduce_be_bytes(&ab);
        let b = Sc::reduce_be_bytes(&bb);
        assert_eq!(sc_big(&a), big(&ab) % &n);
        assert_eq!(sc_big(&b), big(&bb) % &n);
        assert_eq!(sc_big(&a.mul(&b)), (sc_big(&a) * sc_big(&b)) % &n);
        let inv = a.invert();
        if a.is_zero() {
            assert!(inv.is_zero());
        } else {
            assert_eq!(sc_big(&inv.mul(&a)), BigUint::from(1u8), "{a:?}");
            assert_eq!(sc(&reduce_digest(&ab).invert().unwrap()), inv);
        }
    }
    for k in 1..2000u64 {
        let a = Sc::reduce_be_bytes(&to32(&BigUint::from(k)));
        assert_eq!(sc_big(&a.invert().mul(&a)), BigUint::from(1u8));
        let a = Sc::reduce_be_bytes(&sub_small(&be(&N), k));
        assert_eq!(sc_big(&a.invert().mul(&a)), BigUint::from(1u8));
    }
}

#[test]
fn wnaf_recoding_is_exact_and_sparse() {
    let mut rng = Rng::new("wnaf_recoding_is_exact_and_sparse");
    for i in 0..iters(2000) {
        let mut b = rng.edgy32();
        if i % 7 == 0 {
            b = [0xFF; 32];
        }
        if i == 1 {
            b = [0; 32];
        }
        let l = limbs(&b);
        for w in [5u32, 8] {
            let d = internals::wnaf(&l, w).unwrap();
            let want = big(&b);
            assert_eq!(signed_value(&d), want.clone(), "w {w} {b:x?}");
            let half = 1i32 << (w - 1);
            let mut last: Option<usize> = None;
            for (j, &x) in d.iter().enumerate() {
                if x != 0 {
                    assert!(x % 2 != 0 && i32::from(x).abs() < half);
                    if let Some(k) = last {
                        assert!(j - k >= w as usize, "digits too close");
                    }
                    last = Some(j);
                }
            }
        }
    }
}

/// (Σ positive digits·2^i, Σ |negative digits|·2^i).
fn digit_sums(d: &[i8]) -> (BigUint, BigUint) {
    let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
    for (i, &x) in d.iter().enumerate() {
        if x > 0 {
            pos += BigUint::from(x as u8) << i;
        } else if x < 0 {
            neg += BigUint::from(x.unsigned_abs()) << i;
        }
    }
    (pos, neg)
}

fn signed_value(d: &[i8]) -> BigUint {
    let (pos, neg) = digit_sums(d);
    assert!(pos >= neg);
    pos - neg
}

fn limbs(b: &[u8; 32]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (o, c) in out.iter_mut().rev().zip(b.chunks(4)) {
        *o = u32::from_be_bytes(c.try_into().unwrap());
    }
    out
}

#[test]
fn g_table_is_odd_multiples_of_g() {
    let g = ProjectivePoint::GENERATOR;
    let g128 = g * Scalar::from_repr(to32(&(BigUint::from(1u8) << 128)).into()).unwrap();
    for (t, base, name) in [
        (internals::g_table(), g, "G"),
        (internals::g128_table(), g128, "2^128·G"),
    ] {
        assert_eq!(t.len(), 64);
        for (i, e) in t.iter().enumerate() {
            let want = (base * Scalar::from(2 * i as u64 + 1)).to_affine();
            assert_eq!(*e, affine(&want), "{}·{name}", 2 * i + 1);
            assert!(e.is_on_curve());
            // stored canonical (< p), as the generator script writes them
            for c in [&e.x, &e.y] {
                let (_, v, neg) = limb_value(&c.0);
                assert!(!neg && v < p_big() && c.0[..8].iter().all(|&l| (0..1 << 29).contains(&l)));
            }
        }
    }
}

#[test]
fn identity_and_point_helpers() {
    let g = affine(&AffinePoint::GENERATOR);
    let j = internals::Jacobian::from_affine(&g);
    assert_eq!(
        j.double().to_affine().unwrap(),
        affine(&(ProjectivePoint::GENERATOR.double()).to_affine())
    );
    assert!(j.add_affine(&g.neg()).to_affine().is_none());
    assert!(internals::Jacobian::IDENTITY.double().to_affine().is_none());
    assert_eq!(
        internals::Jacobian::IDENTITY.add_affine(&g).to_affine(),
        Some(g)
    );
}

// ---------------------------------------------------------------------------------------------
// The bound contract of the lazy 29-bit-limb field (see src/jose/p256_fast/field.rs)
// ---------------------------------------------------------------------------------------------

/// T = 2^257.5 as a rational bound: V < T ⟺ V² < 2^515.
fn below_t(v: &BigUint) -> bool {
    v * v < (BigUint::from(1u8) << 515)
}

/// (V mod p, |V|, V < 0) of signed 29-bit limbs.
fn limb_value(l: &[i64; 9]) -> (BigUint, BigUint, bool) {
    let (mut pos, mut neg) = (BigUint::from(0u8), BigUint::from(0u8));
    for (i, &x) in l.iter().enumerate() {
        if x >= 0 {
            pos += BigUint::from(x as u64) << (29 * i);
        } else {
            neg += BigUint::from(x.unsigned_abs()) << (29 * i);
        }
    }
    let p = p_big();
    let m = ((&pos % &p) + &p - (&neg % &p)) % &p;
    if pos >= neg {
        (m, pos - neg, false)
    } else {
        (m, neg - pos, true)
    }
}

fn r_inv() -> BigUint {
    // R⁻¹ = (2^261)^(p−2) mod p
    let p = p_big();
    (BigUint::from(1u8) << 261).modpow(&(&p - BigUint::from(2u8)), &p)
}

fn random_limbs(rng: &mut Rng, bound: i64, top: i64) -> [i64; 9] {
    let mut l = [0i64; 9];
    for (i, x) in l.iter_mut().enumerate() {
        let b = if i == 8 { top } else { bound };
        *x = match rng.below(4) {
            0 => b,
            1 => -b,
            _ => (rng.next() % (2 * b as u64 + 1)) as i64 - b,
        };
    }
    l
}

#[test]
fn field_mul_at_the_limits_of_its_contract() {
    let mut rng = Rng::new("field_mul_at_the_limits_of_its_contract");
    let p = p_big();
    let ri = r_inv();
    // w(a)·w(b) ≤ 3.5 with the most lopsided and the balanced splits; top limbs sized so
    // that |V(a)|·|V(b)| ≤ 3.3·T² (T = 2^257.5 ⇒ top limb of a value < T is < 2^25.5).
    let splits: [(f64, f64); 3] = [(1.0, 3.5), (1.87, 1.87), (1.09, 3.2)];
    let mut n = 0;
    for _ in 0..iters(400) {
        let (wa, wb) = splits[rng.below(3)];
        let a_bound = (wa * (1u64 << 29) as f64) as i64 - 1;
        let b_bound = (wb * (1u64 << 29) as f64) as i64 - 1;
        let a = random_limbs(&mut rng, a_bound, 1 << 25);
        let b = random_limbs(&mut rng, b_bound, 1 << 25);
        let (am, av, _) = limb_value(&a);
        let (bm, bv, _) = limb_value(&b);
        if &av * &bv * BigUint::from(10u8) > (BigUint::from(33u8) << 515) {
            continue;
        }
        n += 1;
        let r = Fe(a).mul(&Fe(b)).0;
        let (rm, rv, rneg) = limb_value(&r);
        assert_eq!(rm, (&am * &bm % &p) * &ri % &p);
        assert!(!rneg && below_t(&rv), "result out of [0, T)");
        assert!(r[..8].iter().all(|&x| (0..1 << 29).contains(&x)), "{r:x?}");
        if wa == wb {
            let s = Fe(a).sqr().0;
            let (sm, sv, sneg) = limb_value(&s);
            assert_eq!(sm, (&am * &am % &p) * &ri % &p);
            assert!(!sneg && below_t(&sv));
        }
    }
    assert!(n > iters(200), "{n}");
}

#[test]
fn weak_reduction_lands_in_class_w() {
    let mut rng = Rng::new("weak_reduction_lands_in_class_w");
    let lim = (1i64 << 29) + (1 << 29) / 11; // 1.09·2^29
    for _ in 0..iters(3000) {
        // lazy values up to 8T in magnitude: limbs up to 8·2^29, top limb up to 8·2^25.5
        let a = random_limbs(&mut rng, 8 << 29, 362_000_000);
        let (am, av, _) = limb_value(&a);
        if av > (BigUint::from(8u8) << 257) + (BigUint::from(4u8) << 256) {
            continue; // (8T ≈ 2^260.5: stay below 2^260 + 2^258)
        }
        let w = Fe(a).weak().0;
        let (wm, wv, wneg) = limb_value(&w);
        assert_eq!(wm, am);
        assert!(w.iter().take(8).all(|&x| -lim < x && x < lim), "{w:x?}");
        assert!((0..1 << 24).contains(&w[8]), "{w:x?}");
        let bound = if wneg {
            BigUint::from(1u8) << 230
        } else {
            (BigUint::from(1u8) << 256) + (BigUint::from(1u8) << 230)
        };
        assert!(wv < bound);
        // is_zero on W values and on their differences with ±p multiples
        assert_eq!(Fe(w).is_zero(), wm == BigUint::from(0u8));
    }
    // values ≡ 0 in every form is_zero accepts
    let p = p_big();
    for k in [0u8, 1, 2] {
        let l = limbs_of(&(&p * BigUint::from(k)));
        assert!(Fe(l).is_zero());
        let neg = l.map(|x| -x);
        assert!(Fe(neg).is_zero());
        let mut off = l;
        off[0] += 1;
        assert!(!Fe(off).is_zero());
    }
}

fn limbs_of(v: &BigUint) -> [i64; 9] {
    let mut l = [0i64; 9];
    let m = BigUint::from((1u64 << 29) - 1);
    for (i, x) in l.iter_mut().enumerate() {
        let d = ((v >> (29 * i)) & &m).to_bytes_be();
        *x = d.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b));
    }
    l
}

/// Point formulas fed with coordinates at the edge of class M (limbs near 2^29, V close
/// to T = 2.83p, i.e. non-canonical representatives x + p, x + 2p) agree with p256; debug
/// builds assert every multiplication's preconditions on the way.
#[test]
fn point_formulas_with_extreme_representatives() {
    let mut rng = Rng::new("point_formulas_with_extreme_representatives");
    let p = p_big();
    let g = ProjectivePoint::GENERATOR;
    let mont = |x: &BigUint| -> BigUint { (x << 261) % &p };
    // largest representative below T of a Montgomery value
    let extreme = |m: &BigUint| -> [i64; 9] {
        let mut v = m.clone();
        while below_t(&(&v + &p)) {
            v += &p;
        }
        limbs_of(&v)
    };
    for _ in 0..iters(60) {
        let pt = (g * rng.scalar()).to_affine();
        let (x, y) = affine_xy(&pt);
        // Jacobian (λ²x, λ³y, λ) with λ random, every coordinate pushed towards T
        let lam = big(&scalar_bytes(&rng.scalar())) % &p;
        let l2 = &lam * &lam % &p;
        let l3 = &l2 * &lam % &p;
        let jx = extreme(&mont(&(big(&x) * &l2 % &p)));
        let jy = extreme(&mont(&(big(&y) * &l3 % &p)));
        let jz = extreme(&mont(&lam));
        let j = internals::Jacobian {
            x: Fe(jx),
            y: Fe(jy),
            z: Fe(jz),
        };
        let want2 = affine(&(ProjectivePoint::from(pt).double()).to_affine());
        assert_eq!(j.double().to_affine().unwrap(), want2);
        assert_eq!(
            j.double().double().to_affine().unwrap(),
            affine(&(ProjectivePoint::from(pt).double().double()).to_affine())
        );
        // + an affine point with extreme coordinates
        let q = (g * rng.scalar()).to_affine();
        let (qx, qy) = affine_xy(&q);
        let qa = Affine {
            x: Fe(extreme(&mont(&big(&qx)))),
            y: Fe(extreme(&mont(&big(&qy)))),
        };
        let sum = affine(&(ProjectivePoint::from(pt) + ProjectivePoint::from(q)).to_affine());
        assert_eq!(j.add_affine(&qa).to_affine().unwrap(), sum);
        let diff = affine(&(ProjectivePoint::from(pt) - ProjectivePoint::from(q)).to_affine());
        assert_eq!(j.add_affine(&qa.neg()).to_affine().unwrap(), diff);
        // P + P and P − P through the affine path
        let pa = Affine {
            x: Fe(extreme(&mont(&big(&x)))),
            y: Fe(extreme(&mont(&big(&y)))),
        };
        assert_eq!(j.add_affine(&pa).to_affine().unwrap(), want2);
        assert!(j.add_affine(&pa.neg()).to_affine().is_none());
    }
}
