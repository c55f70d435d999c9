//! Signing keys: generated from the OS's randomness, derived from a seed (deterministic test
//! keys), or built from a private JWK's members; their public JWK members, RFC 7638 thumbprint
//! and JWS signatures.

use crate::{b64, random_rng, ClientError};
use sha2::{Digest, Sha256};

/// The JWS algorithms a DPoP client signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    EdDSA,
    ES256,
    ES384,
    RS256,
    PS256,
}

impl Alg {
    pub const ALL: [Alg; 5] = [Alg::EdDSA, Alg::ES256, Alg::ES384, Alg::RS256, Alg::PS256];

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
        }
    }

    /// The algorithm called `name` (exact, case-sensitive as JOSE is).
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Key types a client can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    P256,
    P384,
    Rsa { bits: usize },
}

impl KeyKind {
    /// The key type `alg` signs with (`rsa_bits` for RS256/PS256).
    pub fn for_alg(alg: Alg, rsa_bits: usize) -> KeyKind {
        match alg {
            Alg::EdDSA => KeyKind::Ed25519,
            Alg::ES256 => KeyKind::P256,
            Alg::ES384 => KeyKind::P384,
            Alg::RS256 | Alg::PS256 => KeyKind::Rsa { bits: rsa_bits },
        }
    }
}

/// The private half of a key; everything public is derived from it.
#[derive(Clone)]
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for SigningKey {
    // Never the private members: only what anyone may see.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, jkt {})",
            self.kind_name(),
            self.thumbprint()
        )
    }
}

/// Seed bytes for deterministic keys: SHA-256 chained from `seed`, top bit cleared so an EC
/// scalar is below the group order.
fn seed_bytes(seed: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut block = Sha256::digest(seed).to_vec();
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

fn ec_coordinates(point: &[u8], len: usize) -> Result<(&[u8], &[u8]), ClientError> {
    // SEC1 uncompressed: 0x04 || x || y.
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * len => Ok(xy.split_at(len)),
        _ => Err(ClientError(
            "EC public key is not an uncompressed point".into(),
        )),
    }
}

