//! Differential fuzzing of `jose_verify::p256` (ES256) against the RustCrypto `p256` crate
//! (`ecdsa::VerifyingKey`), on both of our paths: a fresh key (first use: one 256-bit wNAF
//! chain with a per-verification table of Q) and the same key used again and prepared (the
//! tables of Q and 2^128·Q, four 128-bit half-scalars on G, 2^128·G, Q, 2^128·Q). The
//! verdicts (accept / refuse) must be identical everywhere, and so must key validity.
//!
//! Input: a mode byte, then
//! - mode even (raw): a key made from the input (a fuzz scalar times G; raw coordinates; a
//!   decompressed fuzz x, optionally with a coordinate pushed to ≥ p or negated), a 32-byte
//!   digest, a 64-byte r ‖ s and a message: `verify_prehashed` and `verify_sha256` (with
//!   signatures of any length) against `verify_prehash` and `Verifier::verify`;
//! - mode odd (structured): a key Q = c·G or Q = c·2^128·G for a small or structured c
//!   (c = 1 with the 2^128 flag makes Q's table equal to 2^128·G's), or a key solved from a
//!   chosen R whose x is r or r + n; chosen u1, u2 (small, ±2^k ± δ, one half only, or
//!   derived from each other and from c so that the four half-scalar chains collide), then
//!   R = u1·G + u2·Q, r = x(R) mod n, s = r·u2⁻¹ and digest = u1·s, a signature that must
//!   verify; then one fuzz-chosen mutation (bit flips of r ‖ s ‖ digest, s → n − s,
//!   digest + n, r + n, r ↔ s, a wrong u1) and the verdicts compared again.
#![no_main]

use jose_verify::p256::P256VerifyingKey;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::{AffineCoordinates, DecompressPoint};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::elliptic_curve::subtle::Choice;
use p256::elliptic_curve::Field;
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, U256};

/// The field prime p and the group order n, big-endian.
const P: [u8; 32] = hex32("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
const N: [u8; 32] = hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
const ONE: [u8; 32] = hex32("0000000000000000000000000000000000000000000000000000000000000001");

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
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
    fn arr<const K: usize>(&mut self) -> [u8; K] {
        let mut out = [0u8; K];
        for o in out.iter_mut() {
            *o = self.u8();
        }
        out
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// a + b as 256-bit big-endian integers; `None` on overflow.
fn add256(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let t = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = t as u8;
        carry = t >> 8;
    }
    (carry == 0).then_some(out)
}

/// a − b as 256-bit big-endian integers; `None` if b > a.
fn sub256(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut t = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if t < 0 {
            t += 256;
            borrow = 1;
        }
        out[i] = t as u8;
    }
    (borrow == 0).then_some(out)
}

fn reduce(b: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*b))
}

fn bytes(s: &Scalar) -> [u8; 32] {
    s.to_bytes().into()
}

fn pow2(k: u32) -> Scalar {
    Scalar::from(2u64).pow_vartime(&[u64::from(k), 0, 0, 0])
}

/// A small signed delta from one byte: −128 … 127.
fn delta(b: u8) -> Scalar {
    let d = Scalar::from(u64::from((b as i8).unsigned_abs()));
    if (b as i8) < 0 {
        -d
    } else {
        d
    }
}

/// The high and low 128-bit halves of a scalar (as 16-byte big-endian strings).
fn halves(s: &Scalar) -> ([u8; 16], [u8; 16]) {
    let b = bytes(s);
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 16];
    hi.copy_from_slice(&b[..16]);
    lo.copy_from_slice(&b[16..]);
    (hi, lo)
}

fn from_halves(hi: &[u8; 16], lo: &[u8; 16]) -> Scalar {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(hi);
    b[16..].copy_from_slice(lo);
    reduce(&b)
}

