//! The host's signature verification (README "Security notes: who verifies what"): Envoy's
//! foreign function `verify_signature`, i.e. BoringSSL's `EVP_DigestVerify`, for RS256 and
//! ES256. Audited code first; our own verifiers (crates/jose-verify) are the fallback for
//! hosts without it, for EdDSA and PS256 (which it does not offer) and when `crypto = "wasm"`.
//!
//! Everything here is pure: the DER encodings the host wants, the JOSE-level checks made before
//! the call (so both paths accept exactly the same inputs), the protobuf messages of the
//! foreign function, and the start-up probe that proves a host verifies (and refuses) before it
//! is trusted. The glue registers the call ([`set_host_verifier`]) once the probe passed.

use std::cell::Cell;

/// `crypto` (README configuration table): who verifies RS256 and ES256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CryptoChoice {
    /// The host's `verify_signature` when it has one and it passes the probe; ours otherwise.
    #[default]
    Auto,
    /// Always our own verifiers.
    Wasm,
}

/// The foreign function's name in Envoy (≥ 1.2x; present in 1.36 and 1.40).
pub const FOREIGN_FUNCTION: &str = "verify_signature";

/// A host call: (DER SubjectPublicKeyInfo, signature as the host wants it, signed text) →
/// verified or not; `Err` when the host could not answer (the caller then verifies itself).
pub type HostVerifier = fn(spki: &[u8], signature: &[u8], text: &[u8]) -> Result<bool, u32>;

thread_local! {
    // A VM is one thread; a fn pointer needs no lock. Set by the glue at configure time.
    static HOST_VERIFIER: Cell<Option<HostVerifier>> = const { Cell::new(None) };
}

/// Registers (or, with `None`, removes) the host verifier for RS256 and ES256.
pub fn set_host_verifier(v: Option<HostVerifier>) {
    HOST_VERIFIER.with(|c| c.set(v));
}

/// The registered host verifier, if any.
pub fn host_verifier() -> Option<HostVerifier> {
    HOST_VERIFIER.with(Cell::get)
}

/// The P-256 group order n, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// SubjectPublicKeyInfo of a P-256 key up to the point: SEQUENCE { SEQUENCE { id-ecPublicKey,
/// prime256v1 }, BIT STRING (65 bytes + unused-bits octet) }.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// AlgorithmIdentifier { rsaEncryption, NULL }.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_len(out: &mut Vec<u8>, len: usize) {
    // Lengths here are below 2^16 (an RSA key of at most 4096 bits).
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    der_len(out, body.len());
    out.extend_from_slice(body);
}

/// A DER INTEGER of a non-negative big-endian number: minimal, with a 0x00 when the top bit
/// is set.
fn der_uint(out: &mut Vec<u8>, be: &[u8]) {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = be.get(first..).unwrap_or_default();
    let mut body = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(digits);
    der_tlv(out, 0x02, &body);
}

/// The DER SubjectPublicKeyInfo of a P-256 point (x, y big-endian).
pub fn p256_spki(x: &[u8; 32], y: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(P256_SPKI_PREFIX.len() + 64);
    out.extend_from_slice(&P256_SPKI_PREFIX);
    out.extend_from_slice(x);
    out.extend_from_slice(y);
    out
}

/// The DER SubjectPublicKeyInfo of an RSA key (n, e big-endian).
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(n.len() + e.len() + 16);
    der_uint(&mut key, n);
    der_uint(&mut key, e);
    let mut rsa_public_key = Vec::with_capacity(key.len() + 4);
    der_tlv(&mut rsa_public_key, 0x30, &key);
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&rsa_public_key);
    let mut body = Vec::with_capacity(RSA_ALGORITHM.len() + bits.len() + 4);
    body.extend_from_slice(&RSA_ALGORITHM);
    der_tlv(&mut body, 0x03, &bits);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(&mut out, 0x30, &body);
    out
}

/// 0 < v < n for a 32-byte big-endian v.
fn in_scalar_range(v: &[u8]) -> bool {
    v.len() == 32 && v.iter().any(|b| *b != 0) && v < P256_ORDER.as_slice()
}

/// The JOSE ES256 signature (r ‖ s, 64 bytes) as the DER ECDSA-Sig-Value BoringSSL wants, or
/// `None` when it is not 64 bytes or r or s is outside [1, n−1] — what our own verifier
/// refuses too, so the host never decides a case ours would not reach.
pub fn es256_der_signature(jose: &[u8]) -> Option<Vec<u8>> {
    if jose.len() != 64 {
        return None;
    }
    let (r, s) = jose.split_at(32);
    if !in_scalar_range(r) || !in_scalar_range(s) {
        return None;
    }
    let mut seq = Vec::with_capacity(72);
    der_uint(&mut seq, r);
    der_uint(&mut seq, s);
    let mut out = Vec::with_capacity(seq.len() + 2);
    der_tlv(&mut out, 0x30, &seq);
    Some(out)
}

/// The RS256 pre-check: a signature is exactly as long as the modulus (RFC 8017 §8.2.2 step
/// 1), as both verifiers require. (Both also refuse a value ≥ n.)
pub fn rs256_length_ok(signature: &[u8], modulus_bytes: usize) -> bool {
    signature.len() == modulus_bytes
}

