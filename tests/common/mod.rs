//! Shared helpers for the integration tests: test keys (Ed25519, P-256, P-384, RSA), their
//! public JWKs, and DPoP proof construction from raw header/claims JSON so that tests can
//! build any shape of proof — including ones a well-behaved client library would refuse to.
#![allow(dead_code)]

use dpop_client::{Alg, KeyKind, SigningKey};
use dpop_guard::b64;
use std::sync::OnceLock;

/// A private key a test can sign proofs with (the shared client library's key, with the
/// lenient signing tests need).
#[derive(Clone)]
pub struct TestKey(pub SigningKey);

static RSA_2048: OnceLock<SigningKey> = OnceLock::new();
static RSA_2048_B: OnceLock<SigningKey> = OnceLock::new();

fn seeded(kind: KeyKind, tag: u8) -> TestKey {
    TestKey(SigningKey::from_seed(kind, &[tag]).unwrap())
}

fn rsa_2048(cell: &OnceLock<SigningKey>) -> TestKey {
    TestKey(
        cell.get_or_init(|| SigningKey::generate(KeyKind::Rsa { bits: 2048 }).unwrap())
            .clone(),
    )
}

impl TestKey {
    /// Deterministic Ed25519 key; `tag` selects a different key.
    pub fn ed25519_n(tag: u8) -> TestKey {
        seeded(KeyKind::Ed25519, tag)
    }
    pub fn ed25519() -> TestKey {
        TestKey::ed25519_n(1)
    }
    pub fn p256_n(tag: u8) -> TestKey {
        seeded(KeyKind::P256, tag)
    }
    pub fn p256() -> TestKey {
        TestKey::p256_n(2)
    }
    pub fn p384() -> TestKey {
        seeded(KeyKind::P384, 3)
    }
    /// A 2048-bit RSA key, generated once per test binary.
    pub fn rsa() -> TestKey {
        rsa_2048(&RSA_2048)
    }
    /// A second, different 2048-bit RSA key.
    pub fn rsa_b() -> TestKey {
        rsa_2048(&RSA_2048_B)
    }
    pub fn rsa_bits(bits: usize) -> TestKey {
        TestKey(SigningKey::generate(KeyKind::Rsa { bits }).unwrap())
    }

    /// The natural algorithm for this key.
    pub fn default_alg(&self) -> &'static str {
        self.0.default_alg().name()
    }

    /// Public JWK members as a JSON object value (required members only).
    pub fn public_jwk_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.public_jwk()).unwrap()
    }

    /// Public JWK as JSON text.
    pub fn public_jwk(&self) -> String {
        self.0.public_jwk().unwrap()
    }

    /// The private `d` member, base64url.
    pub fn private_d(&self) -> String {
        let members = self.0.private_members().unwrap();
        members.into_iter().find(|(k, _)| *k == "d").unwrap().1
    }

    /// The RFC 7638 thumbprint the verifier must report for this key, computed by the filter
    /// (the client's own is checked against it in crates/dpop-client/tests).
    pub fn jkt(&self) -> String {
        dpop_guard::jose::PublicJwk::from_json(self.public_jwk().as_bytes())
            .unwrap()
            .thumbprint()
    }

    /// JWS signature over `input` for `alg`. The key type decides the primitive; `alg` only
    /// picks between RS256 and PS256 for RSA keys (other values fall back to the key's own).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let alg = Alg::from_name(alg)
            .filter(|a| self.0.fits(*a))
            .unwrap_or(self.0.default_alg());
        self.0.sign(alg, input).unwrap()
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
