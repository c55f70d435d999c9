//! JWKs for the CLI: generating private keys, loading private or public JWKs (file, `-`, or
//! inline JSON), checking that private and public members belong together, and signing.
//!
//! Public-key validation and thumbprints are the filter's own (`dpop_guard::jose::PublicJwk`),
//! so the CLI and the filter cannot disagree about a key.

use crate::bail;
use crate::error::CliError;
use crate::json_out::OrderedObject;
use dpop_guard::b64;
use dpop_guard::jose::{Alg, JwkError, PublicJwk};
use dpop_guard::json::{parse_object, Json, Object};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::io::Read;

/// Members only a private (or symmetric) JWK carries.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Longest key input we read (a JWK of an 8192-bit RSA key is about 6 KiB).
const MAX_INPUT_BYTES: u64 = 1 << 20;

/// The private half of a key we can sign with.
pub enum PrivateKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// A loaded JWK: always a valid public key, plus the private key when the JWK had one.
pub struct Key {
    pub public: PublicJwk,
    pub private: Option<PrivateKey>,
    /// The JWK's `alg` member, already checked against the key type.
    pub alg: Option<Alg>,
    pub kid: Option<String>,
    pub key_use: Option<String>,
}

/// Reads text from a file path, `-` (stdin) or inline text starting with `{`.
pub fn read_source(what: &str, src: &str) -> Result<String, CliError> {
    if src.trim_start().starts_with('{') {
        return Ok(src.to_owned());
    }
    let mut buf = Vec::new();
    let res = if src == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buf)
    } else {
        std::fs::File::open(src).and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf))
    };
    let name = if src == "-" {
        "stdin".to_owned()
    } else {
        format!("'{src}'")
    };
    if let Err(e) = res {
        bail!("{what}: cannot read {name}: {e}");
    }
    if buf.len() as u64 > MAX_INPUT_BYTES {
        bail!("{what}: {name} is larger than {MAX_INPUT_BYTES} bytes");
    }
    String::from_utf8(buf).map_err(|_| CliError(format!("{what}: {name} is not UTF-8 text")))
}

/// Parses a key given as a path, `-` or inline JSON.
pub fn load_key(what: &str, src: &str) -> Result<Key, CliError> {
    let text = read_source(what, src)?;
    parse_key(what, &text)
}

fn kty_name(k: &PublicJwk) -> &'static str {
    match k {
        PublicJwk::Ed25519 { .. } => "OKP Ed25519",
        PublicJwk::P256 { .. } => "EC P-256",
        PublicJwk::P384 { .. } => "EC P-384",
        PublicJwk::Rsa { .. } => "RSA",
    }
}

/// The algorithm a key signs with when nothing else is said.
pub fn default_alg(k: &PublicJwk) -> Alg {
    match k {
        PublicJwk::Ed25519 { .. } => Alg::EdDSA,
        PublicJwk::P256 { .. } => Alg::ES256,
        PublicJwk::P384 { .. } => Alg::ES384,
        PublicJwk::Rsa { .. } => Alg::RS256,
    }
}

/// Parses JWK text (a JWKS with exactly one key is accepted too).
pub fn parse_key(what: &str, text: &str) -> Result<Key, CliError> {
    let Some(mut obj) = parse_object(text.trim().as_bytes()) else {
        bail!("{what}: not a JSON object (expected a JWK as a file path, '-' for stdin, or inline JSON starting with '{{'; duplicate member names are refused)");
    };
    if let Some(Json::Array(keys)) = obj.get("keys") {
        match keys.as_slice() {
            [Json::Object(one)] => obj = one.clone(),
            _ => bail!("{what}: a JWKS must hold exactly one key here"),
        }
    }
    let public_members = Object(
        obj.0
            .iter()
            .filter(|(k, _)| !PRIVATE_MEMBERS.contains(&k.as_str()))
            .cloned()
            .collect(),
    );
    let public = PublicJwk::from_object(&public_members).map_err(|e| match e {
        JwkError::Private => CliError(format!("{what}: unexpected private member")),
        JwkError::Invalid => CliError(format!(
            "{what}: not a usable JWK (supported: OKP Ed25519, EC P-256/P-384 with full-length coordinates, RSA 2048-4096 bits with e = 65537; 'use' must be 'sig')"
        )),
    })?;
    let text_member = |name: &str| -> Result<Option<String>, CliError> {
        obj.str(name)
            .map(|o| o.map(str::to_owned))
            .map_err(|_| CliError(format!("{what}: member '{name}' must be a string")))
    };
    let alg = match text_member("alg")? {
        None => None,
        Some(name) => {
            let alg = Alg::from_name(&name)
                .ok_or_else(|| CliError(format!("{what}: unsupported alg '{name}'")))?;
            if !public.accepts(alg) {
                bail!(
                    "{what}: alg '{name}' does not fit a {} key",
                    kty_name(&public)
                );
            }
            Some(alg)
        }
    };
    let kid = text_member("kid")?;
    let key_use = text_member("use")?;
    let private = if obj.contains("d") {
        Some(private_key(what, &obj, &public)?)
    } else if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains(m)) {
        bail!("{what}: member '{m}' without 'd'");
    } else {
        None
    };
    Ok(Key {
        public,
        private,
        alg,
        kid,
        key_use,
    })
}

