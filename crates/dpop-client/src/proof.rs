//! Compact JWS and DPoP proofs (RFC 9449 §4.2): the `dpop+jwt` header carrying the public
//! JWK, the claims, and the `ath` hash of the access token.

use crate::{b64, random_jti, Alg, ClientError, SigningKey};
use sha2::{Digest, Sha256};

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64(&Sha256::digest(access_token.as_bytes()))
}

/// The protected header of a proof: `{"typ":"dpop+jwt","alg":...,"jwk":{required members}}`.
pub fn dpop_header(alg: Alg, key: &SigningKey) -> Result<String, ClientError> {
    Ok(format!(
        r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
        alg.name(),
        key.public_jwk()?
    ))
}

/// `BASE64URL(header).BASE64URL(payload).BASE64URL(signature)` over any bytes: tests use it
/// to sign headers and payloads a well-behaved client would never produce.
pub fn compact_jws(
    header: &[u8],
    payload: &[u8],
    key: &SigningKey,
    alg: Alg,
) -> Result<String, ClientError> {
    sign_input(format!("{}.{}", b64(header), b64(payload)), key, alg)
}

fn sign_input(input: String, key: &SigningKey, alg: Alg) -> Result<String, ClientError> {
    let sig = key.sign(alg, input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&sig)))
}

/// The claims of one proof. `to_json` writes them in the order RFC 9449's examples use.
#[derive(Debug, Clone, Default)]
pub struct ProofClaims<'a> {
    pub jti: String,
    pub htm: &'a str,
    pub htu: &'a str,
    pub iat: i64,
    /// `ath`, already hashed (see [`ath`]).
    pub ath: Option<String>,
    pub nonce: Option<&'a str>,
}

impl<'a> ProofClaims<'a> {
    /// Claims with a fresh random `jti`, for `htm` `htu` at `iat`.
    pub fn new(htm: &'a str, htu: &'a str, iat: i64) -> Result<ProofClaims<'a>, ClientError> {
        Ok(ProofClaims {
            jti: random_jti()?,
            htm,
            htu,
            iat,
            ath: None,
            nonce: None,
        })
    }

    /// Binds the proof to `access_token` (sets `ath`).
    pub fn for_token(mut self, access_token: &str) -> ProofClaims<'a> {
        self.ath = Some(ath(access_token));
        self
    }

    pub fn to_json(&self) -> String {
        let mut o = serde_json::Map::new();
        o.insert("jti".into(), self.jti.clone().into());
        o.insert("htm".into(), self.htm.into());
        o.insert("htu".into(), self.htu.into());
        o.insert("iat".into(), self.iat.into());
        if let Some(a) = &self.ath {
            o.insert("ath".into(), a.clone().into());
        }
        if let Some(n) = self.nonce {
            o.insert("nonce".into(), n.into());
        }
        serde_json::Value::Object(o).to_string()
    }
}

/// One key and algorithm with the header encoded once: signs many proofs cheaply.
#[derive(Debug, Clone)]
pub struct ProofSigner {
    key: SigningKey,
    alg: Alg,
    header_b64: String,
}

impl ProofSigner {
    /// Refuses an `alg` that does not fit the key (the verifier would refuse the proof too).
    pub fn new(key: SigningKey, alg: Alg) -> Result<ProofSigner, ClientError> {
        if !key.fits(alg) {
            return Err(ClientError(format!(
                "alg {} does not fit a {} key",
                alg.name(),
                key.kind_name()
            )));
        }
        let header_b64 = b64(dpop_header(alg, &key)?.as_bytes());
        Ok(ProofSigner {
            key,
            alg,
            header_b64,
        })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The proof for `claims`.
    pub fn proof(&self, claims: &ProofClaims<'_>) -> Result<String, ClientError> {
        self.sign_claims(&claims.to_json())
    }

    /// A proof over claims given as JSON text, signed as is (so it may hold anything).
    pub fn sign_claims(&self, claims_json: &str) -> Result<String, ClientError> {
        sign_input(
            format!("{}.{}", self.header_b64, b64(claims_json.as_bytes())),
            &self.key,
            self.alg,
        )
    }
}