impl SigningKey {
    /// A fresh key from the OS's randomness.
    pub fn generate(kind: KeyKind) -> Result<SigningKey, ClientError> {
        let mut rng = random_rng();
        Ok(match kind {
            KeyKind::Ed25519 => SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            KeyKind::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::P384 => SigningKey::P384(p384::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::Rsa { bits } => SigningKey::Rsa(Box::new(
                rsa::RsaPrivateKey::new(&mut rng, bits)
                    .map_err(|e| ClientError(format!("RSA key generation failed: {e}")))?,
            )),
        })
    }

    /// The same key for the same `seed`, every time (tests). RSA keys cannot be derived
    /// cheaply; generate those once and keep them.
    pub fn from_seed(kind: KeyKind, seed: &[u8]) -> Result<SigningKey, ClientError> {
        match kind {
            KeyKind::Ed25519 => Ok(SigningKey::ed25519_from_seed(seed)),
            KeyKind::P256 => SigningKey::p256(&seed_bytes(seed, 32)),
            KeyKind::P384 => SigningKey::p384(&seed_bytes(seed, 48)),
            KeyKind::Rsa { .. } => Err(ClientError("RSA keys are not derived from seeds".into())),
        }
    }

    /// [`SigningKey::from_seed`] for Ed25519, where it cannot fail (every 32 bytes are a key).
    pub fn ed25519_from_seed(seed: &[u8]) -> SigningKey {
        let mut d = [0u8; 32];
        for (out, b) in d.iter_mut().zip(seed_bytes(seed, 32)) {
            *out = b;
        }
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&d))
    }

    /// An Ed25519 key from its 32-byte private `d`.
    pub fn ed25519(d: &[u8]) -> Result<SigningKey, ClientError> {
        let d: [u8; 32] = d
            .try_into()
            .map_err(|_| ClientError("Ed25519 'd' must be 32 bytes".into()))?;
        Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &d,
        )))
    }

    /// A P-256 key from its 32-byte scalar `d`.
    pub fn p256(d: &[u8]) -> Result<SigningKey, ClientError> {
        if d.len() != 32 {
            return Err(ClientError("P-256 'd' must be 32 bytes".into()));
        }
        p256::ecdsa::SigningKey::from_slice(d)
            .map(SigningKey::P256)
            .map_err(|_| ClientError("'d' is not a valid P-256 scalar".into()))
    }

    /// A P-384 key from its 48-byte scalar `d`.
    pub fn p384(d: &[u8]) -> Result<SigningKey, ClientError> {
        if d.len() != 48 {
            return Err(ClientError("P-384 'd' must be 48 bytes".into()));
        }
        p384::ecdsa::SigningKey::from_slice(d)
            .map(SigningKey::P384)
            .map_err(|_| ClientError("'d' is not a valid P-384 scalar".into()))
    }

    /// An RSA key from big-endian `n`, `e`, `d` and, optionally, the primes `p` and `q`
    /// (without them the primes are recovered from n, e, d: NIST SP 800-56B Appendix C.2).
    pub fn rsa(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        primes: Option<(&[u8], &[u8])>,
    ) -> Result<SigningKey, ClientError> {
        let uint = rsa::BigUint::from_bytes_be;
        let (n, e, d) = (uint(n), uint(e), uint(d));
        let one = uint(&[1]);
        if d <= one || d >= n {
            return Err(ClientError("RSA 'd' out of range".into()));
        }
        let primes = match primes {
            Some((p, q)) => {
                let (p, q) = (uint(p), uint(q));
                if p <= one || q <= one {
                    return Err(ClientError("RSA 'p'/'q' out of range".into()));
                }
                vec![p, q]
            }
            None => Vec::new(),
        };
        rsa::RsaPrivateKey::from_components(n, e, d, primes)
            .map(|k| SigningKey::Rsa(Box::new(k)))
            .map_err(|err| ClientError(format!("inconsistent RSA private key: {err}")))
    }

    /// "OKP Ed25519", "EC P-256", "EC P-384" or "RSA".
    pub fn kind_name(&self) -> &'static str {
        match self {
            SigningKey::Ed25519(_) => "OKP Ed25519",
            SigningKey::P256(_) => "EC P-256",
            SigningKey::P384(_) => "EC P-384",
            SigningKey::Rsa(_) => "RSA",
        }
    }

    /// The algorithm this key signs with when nothing else is said.
    pub fn default_alg(&self) -> Alg {
        match self {
            SigningKey::Ed25519(_) => Alg::EdDSA,
            SigningKey::P256(_) => Alg::ES256,
            SigningKey::P384(_) => Alg::ES384,
            SigningKey::Rsa(_) => Alg::RS256,
        }
    }

    /// Whether `alg` is an algorithm of this key's type.
    pub fn fits(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (SigningKey::Ed25519(_), Alg::EdDSA)
                | (SigningKey::P256(_), Alg::ES256)
                | (SigningKey::P384(_), Alg::ES384)
                | (SigningKey::Rsa(_), Alg::RS256 | Alg::PS256)
        )
    }

    /// The public members RFC 7638 requires, in its (lexicographic) order, values base64url.
    pub fn public_members(&self) -> Result<Vec<(&'static str, String)>, ClientError> {
        Ok(match self {
            SigningKey::Ed25519(k) => vec![
                ("crv", "Ed25519".into()),
                ("kty", "OKP".into()),
                ("x", b64(k.verifying_key().as_bytes())),
            ],
            SigningKey::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                let (x, y) = ec_coordinates(p.as_bytes(), 32)?;
                vec![
                    ("crv", "P-256".into()),
                    ("kty", "EC".into()),
                    ("x", b64(x)),
                    ("y", b64(y)),
                ]
            }
            SigningKey::P384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                let (x, y) = ec_coordinates(p.as_bytes(), 48)?;
                vec![
                    ("crv", "P-384".into()),
                    ("kty", "EC".into()),
                    ("x", b64(x)),
                    ("y", b64(y)),
                ]
            }
            SigningKey::Rsa(k) => {
                use rsa::traits::PublicKeyParts;
                vec![
                    ("e", b64(&k.e().to_bytes_be())),
                    ("kty", "RSA".into()),
                    ("n", b64(&k.n().to_bytes_be())),
                ]
            }
        })
    }

    /// The private members of the JWK (`d`, and for RSA `p`, `q`, `dp`, `dq`, `qi`).
    pub fn private_members(&self) -> Result<Vec<(&'static str, String)>, ClientError> {
        Ok(match self {
            SigningKey::Ed25519(k) => vec![("d", b64(&k.to_bytes()))],
            SigningKey::P256(k) => vec![("d", b64(&k.to_bytes()))],
            SigningKey::P384(k) => vec![("d", b64(&k.to_bytes()))],
            SigningKey::Rsa(k) => {
                use rsa::traits::PrivateKeyParts;
                let (Some(dp), Some(dq), Some(qi), [p, q]) =
                    (k.dp(), k.dq(), k.crt_coefficient(), k.primes())
                else {
                    return Err(ClientError("RSA key lacks CRT values".into()));
                };
                let uint = |v: &rsa::BigUint| b64(&v.to_bytes_be());
                vec![
                    ("d", uint(k.d())),
                    ("p", uint(p)),
                    ("q", uint(q)),
                    ("dp", uint(dp)),
                    ("dq", uint(dq)),
                    ("qi", uint(&qi)),
                ]
            }
        })
    }

    /// The public JWK with the required members only, as canonical JSON: what goes in a
    /// proof's `jwk` header and what RFC 7638 hashes.
    pub fn public_jwk(&self) -> Result<String, ClientError> {
        let members = self.public_members()?;
        let body: Vec<String> = members
            .iter()
            // Member values are base64url or fixed names: no JSON escaping needed.
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        Ok(format!("{{{}}}", body.join(",")))
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: the `jkt` a token binds.
    pub fn thumbprint(&self) -> String {
        self.public_jwk()
            .map(|j| b64(&Sha256::digest(j.as_bytes())))
            .unwrap_or_default()
    }

    /// The JWS signature over `input` with `alg`, which must fit the key type.
    pub fn sign(&self, alg: Alg, input: &[u8]) -> Result<Vec<u8>, ClientError> {
        let failed =
            |e: &dyn std::fmt::Display| ClientError(format!("{} signing failed: {e}", alg.name()));
        match (self, alg) {
            (SigningKey::Ed25519(k), Alg::EdDSA) => {
                use ed25519_dalek::Signer;
                Ok(k.sign(input).to_bytes().to_vec())
            }
            (SigningKey::P256(k), Alg::ES256) => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = k.try_sign(input).map_err(|e| failed(&e))?;
                Ok(s.to_bytes().to_vec())
            }
            (SigningKey::P384(k), Alg::ES384) => {
                use p384::ecdsa::signature::Signer;
                let s: p384::ecdsa::Signature = k.try_sign(input).map_err(|e| failed(&e))?;
                Ok(s.to_bytes().to_vec())
            }
            (SigningKey::Rsa(k), Alg::RS256) => k
                .sign_with_rng(
                    &mut random_rng(),
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(input),
                )
                .map_err(|e| failed(&e)),
            (SigningKey::Rsa(k), Alg::PS256) => k
                .sign_with_rng(
                    &mut random_rng(),
                    rsa::Pss::new_with_salt::<Sha256>(32),
                    &Sha256::digest(input),
                )
                .map_err(|e| failed(&e)),
            _ => Err(ClientError(format!(
                "alg {} does not fit a {} key",
                alg.name(),
                self.kind_name()
            ))),
        }
    }
}