fn member_bytes(what: &str, o: &Object, name: &str) -> Result<Vec<u8>, CliError> {
    match o.str(name) {
        Ok(Some(s)) => b64::decode(s).ok_or_else(|| {
            CliError(format!(
                "{what}: member '{name}' is not base64url (no padding)"
            ))
        }),
        Ok(None) => bail!("{what}: member '{name}' missing"),
        Err(_) => bail!("{what}: member '{name}' must be a string"),
    }
}

fn fixed<const N: usize>(what: &str, o: &Object, name: &str) -> Result<[u8; N], CliError> {
    member_bytes(what, o, name)?
        .try_into()
        .map_err(|_| CliError(format!("{what}: member '{name}' must be {N} bytes")))
}

fn biguint(what: &str, o: &Object, name: &str) -> Result<rsa::BigUint, CliError> {
    Ok(rsa::BigUint::from_bytes_be(&member_bytes(what, o, name)?))
}

fn private_key(what: &str, o: &Object, public: &PublicJwk) -> Result<PrivateKey, CliError> {
    let mismatch = || {
        CliError(format!(
            "{what}: private key 'd' does not match the public members"
        ))
    };
    match public {
        PublicJwk::Ed25519 { x, .. } => {
            let d = fixed::<32>(what, o, "d")?;
            let sk = ed25519_dalek::SigningKey::from_bytes(&d);
            if sk.verifying_key().as_bytes() != x {
                return Err(mismatch());
            }
            Ok(PrivateKey::Ed25519(sk))
        }
        PublicJwk::P256 { x, y, .. } => {
            let d = fixed::<32>(what, o, "d")?;
            let sk = p256::ecdsa::SigningKey::from_slice(&d)
                .map_err(|_| CliError(format!("{what}: 'd' is not a valid P-256 scalar")))?;
            let expected =
                p256::EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
            if sk.verifying_key().to_encoded_point(false) != expected {
                return Err(mismatch());
            }
            Ok(PrivateKey::P256(sk))
        }
        PublicJwk::P384 { x, y, .. } => {
            let d = fixed::<48>(what, o, "d")?;
            let sk = p384::ecdsa::SigningKey::from_slice(&d)
                .map_err(|_| CliError(format!("{what}: 'd' is not a valid P-384 scalar")))?;
            let expected =
                p384::EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
            if sk.verifying_key().to_encoded_point(false) != expected {
                return Err(mismatch());
            }
            Ok(PrivateKey::P384(sk))
        }
        PublicJwk::Rsa { n, e, .. } => {
            // n and e were validated by PublicJwk (size, odd e, 3 <= e < 2^32).
            let n = rsa::BigUint::from_bytes_be(n);
            let e = rsa::BigUint::from_bytes_be(e);
            let d = biguint(what, o, "d")?;
            let one = rsa::BigUint::from_bytes_be(&[1]);
            if d <= one || d >= n {
                bail!("{what}: RSA 'd' out of range");
            }
            let primes = match (o.contains("p"), o.contains("q")) {
                (true, true) => {
                    let p = biguint(what, o, "p")?;
                    let q = biguint(what, o, "q")?;
                    if p <= one || q <= one {
                        bail!("{what}: RSA 'p'/'q' out of range");
                    }
                    vec![p, q]
                }
                // Primes are recovered from n, e, d (NIST SP 800-56B Appendix C.2).
                (false, false) => Vec::new(),
                _ => bail!("{what}: RSA 'p' and 'q' must come together"),
            };
            if o.contains("oth") {
                bail!("{what}: multi-prime RSA ('oth') is not supported");
            }
            let key = rsa::RsaPrivateKey::from_components(n, e, d, primes)
                .map_err(|err| CliError(format!("{what}: inconsistent RSA private key: {err}")))?;
            Ok(PrivateKey::Rsa(Box::new(key)))
        }
    }
}

