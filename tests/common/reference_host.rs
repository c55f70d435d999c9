//! A host verifier built on the reference crates (`p256`, `rsa`): what Envoy's
//! `verify_signature` (BoringSSL `EVP_DigestVerify`) computes — DER SubjectPublicKeyInfo, DER
//! ECDSA signatures, PKCS#1 v1.5 with the full DigestInfo — registered in tests the way the
//! glue registers Envoy's. It counts its calls so a test can see the host path was taken.

#![allow(dead_code)] // each includer uses part of it

use std::cell::Cell;

thread_local! {
    pub static CALLS: Cell<usize> = const { Cell::new(0) };
}

pub fn calls() -> usize {
    CALLS.with(Cell::get)
}

pub fn verify(spki: &[u8], signature: &[u8], text: &[u8]) -> Result<bool, u32> {
    use p256::pkcs8::DecodePublicKey as _;
    CALLS.with(|c| c.set(c.get() + 1));
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
        use p256::ecdsa::signature::Verifier as _;
        let Ok(sig) = p256::ecdsa::Signature::from_der(signature) else {
            return Ok(false);
        };
        return Ok(key.verify(text, &sig).is_ok());
    }
    if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(spki) {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(text);
        return Ok(key
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature)
            .is_ok());
    }
    // BoringSSL refuses a key it cannot import: the foreign function returns BadArgument.
    Err(2)
}