/// A structured scalar: zero, small, ±2^k ± δ, one 128-bit half only, or any.
fn scalar(rd: &mut Rd) -> Scalar {
    match rd.u8() % 6 {
        0 => Scalar::ZERO,
        1 => Scalar::from(u64::from(rd.u16())),
        2 => {
            let k = rd.u8();
            let p = pow2(u32::from(k & 0x7f) + u32::from(k >> 7) * 128);
            let p = if rd.u8() & 1 == 1 { -p } else { p };
            p + delta(rd.u8())
        }
        3 => from_halves(&[0; 16], &rd.arr()),
        4 => from_halves(&rd.arr(), &[0; 16]),
        _ => reduce(&rd.arr()),
    }
}

/// A scalar derived from `base`: itself, negated, halves swapped, one half only, or times
/// 2^±128, plus a small δ.
fn derived(rd: &mut Rd, base: &Scalar) -> Scalar {
    let two128 = pow2(128);
    let (hi, lo) = halves(base);
    let t = match rd.u8() % 7 {
        0 => *base,
        1 => -*base,
        2 => from_halves(&lo, &hi),
        3 => from_halves(&[0; 16], &hi),
        4 => from_halves(&lo, &[0; 16]),
        5 => *base * two128,
        _ => *base * Option::<Scalar>::from(two128.invert()).unwrap(),
    };
    t + delta(rd.u8())
}

/// Affine coordinates of a point that is not the identity.
fn coords(p: &ProjectivePoint) -> Option<([u8; 32], [u8; 32])> {
    let enc = p.to_affine().to_encoded_point(false);
    Some(((*enc.x()?).into(), (*enc.y()?).into()))
}

fn reference_key(x: &[u8; 32], y: &[u8; 32]) -> Option<VerifyingKey> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..33].copy_from_slice(x);
    sec1[33..].copy_from_slice(y);
    VerifyingKey::from_sec1_bytes(&sec1).ok()
}

fn reference_prehashed(key: &VerifyingKey, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    Signature::from_slice(sig).is_ok_and(|s| key.verify_prehash(digest, &s).is_ok())
}

/// The key under both implementations: validity must agree, and our key must round-trip.
fn keys(x: &[u8; 32], y: &[u8; 32]) -> Option<(VerifyingKey, P256VerifyingKey)> {
    let r = reference_key(x, y);
    let ours = P256VerifyingKey::from_affine(x, y);
    assert_eq!(ours.is_some(), r.is_some(), "key validity differs");
    let ours = ours?;
    assert_eq!(ours.to_affine(), (*x, *y), "key round trip");
    Some((r?, ours))
}

/// Verdict of the reference, then of a fresh key of ours (unprepared path) and of `reused`
/// (prepared by the caller), which must all agree.
fn compare(
    rk: &VerifyingKey,
    x: &[u8; 32],
    y: &[u8; 32],
    reused: &P256VerifyingKey,
    digest: &[u8; 32],
    sig: &[u8; 64],
) -> bool {
    let want = reference_prehashed(rk, digest, sig);
    let fresh = P256VerifyingKey::from_affine(x, y).unwrap();
    assert_eq!(fresh.verify_prehashed(digest, sig), want, "fresh key");
    assert_eq!(reused.verify_prehashed(digest, sig), want, "prepared key");
    want
}