/// Key types `keygen` makes.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    Ed25519,
    P256,
    P384,
    Rsa { bits: usize },
}

impl KeyKind {
    pub fn for_alg(alg: Alg, rsa_bits: usize) -> KeyKind {
        match alg {
            Alg::EdDSA => KeyKind::Ed25519,
            Alg::ES256 => KeyKind::P256,
            Alg::ES384 => KeyKind::P384,
            Alg::RS256 | Alg::PS256 => KeyKind::Rsa { bits: rsa_bits },
        }
    }
}

/// Generates a private key and returns it as a private JWK (one line of JSON).
pub fn generate(
    kind: KeyKind,
    alg: Alg,
    kid: Option<&str>,
) -> Result<(String, PublicJwk), CliError> {
    let mut o = OrderedObject::new();
    match kind {
        KeyKind::Ed25519 => {
            let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
            o.set("kty", "OKP").set("crv", "Ed25519");
            o.set("x", b64::encode(sk.verifying_key().as_bytes()));
            o.set("d", b64::encode(&sk.to_bytes()));
        }
        KeyKind::P256 => {
            let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
            let pt = sk.verifying_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (pt.x(), pt.y()) else {
                bail!("generated P-256 key has no affine coordinates");
            };
            o.set("kty", "EC").set("crv", "P-256");
            o.set("x", b64::encode(x)).set("y", b64::encode(y));
            o.set("d", b64::encode(&sk.to_bytes()));
        }
        KeyKind::P384 => {
            let sk = p384::ecdsa::SigningKey::random(&mut OsRng);
            let pt = sk.verifying_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (pt.x(), pt.y()) else {
                bail!("generated P-384 key has no affine coordinates");
            };
            o.set("kty", "EC").set("crv", "P-384");
            o.set("x", b64::encode(x)).set("y", b64::encode(y));
            o.set("d", b64::encode(&sk.to_bytes()));
        }
        KeyKind::Rsa { bits } => {
            use rsa::traits::{PrivateKeyParts, PublicKeyParts};
            let key = rsa::RsaPrivateKey::new(&mut OsRng, bits)
                .map_err(|e| CliError(format!("RSA key generation failed: {e}")))?;
            let (Some(dp), Some(dq), Some(qi), [p, q]) =
                (key.dp(), key.dq(), key.crt_coefficient(), key.primes())
            else {
                bail!("generated RSA key lacks CRT values");
            };
            let uint = |v: &rsa::BigUint| b64::encode(&v.to_bytes_be());
            o.set("kty", "RSA");
            o.set("n", uint(key.n()))
                .set("e", uint(key.e()))
                .set("d", uint(key.d()));
            o.set("p", uint(p)).set("q", uint(q));
            o.set("dp", uint(dp))
                .set("dq", uint(dq))
                .set("qi", uint(&qi));
        }
    }
    if let Some(kid) = kid {
        o.set("kid", kid);
    }
    o.set("alg", alg.name());
    let json = o.to_json()?;
    // Round-trip through the loader: what we print must be what we (and the filter) accept.
    let key = parse_key("generated key", &json)?;
    Ok((json, key.public))
}

impl Key {
    /// The algorithm to sign with: an explicit choice, else the JWK's `alg`, else the key type's.
    pub fn pick_alg(&self, explicit: Option<Alg>) -> Result<Alg, CliError> {
        let alg = explicit
            .or(self.alg)
            .unwrap_or_else(|| default_alg(&self.public));
        if !self.public.accepts(alg) {
            bail!(
                "alg {} does not fit a {} key",
                alg.name(),
                kty_name(&self.public)
            );
        }
        Ok(alg)
    }

    /// The public JWK with only the members RFC 7638 requires (what goes in a proof header).
    pub fn public_required(&self) -> OrderedObject {
        let mut o = OrderedObject::new();
        match &self.public {
            PublicJwk::Ed25519 { x, .. } => {
                o.set("kty", "OKP")
                    .set("crv", "Ed25519")
                    .set("x", b64::encode(x));
            }
            PublicJwk::P256 { x, y, .. } => {
                o.set("kty", "EC").set("crv", "P-256");
                o.set("x", b64::encode(x)).set("y", b64::encode(y));
            }
            PublicJwk::P384 { x, y, .. } => {
                o.set("kty", "EC").set("crv", "P-384");
                o.set("x", b64::encode(x)).set("y", b64::encode(y));
            }
            PublicJwk::Rsa { n, e, .. } => {
                o.set("kty", "RSA")
                    .set("n", b64::encode(n))
                    .set("e", b64::encode(e));
            }
        }
        o
    }

