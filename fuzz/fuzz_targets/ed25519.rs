//! Differential fuzzing of `jose_verify::ed25519` against ed25519-dalek's `verify_strict`, on
//! both of our paths (a fresh key: one-shot wNAF; a prepared key: comb table).
//!
//! Input: a mode byte, then
//! - mode even: key (32) ‖ signature (64) ‖ message — raw bytes, mostly refusals of every
//!   kind (undecodable, small-order or non-canonical points, s ≥ ℓ);
//! - mode odd: seed (32) ‖ 64-byte XOR mask ‖ message — a real signature under the seed's
//!   key, with the mask applied (an all-zero mask keeps it valid), so the accepting path and
//!   near-miss signatures are exercised too.
#![no_main]

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use jose_verify::ed25519::Ed25519VerifyingKey;
use libfuzzer_sys::fuzz_target;

fn dalek(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key).is_ok_and(|vk| {
        vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 96 {
        return;
    }
    let (a, rest) = rest.split_at(32);
    let (b, msg) = rest.split_at(64);
    let a: [u8; 32] = a.try_into().unwrap();
    let b: [u8; 64] = b.try_into().unwrap();
    let (key, sig) = if mode & 1 == 0 {
        (a, b)
    } else {
        let sk = SigningKey::from_bytes(&a);
        let mut sig = sk.sign(msg).to_bytes();
        for (s, m) in sig.iter_mut().zip(b.iter()) {
            *s ^= m;
        }
        (sk.verifying_key().to_bytes(), sig)
    };
    let want = dalek(&key, msg, &sig);
    match Ed25519VerifyingKey::from_bytes(&key) {
        None => assert!(!want, "key refused by us, accepted by dalek"),
        Some(k) => {
            assert_eq!(k.verify(msg, &sig), want, "one-shot path");
            k.prepare();
            assert_eq!(k.verify(msg, &sig), want, "prepared path");
        }
    }
    if mode & 1 == 1 && b == [0u8; 64] {
        assert!(want, "an unmodified signature verifies");
    }
});