fn raw(rd: &mut Rd, kind: u8) {
    let (x, y): ([u8; 32], [u8; 32]) = match kind % 4 {
        0 => {
            let k = reduce(&rd.arr());
            match coords(&(ProjectivePoint::GENERATOR * k)) {
                Some(c) => c,
                None => return,
            }
        }
        1 => (rd.arr(), rd.arr()),
        _ => {
            let x: [u8; 32] = rd.arr();
            let flags = rd.u8();
            let pt = AffinePoint::decompress(&FieldBytes::from(x), Choice::from(flags & 1));
            let Some(pt) = Option::<AffinePoint>::from(pt) else {
                // not on the curve: x with a fuzz y
                let y = rd.arr();
                keys(&x, &y);
                return;
            };
            let enc = pt.to_encoded_point(false);
            let (mut x, mut y): ([u8; 32], [u8; 32]) =
                ((*enc.x().unwrap()).into(), (*enc.y().unwrap()).into());
            match (flags >> 1) % 4 {
                // non-canonical coordinates (≥ p) where they fit in 32 bytes
                1 => x = add256(&x, &P).unwrap_or(x),
                2 => y = add256(&y, &P).unwrap_or(y),
                // −Q (p − y; y = 0 is impossible on P-256)
                3 => y = sub256(&P, &y).unwrap(),
                _ => {}
            }
            (x, y)
        }
    };
    let digest: [u8; 32] = rd.arr();
    let sig: [u8; 64] = rd.arr();
    // the message path half of the time (the reference's two scalar multiplications per
    // verification dominate the run time)
    let sig_len = match rd.u8() {
        0..=127 => None,
        128..=239 => Some(64),
        l => Some(usize::from(l - 240) * 5),
    };
    let msg = rd.rest();
    let Some((rk, ours)) = keys(&x, &y) else {
        return;
    };
    let want = reference_prehashed(&rk, &digest, &sig);
    assert_eq!(ours.verify_prehashed(&digest, &sig), want, "fresh key");
    // a second use (which prepares the key under the current policy), then explicitly prepared
    assert_eq!(ours.verify_prehashed(&digest, &sig), want, "second use");
    ours.prepare();
    assert!(ours.is_prepared());
    assert_eq!(ours.verify_prehashed(&digest, &sig), want, "prepared key");
    // ES256 over a message, with signatures of every length (only 64 is acceptable)
    let Some(sig_len) = sig_len else {
        return;
    };
    let mut long = sig.to_vec();
    long.resize(sig_len, 0x5a);
    let want = Signature::from_slice(&long).is_ok_and(|s| rk.verify(msg, &s).is_ok());
    let fresh = P256VerifyingKey::from_affine(&x, &y).unwrap();
    assert_eq!(fresh.verify_sha256(msg, &long), want, "fresh key, sha256");
    assert_eq!(ours.verify_sha256(msg, &long), want, "prepared key, sha256");
}

