//! JWKs for the CLI: generating private keys, loading private or public JWKs (file, `-`, or
//! inline JSON), checking that private and public members belong together, and signing.
//!
//! Public-key validation and thumbprints are the filter's own (`dpop_guard::jose::PublicJwk`),
//! so the CLI and the filter cannot disagree about a key.

use crate::bail;
use crate::error::CliError;
use crate::json_out::OrderedObject;
pub use dpop_client::KeyKind;
use dpop_client::SigningKey;
use dpop_guard::b64;
use dpop_guard::jose::{Alg, JwkError, PublicJwk};
use dpop_guard::json::{parse_object, Json, Object};
use std::io::Read;

/// Members only a private (or symmetric) JWK carries.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Longest key input we read (a JWK of an 8192-bit RSA key is about 6 KiB).
const MAX_INPUT_BYTES: u64 = 1 << 20;

/// A loaded JWK: always a valid public key, plus the private key when the JWK had one.
pub struct Key {
    pub public: PublicJwk,
    pub private: Option<SigningKey>,
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

/// The signing key of a private JWK whose public members are already validated as `public`.
fn private_key(what: &str, o: &Object, public: &PublicJwk) -> Result<SigningKey, CliError> {
    let d = member_bytes(what, o, "d")?;
    let in_context = |e: dpop_client::ClientError| CliError(format!("{what}: {e}"));
    let key = match public {
        PublicJwk::Ed25519 { .. } => SigningKey::ed25519(&d).map_err(in_context)?,
        PublicJwk::P256 { .. } => SigningKey::p256(&d).map_err(in_context)?,
        PublicJwk::P384 { .. } => SigningKey::p384(&d).map_err(in_context)?,
        PublicJwk::Rsa { n, e, .. } => {
            if o.contains("oth") {
                bail!("{what}: multi-prime RSA ('oth') is not supported");
            }
            let primes = match (o.contains("p"), o.contains("q")) {
                (true, true) => Some((member_bytes(what, o, "p")?, member_bytes(what, o, "q")?)),
                (false, false) => None,
                _ => bail!("{what}: RSA 'p' and 'q' must come together"),
            };
            let primes = primes.as_ref().map(|(p, q)| (p.as_slice(), q.as_slice()));
            SigningKey::rsa(n, e, &d, primes).map_err(in_context)?
        }
    };
    // The client computes the public members from `d` itself: they must be the JWK's.
    if key.public_jwk().map_err(in_context)? != public.thumbprint_input() {
        bail!("{what}: private key 'd' does not match the public members");
    }
    Ok(key)
}

/// The client library's name of `alg` (both follow the JOSE registry).
pub fn client_alg(alg: Alg) -> Result<dpop_client::Alg, CliError> {
    dpop_client::Alg::from_name(alg.name())
        .ok_or_else(|| CliError(format!("alg {} cannot be signed here", alg.name())))
}

/// Generates a private key and returns it as a private JWK (one line of JSON).
pub fn generate(
    kind: KeyKind,
    alg: Alg,
    kid: Option<&str>,
) -> Result<(String, PublicJwk), CliError> {
    let key = SigningKey::generate(kind)?;
    let public = key.public_members()?;
    let private = key.private_members()?;
    let mut o = OrderedObject::new();
    // `kty` first, as people write JWKs; then the other public members, then the private ones.
    for (name, value) in public.iter().filter(|(n, _)| *n == "kty") {
        o.set(name, value.as_str());
    }
    for (name, value) in public.iter().chain(&private).filter(|(n, _)| *n != "kty") {
        o.set(name, value.as_str());
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
        let sig = private.sign(client_alg(alg)?, input)?;
        if !self.public.verify(alg, input, &sig) {
            bail!("signature does not verify with the key's public members (inconsistent JWK?)");
        }
        Ok(sig)
    }
}

/// `n` random bytes, base64url.
pub fn random_b64(n: usize) -> Result<String, CliError> {
    dpop_client::random_bytes(n)
        .map(|b| b64::encode(&b))
        .map_err(|e| CliError(e.to_string()))
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