fn varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push(number << 3 | 2); // length-delimited
    varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// `VerifySignatureArguments { hash_function = "sha256", public_key (DER), signature, text }`
/// (Envoy's source/extensions/common/wasm/ext/verify_signature.proto), serialized.
pub fn verify_arguments(spki: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spki.len() + signature.len() + text.len() + 24);
    field(&mut out, 1, b"sha256");
    field(&mut out, 2, spki);
    field(&mut out, 3, signature);
    field(&mut out, 4, text);
    out
}

/// `VerifySignatureResult.result` from its serialized bytes; `None` when they are not that
/// message (a host answer we do not understand is not a verdict).
pub fn verify_result(bytes: &[u8]) -> Option<bool> {
    let mut result = false;
    let mut rest = bytes;
    while let Some((&tag, tail)) = rest.split_first() {
        match tag {
            // field 1, varint: bool
            0x08 => {
                let (&v, tail) = tail.split_first()?;
                if v > 1 {
                    return None;
                }
                result = v == 1;
                rest = tail;
            }
            // field 2, length-delimited: the error text (ignored; never logged verbatim)
            0x12 => {
                let (len, tail) = read_varint(tail)?;
                rest = tail.get(len..)?;
            }
            _ => return None,
        }
    }
    Some(result)
}

fn read_varint(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    for (i, b) in bytes.iter().enumerate().take(4) {
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, bytes.get(i + 1..)?));
        }
    }
    None
}

/// Why a host was not trusted with verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The call failed (no such foreign function: another proxy-wasm host, an old Envoy).
    Unavailable(u32),
    /// The host refused a valid signature.
    RefusedValid,
    /// The host accepted a forged signature.
    AcceptedForgery,
}

/// A fixed P-256 key and a signature over [`PROBE_TEXT`] (made with Python `cryptography`, key
/// d = SHA-256("dpop-guard probe key"); the unit tests check it with our own verifier), for
/// the start-up probe.
pub const PROBE_TEXT: &[u8] = b"dpop-guard host crypto probe";
pub const PROBE_P256_X: [u8; 32] = [
    0xbf, 0x16, 0x20, 0xf5, 0x73, 0xbe, 0x60, 0xdc, 0xa6, 0x7e, 0x84, 0x49, 0xad, 0x60, 0xfd, 0x01,
    0x71, 0xea, 0x81, 0xf2, 0xff, 0xe1, 0xd6, 0x02, 0x81, 0x5f, 0x6e, 0xa7, 0x30, 0x86, 0x93, 0xe8,
];
pub const PROBE_P256_Y: [u8; 32] = [
    0x4b, 0x00, 0x56, 0x9c, 0x15, 0xe1, 0xf6, 0x8b, 0xea, 0x9b, 0x7d, 0xd6, 0x87, 0x05, 0xe1, 0x5c,
    0xd3, 0x7a, 0xdf, 0x2f, 0x0c, 0x97, 0xe6, 0x86, 0xad, 0x96, 0x78, 0xf6, 0x46, 0x2d, 0xa6, 0xf8,
];
pub const PROBE_P256_SIG: [u8; 64] = [
    0x90, 0xa2, 0x10, 0x38, 0x25, 0xee, 0xb1, 0xce, 0x61, 0x3e, 0x25, 0x16, 0x7b, 0x74, 0xff, 0xd7,
    0xbc, 0x1a, 0xf6, 0x57, 0x77, 0x20, 0xc6, 0xf4, 0x0d, 0xd7, 0xde, 0x47, 0x2c, 0xc3, 0x45, 0xd4,
    0xe8, 0x1a, 0x4b, 0x27, 0xac, 0x02, 0xc3, 0x3c, 0x6e, 0x6e, 0x5c, 0xda, 0x1c, 0x6a, 0xdc, 0x42,
    0xbb, 0x88, 0xa0, 0xc5, 0x9e, 0x4b, 0x30, 0xd5, 0x1c, 0xde, 0x11, 0xcf, 0x1e, 0x29, 0x0d, 0x2e,
];

/// Proves a host verifier before it is trusted: it must accept a valid ES256 signature and
/// refuse the same signature over other text.
pub fn probe(host: HostVerifier) -> Result<(), ProbeFailure> {
    let spki = p256_spki(&PROBE_P256_X, &PROBE_P256_Y);
    let Some(sig) = es256_der_signature(&PROBE_P256_SIG) else {
        return Err(ProbeFailure::RefusedValid);
    };
    match host(&spki, &sig, PROBE_TEXT) {
        Err(status) => return Err(ProbeFailure::Unavailable(status)),
        Ok(false) => return Err(ProbeFailure::RefusedValid),
        Ok(true) => {}
    }
    match host(&spki, &sig, b"dpop-guard host crypto probe, forged") {
        Err(status) => Err(ProbeFailure::Unavailable(status)),
        Ok(true) => Err(ProbeFailure::AcceptedForgery),
        Ok(false) => Ok(()),
    }
}