fn structured(rd: &mut Rd, fam: u8, flag: bool) {
    let g = ProjectivePoint::GENERATOR;
    // The key and, when known, its discrete log.
    let (q, dlog): (ProjectivePoint, Option<Scalar>) = if fam < 4 {
        let c = match fam {
            0 => Scalar::from(u64::from(rd.u16()) + 1),
            1 => {
                let k = rd.u8();
                let p = pow2(u32::from(k));
                (if rd.u8() & 1 == 1 { -p } else { p }) + delta(rd.u8())
            }
            2 => -Scalar::from(u64::from(rd.u16()) + 1),
            _ => reduce(&rd.arr()),
        };
        let c = if flag { c * pow2(128) } else { c };
        (g * c, Some(c))
    } else {
        // R first: x(R) = t or n + t (t < p − n), then Q = u2⁻¹·(R − u1·G) below.
        (ProjectivePoint::IDENTITY, None)
    };
    let u1 = scalar(rd);
    let u2 = match rd.u8() % 3 {
        0 => scalar(rd),
        1 => derived(rd, &u1),
        // u2·Q related to u1·G: u2 = f(u1)·c⁻¹
        _ => {
            let inv = dlog.and_then(|c| Option::<Scalar>::from(c.invert()));
            derived(rd, &(u1 * inv.unwrap_or(Scalar::ONE)))
        }
    };
    let u2 = if bool::from(u2.is_zero()) {
        Scalar::ONE
    } else {
        u2
    };
    let u2_inv = Option::<Scalar>::from(u2.invert()).unwrap();
    let (q, big_r) = if let Some(c) = dlog {
        // one scalar multiplication instead of two: R = (u1 + c·u2)·G
        (q, g * (u1 + c * u2))
    } else {
        let mut t = [0u8; 32];
        t[16..].copy_from_slice(&rd.arr::<16>());
        t[16] &= 0x3f; // t < 2^126 < p − n
        let mut x = if flag { add256(&t, &N).unwrap() } else { t };
        let odd = Choice::from(rd.u8() & 1);
        let mut r_pt = None;
        for _ in 0..64 {
            if let Some(p) =
                Option::<AffinePoint>::from(AffinePoint::decompress(&FieldBytes::from(x), odd))
            {
                r_pt = Some(p);
                break;
            }
            x = add256(&x, &ONE).unwrap();
        }
        let Some(r_pt) = r_pt else {
            return;
        };
        let r_pt = ProjectivePoint::from(r_pt);
        ((r_pt - g * u1) * u2_inv, r_pt)
    };
    if bool::from(q.is_identity()) {
        return;
    }
    let (qx, qy) = coords(&q).unwrap();
    if bool::from(big_r.is_identity()) {
        // R = O: no signature can verify through (u1, u2); still compare a made-up one
        let (rk, ours) = keys(&qx, &qy).unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&bytes(&Scalar::ONE));
        sig[32..].copy_from_slice(&bytes(&u2_inv));
        let digest = bytes(&(u1 * u2_inv));
        ours.prepare();
        assert!(!compare(&rk, &qx, &qy, &ours, &digest, &sig));
        return;
    }
    let r = reduce(&big_r.to_affine().x().into());
    if bool::from(r.is_zero()) {
        return;
    }
    let s = r * u2_inv;
    let e = u1 * s;
    let mut digest = bytes(&e);
    if rd.u8() & 1 == 1 {
        // an unreduced digest (e + n) where it fits
        digest = add256(&digest, &N).unwrap_or(digest);
    }
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&bytes(&r));
    sig[32..].copy_from_slice(&bytes(&s));

    // valid by construction (the reference's verdict on it is taken when the mutation is
    // none, as for every other mutation: its scalar multiplications dominate the run time)
    let (rk, ours) = keys(&qx, &qy).unwrap();
    assert!(ours.verify_prehashed(&digest, &sig), "fresh key refuses");
    assert!(ours.verify_prehashed(&digest, &sig), "second use refuses");
    ours.prepare();
    assert!(ours.is_prepared());
    assert!(ours.verify_prehashed(&digest, &sig), "prepared key refuses");

    // One mutation, then the verdicts again.
    let mut must_accept = false;
    match rd.u8() % 8 {
        0 => must_accept = true,
        1 | 6 => {
            let flips = if rd.u8() & 1 == 0 { 1 } else { 2 };
            for _ in 0..flips {
                let bit = usize::from(rd.u16()) % (96 * 8);
                if bit < 512 {
                    sig[bit / 8] ^= 1 << (bit % 8);
                } else {
                    digest[(bit - 512) / 8] ^= 1 << (bit % 8);
                }
            }
        }
        2 => {
            // (r, n − s) verifies too: u1, u2 negated, R negated, same x
            sig[32..].copy_from_slice(&bytes(&-s));
            must_accept = true;
        }
        3 => {
            let rn = add256(&bytes(&r), &N);
            if let Some(rn) = rn {
                sig[..32].copy_from_slice(&rn);
            }
        }
        4 => {
            let dn = sub256(&digest, &N).or_else(|| add256(&digest, &N));
            if let Some(dn) = dn {
                digest = dn;
            }
            must_accept = true;
        }
        5 => {
            let (a, b) = sig.split_at_mut(32);
            a.swap_with_slice(b);
        }
        _ => digest = bytes(&((u1 + delta(rd.u8() | 1)) * s)),
    }
    let got = compare(&rk, &qx, &qy, &ours, &digest, &sig);
    if must_accept {
        assert!(got, "a mutation that keeps the signature valid");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut rd = Rd(data);
    let mode = rd.u8();
    if mode & 1 == 0 {
        raw(&mut rd, mode >> 1);
    } else {
        structured(&mut rd, (mode >> 1 & 0x3f) % 5, mode & 0x80 != 0);
    }
});
