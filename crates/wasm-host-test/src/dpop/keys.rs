//! Client keys, proofs and tokens for the glue tests, made natively with the shared client
//! library (`dpop-client`): [`Key`] (Ed25519), [`AlgKey`] (any JWS algorithm), tokens for
//! `access_token.verify = "upstream"`.

use dpop_client::{Alg, SigningKey};
use dpop_guard::b64;
use std::fmt;

/// An Ed25519 client key.
#[derive(Clone)]
pub struct Key(SigningKey);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.jkt())
    }
}

/// What goes into a proof's claims.
#[derive(Debug, Clone, Default)]
pub struct ProofClaims<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub iat: i64,
    pub jti: &'a str,
    /// Adds `ath` for this token.
    pub token: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

impl Key {
    /// A deterministic key; different `n`, different key.
    pub fn new(n: u64) -> Key {
        Key(SigningKey::ed25519_from_seed(&n.to_le_bytes()))
    }

    pub fn jwk(&self) -> String {
        self.0.public_jwk().unwrap_or_default()
    }

    /// RFC 7638 thumbprint, as the filter computes it.
    pub fn jkt(&self) -> String {
        dpop_guard::jose::PublicJwk::from_json(self.jwk().as_bytes())
            .map(|k| k.thumbprint())
            .unwrap_or_default()
    }

    /// A compact JWS over any header and claims text.
    pub fn sign(&self, header: &str, claims: &str) -> String {
        dpop_client::compact_jws(header.as_bytes(), claims.as_bytes(), &self.0, Alg::EdDSA)
            .unwrap_or_default()
    }

    pub fn proof_header(&self) -> String {
        dpop_client::dpop_header(Alg::EdDSA, &self.0).unwrap_or_default()
    }

    pub fn proof(&self, c: &ProofClaims<'_>) -> String {
        let claims = dpop_client::ProofClaims {
            jti: c.jti.to_owned(),
            htm: c.htm,
            htu: c.htu,
            iat: c.iat,
            ath: c.token.map(dpop_client::ath),
            nonce: c.nonce,
        };
        self.sign(&self.proof_header(), &claims.to_json())
    }
}

/// A client key for one JWS algorithm — EdDSA, ES256, ES384, RS256 or PS256 — for the paths
/// [`Key`] (Ed25519 only) does not reach, such as the host's `verify_signature` (RS256, ES256).
#[derive(Clone)]
pub struct AlgKey {
    key: SigningKey,
    alg: Alg,
}

impl fmt::Debug for AlgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AlgKey({}, {})", self.alg.name(), self.jkt())
    }
}

impl AlgKey {
    /// A deterministic key for `alg`; different `n`, different key. EdDSA: the key of
    /// [`Key::new`]`(n)`. RSA keys (RS256, PS256) are not derived from seeds: one 2048-bit key
    /// is generated per `n` and kept for the process.
    pub fn new(alg: Alg, n: u64) -> Result<AlgKey, String> {
        use dpop_client::KeyKind;
        let seed = n.to_le_bytes();
        let key = match alg {
            Alg::EdDSA => SigningKey::ed25519_from_seed(&seed),
            Alg::ES256 => SigningKey::from_seed(KeyKind::P256, &seed).map_err(|e| e.0)?,
            Alg::ES384 => SigningKey::from_seed(KeyKind::P384, &seed).map_err(|e| e.0)?,
            Alg::RS256 | Alg::PS256 => rsa_key(n)?,
        };
        Ok(AlgKey { key, alg })
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn jwk(&self) -> String {
        self.key.public_jwk().unwrap_or_default()
    }

    /// RFC 7638 thumbprint, as the filter computes it.
    pub fn jkt(&self) -> String {
        dpop_guard::jose::PublicJwk::from_json(self.jwk().as_bytes())
            .map(|k| k.thumbprint())
            .unwrap_or_default()
    }

    /// A compact JWS over any header and claims text.
    pub fn sign(&self, header: &str, claims: &str) -> String {
        dpop_client::compact_jws(header.as_bytes(), claims.as_bytes(), &self.key, self.alg)
            .unwrap_or_default()
    }

    pub fn proof_header(&self) -> String {
        dpop_client::dpop_header(self.alg, &self.key).unwrap_or_default()
    }

    pub fn proof(&self, c: &ProofClaims<'_>) -> String {
        let claims = dpop_client::ProofClaims {
            jti: c.jti.to_owned(),
            htm: c.htm,
            htu: c.htu,
            iat: c.iat,
            ath: c.token.map(dpop_client::ath),
            nonce: c.nonce,
        };
        self.sign(&self.proof_header(), &claims.to_json())
    }

    /// `jws` with its signature replaced by this key's signature over other text: a forgery
    /// of the right length and shape (ES256: r and s in range; RSA: the modulus length, below
    /// n), so every pre-check passes and only the verification itself can refuse it.
    pub fn forge(&self, jws: &str) -> String {
        let Some((input, _)) = jws.rsplit_once('.') else {
            return jws.to_owned();
        };
        let other = self
            .key
            .sign(self.alg, format!("{input}.forged").as_bytes())
            .unwrap_or_default();
        format!("{input}.{}", b64::encode(&other))
    }
}

/// The RSA key of [`AlgKey::new`] for `n`: generated on first use, then kept.
fn rsa_key(n: u64) -> Result<SigningKey, String> {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};
    static KEYS: OnceLock<Mutex<BTreeMap<u64, SigningKey>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|e| e.to_string())?;
    if let Some(k) = keys.get(&n) {
        return Ok(k.clone());
    }
    let k = SigningKey::generate(dpop_client::KeyKind::Rsa { bits: 2048 }).map_err(|e| e.0)?;
    keys.insert(n, k.clone());
    Ok(k)
}

/// A JWT for `access_token.verify = "upstream"` (payload decoded, signature not checked).
pub fn upstream_token(payload: &str) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64::encode(payload.as_bytes()),
        b64::encode(b"not-checked-here")
    )
}

/// An `upstream` token bound to `jkt`.
pub fn bound_token(jkt: &str) -> String {
    upstream_token(&format!(r#"{{"sub":"agent-1","cnf":{{"jkt":"{jkt}"}}}}"#))
}