    /// The public JWK for publishing: required members plus `kid`, `use` and `alg` when known.
    pub fn public_full(&self) -> OrderedObject {
        let mut o = self.public_required();
        if let Some(kid) = &self.kid {
            o.set("kid", kid.as_str());
        }
        if let Some(u) = &self.key_use {
            o.set("use", u.as_str());
        }
        if let Some(alg) = self.alg {
            o.set("alg", alg.name());
        }
        o
    }

    /// Signs a JWS signing input and checks the signature with the public key before returning it.
    pub fn sign(&self, alg: Alg, input: &[u8]) -> Result<Vec<u8>, CliError> {
        let Some(private) = &self.private else {
            bail!("--key holds a public key only; signing needs the private JWK (with 'd')");
        };
        let sig = match (private, alg) {
            (PrivateKey::Ed25519(sk), Alg::EdDSA) => {
                use ed25519_dalek::Signer;
                sk.sign(input).to_bytes().to_vec()
            }
            (PrivateKey::P256(sk), Alg::ES256) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = sk
                    .try_sign(input)
                    .map_err(|e| CliError(format!("ES256 signing failed: {e}")))?;
                sig.to_bytes().to_vec()
            }
            (PrivateKey::P384(sk), Alg::ES384) => {
                use p384::ecdsa::signature::Signer;
                let sig: p384::ecdsa::Signature = sk
                    .try_sign(input)
                    .map_err(|e| CliError(format!("ES384 signing failed: {e}")))?;
                sig.to_bytes().to_vec()
            }
            (PrivateKey::Rsa(key), Alg::RS256) => key
                .sign_with_rng(
                    &mut OsRng,
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(input),
                )
                .map_err(|e| CliError(format!("RS256 signing failed: {e}")))?,
            (PrivateKey::Rsa(key), Alg::PS256) => key
                .sign_with_rng(
                    &mut OsRng,
                    rsa::Pss::new_with_salt::<Sha256>(32),
                    &Sha256::digest(input),
                )
                .map_err(|e| CliError(format!("PS256 signing failed: {e}")))?,
            _ => bail!(
                "alg {} does not fit a {} key",
                alg.name(),
                kty_name(&self.public)
            ),
        };
        if !self.public.verify(alg, input, &sig) {
            bail!("signature does not verify with the key's public members (inconsistent JWK?)");
        }
        Ok(sig)
    }
}

/// `n` random bytes, base64url.
pub fn random_b64(n: usize) -> Result<String, CliError> {
    let mut buf = vec![0u8; n];
    OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| CliError(format!("no randomness from the OS: {e}")))?;
    Ok(b64::encode(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_sign() {
        for (kind, alg) in [
            (KeyKind::Ed25519, Alg::EdDSA),
            (KeyKind::P256, Alg::ES256),
            (KeyKind::P384, Alg::ES384),
        ] {
            let (json, public) = generate(kind, alg, Some("k1")).unwrap();
            let key = parse_key("k", &json).unwrap();
            assert_eq!(key.public.thumbprint(), public.thumbprint());
            assert_eq!(key.pick_alg(None).unwrap(), alg);
            let sig = key.sign(alg, b"abc").unwrap();
            assert!(public.verify(alg, b"abc", &sig));
            assert_eq!(key.kid.as_deref(), Some("k1"));
        }
    }

    #[test]
    fn mismatched_private_part_refused() {
        let (a, _) = generate(KeyKind::Ed25519, Alg::EdDSA, None).unwrap();
        let (b, _) = generate(KeyKind::Ed25519, Alg::EdDSA, None).unwrap();
        let a: serde_json::Value = serde_json::from_str(&a).unwrap();
        let mut b: serde_json::Value = serde_json::from_str(&b).unwrap();
        b["d"] = a["d"].clone();
        let err = parse_key("k", &b.to_string()).err().unwrap();
        assert!(err.0.contains("does not match"), "{err}");
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            "{",
            "[]",
            "{\"kty\":\"OKP\"}",
            "{\"kty\":\"oct\",\"k\":\"AAAA\"}",
            "{\"a\":1,\"a\":2}",
        ] {
            assert!(parse_key("k", bad).is_err(), "{bad}");
        }
    }
}
