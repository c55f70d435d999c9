//! Shared helpers for the integration tests: test keys (Ed25519, P-256, P-384, RSA), their
//! public JWKs, and DPoP proof construction from raw header/claims JSON so that tests can
//! build any shape of proof — including ones a well-behaved client library would refuse to.
#![allow(dead_code)]

use dpop_guard::b64;
use rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// A private key a test can sign proofs with.
#[derive(Clone)]
pub enum TestKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(rsa::RsaPrivateKey),
}

fn seeded(tag: u8, n: usize) -> Vec<u8> {
    // Deterministic, valid scalars/seeds: SHA-256 chained from a tag (never zero, always < n
    // for P-256/P-384 in practice since the top byte is masked below).
    let mut out = Vec::new();
    let mut block = Sha256::digest([tag]).to_vec();
    while out.len() < n {
        out.extend_from_slice(&block);
        block = Sha256::digest(&block).to_vec();
    }
    out.truncate(n);
    if let Some(b) = out.first_mut() {
        *b &= 0x7f;
    }
    out
}

static RSA_2048: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
static RSA_2048_B: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();

impl TestKey {
    /// Deterministic Ed25519 key; `tag` selects a different key.
    pub fn ed25519_n(tag: u8) -> TestKey {
        let seed: [u8; 32] = seeded(tag, 32).try_into().unwrap();
        TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
    }
    pub fn ed25519() -> TestKey {
        TestKey::ed25519_n(1)
    }
    pub fn p256_n(tag: u8) -> TestKey {
        TestKey::P256(p256::ecdsa::SigningKey::from_slice(&seeded(tag, 32)).unwrap())
    }
    pub fn p256() -> TestKey {
        TestKey::p256_n(2)
    }
    pub fn p384() -> TestKey {
        TestKey::P384(p384::ecdsa::SigningKey::from_slice(&seeded(3, 48)).unwrap())
    }
    /// A 2048-bit RSA key, generated once per test binary.
    pub fn rsa() -> TestKey {
        TestKey::Rsa(
            RSA_2048
                .get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
                .clone(),
        )
    }
    /// A second, different 2048-bit RSA key.
    pub fn rsa_b() -> TestKey {
        TestKey::Rsa(
            RSA_2048_B
                .get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
                .clone(),
        )
    }
    pub fn rsa_bits(bits: usize) -> TestKey {
        TestKey::Rsa(rsa::RsaPrivateKey::new(&mut OsRng, bits).unwrap())
    }

    /// The natural algorithm for this key.
    pub fn default_alg(&self) -> &'static str {
        match self {
            TestKey::Ed25519(_) => "EdDSA",
            TestKey::P256(_) => "ES256",
            TestKey::P384(_) => "ES384",
            TestKey::Rsa(_) => "RS256",
        }
    }

    /// Public JWK members as a JSON object value (required members only).
    pub fn public_jwk_value(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            TestKey::Ed25519(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64::encode(k.verifying_key().as_bytes()),
            }),
            TestKey::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64::encode(p.x().unwrap()),
                    "y": b64::encode(p.y().unwrap()),
                })
            }
            TestKey::P384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-384",
                    "x": b64::encode(p.x().unwrap()),
                    "y": b64::encode(p.y().unwrap()),
                })
            }
            TestKey::Rsa(k) => json!({
                "kty": "RSA",
                "n": b64::encode(&k.n().to_bytes_be()),
                "e": b64::encode(&k.e().to_bytes_be()),
            }),
        }
    }

    /// Public JWK as JSON text.
    pub fn public_jwk(&self) -> String {
        self.public_jwk_value().to_string()
    }

    /// The RFC 7638 thumbprint the verifier must report for this key.
    pub fn jkt(&self) -> String {
        dpop_guard::jose::PublicJwk::from_json(self.public_jwk().as_bytes())
            .unwrap()
            .thumbprint()
    }

    /// JWS signature over `input` for `alg`. The key type decides the primitive; `alg` only
    /// picks between RS256 and PS256 for RSA keys (other values fall back to the key's own).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(input).to_bytes().to_vec()
            }
            TestKey::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = k.sign(input);
                s.to_bytes().to_vec()
            }
            TestKey::P384(k) => {
                use p384::ecdsa::signature::Signer;
                let s: p384::ecdsa::Signature = k.sign(input);
                s.to_bytes().to_vec()
            }
            TestKey::Rsa(k) => {
                let digest = Sha256::digest(input);
                if alg == "PS256" {
                    k.sign_with_rng(&mut OsRng, rsa::Pss::new_with_salt::<Sha256>(32), &digest)
                        .unwrap()
                } else {
                    k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap()
                }
            }
        }
    }
}

/// A standard DPoP header for `key` with `alg`.
pub fn header_for(alg: &str, key: &TestKey) -> String {
    format!(
        r#"{{"typ":"dpop+jwt","alg":"{alg}","jwk":{}}}"#,
        key.public_jwk()
    )
}

/// The `alg` a header asks for (used to pick RS256 vs PS256), if the header is JSON at all.
fn header_alg(header_json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(header_json)
        .ok()
        .and_then(|v| v.get("alg").and_then(|a| a.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Builds a compact JWS from raw header and claims JSON text, signed with `key`.
pub fn make_proof(header_json: &str, claims_json: &str, key: &TestKey) -> String {
    make_proof_bytes(
        header_json.as_bytes(),
        claims_json.as_bytes(),
        key,
        &header_alg(header_json),
    )
}

/// Like [`make_proof`] for arbitrary header/payload bytes and an explicit signing `alg`.
pub fn make_proof_bytes(header: &[u8], claims: &[u8], key: &TestKey, alg: &str) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(claims));
    let sig = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64::encode(&sig))
}

/// Splits a compact JWS into its three segments.
pub fn segments(proof: &str) -> (String, String, String) {
    let mut it = proof.split('.');
    let h = it.next().unwrap_or_default().to_owned();
    let p = it.next().unwrap_or_default().to_owned();
    let s = it.next().unwrap_or_default().to_owned();
    (h, p, s)
}

/// A small deterministic PRNG (xorshift64*) for mutation loops.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
