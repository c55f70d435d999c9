//! Client keys and DPoP proofs, signed here with the same crates as the `dpop` CLI. The public
//! JWK goes through the filter's own `PublicJwk` (validation and RFC 7638 members), and the
//! first proof of every key is run through the filter's native `verify_proof` before any load
//! is sent, so a proof the filter would refuse is caught before Envoy sees it.

use dpop_guard::b64;
use dpop_guard::jose::{Alg, PublicJwk};
use dpop_guard::{verify_proof, ProofPolicy, RequestFacts};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The private half of a client key.
enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// One client key with its pre-encoded JWS protected header.
pub struct ClientKey {
    alg: Alg,
    signer: Signer,
    /// base64url of `{"typ":"dpop+jwt","alg":...,"jwk":{...}}`.
    header_b64: String,
    pub public: PublicJwk,
}

pub fn now_secs() -> Result<i64, String> {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "system clock is before 1970".to_owned())?;
    i64::try_from(d.as_secs()).map_err(|_| "system clock out of range".to_owned())
}

fn random_b64(n: usize) -> Result<String, String> {
    Ok(b64::encode(&random_bytes(n)?))
}

pub fn parse_alg(name: &str) -> Result<Alg, String> {
    match Alg::from_name(name) {
        Some(a @ (Alg::EdDSA | Alg::ES256 | Alg::RS256)) => Ok(a),
        _ => Err(format!("--alg {name}: expected EdDSA, ES256 or RS256")),
    }
}

impl ClientKey {
    pub fn generate(alg: Alg) -> Result<ClientKey, String> {
        let (signer, jwk_json) = match alg {
            Alg::EdDSA => {
                let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
                let jwk = serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519",
                    "x": b64::encode(sk.verifying_key().as_bytes()),
                });
                (Signer::Ed25519(sk), jwk)
            }
            Alg::ES256 => {
                let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
                let pt = sk.verifying_key().to_encoded_point(false);
                let (Some(x), Some(y)) = (pt.x(), pt.y()) else {
                    return Err("generated P-256 key has no affine coordinates".into());
                };
                let jwk = serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": b64::encode(x), "y": b64::encode(y),
                });
                (Signer::P256(sk), jwk)
            }
            Alg::RS256 => {
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048)
                    .map_err(|e| format!("RSA key generation failed: {e}"))?;
                let jwk = serde_json::json!({
                    "kty": "RSA",
                    "n": b64::encode(&key.n().to_bytes_be()),
                    "e": b64::encode(&key.e().to_bytes_be()),
                });
                (Signer::Rsa(Box::new(key)), jwk)
            }
            other => return Err(format!("{} is not benchmarked", other.name())),
        };
        let public = PublicJwk::from_json(jwk_json.to_string().as_bytes())
            .map_err(|e| format!("generated {} JWK refused by the filter: {e:?}", alg.name()))?;
        // The header's jwk: exactly the RFC 7638 required members (what a careful client sends).
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
            alg.name(),
            public.thumbprint_input()
        );
        Ok(ClientKey {
            alg,
            signer,
            header_b64: b64::encode(header.as_bytes()),
            public,
        })
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        match &self.signer {
            Signer::Ed25519(sk) => {
                use ed25519_dalek::Signer as _;
                Ok(sk.sign(input).to_bytes().to_vec())
            }
            Signer::P256(sk) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = sk
                    .try_sign(input)
                    .map_err(|e| format!("ES256 signing failed: {e}"))?;
                Ok(sig.to_bytes().to_vec())
            }
            Signer::Rsa(key) => key
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input))
                .map_err(|e| format!("RS256 signing failed: {e}")),
        }
    }

    /// A proof with a fresh random `jti` and `iat` = now.
    pub fn proof(&self, htm: &str, htu: &str) -> Result<String, String> {
        let claims = serde_json::json!({
            "jti": random_b64(16)?,
            "htm": htm,
            "htu": htu,
            "iat": now_secs()?,
        });
        self.sign_claims(&claims.to_string())
    }

    /// A proof over claims given as JSON text (signed as is, so it may hold anything).
    pub fn sign_claims(&self, claims_json: &str) -> Result<String, String> {
        let input = format!(
            "{}.{}",
            self.header_b64,
            b64::encode(claims_json.as_bytes())
        );
        let sig = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", b64::encode(&sig)))
    }
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(buf)
}

/// A random `jti` (16 bytes, base64url).
pub fn random_jti() -> Result<String, String> {
    random_b64(16)
}

/// Checks a proof with the filter's own verifier (natively), as Envoy will see the request.
pub fn self_check(proof: &str, htm: &str, htu: &str, key: &ClientKey) -> Result<(), String> {
    let facts = RequestFacts {
        method: htm,
        uri: htu,
        access_token: None,
        now: now_secs()?,
    };
    let v = verify_proof(proof, &facts, &ProofPolicy::default())
        .map_err(|r| format!("generated proof refused by the native verifier: {r:?}"))?;
    if v.alg != key.alg || v.jkt != key.public.thumbprint() {
        return Err("generated proof verified with the wrong alg or key".into());
    }
    Ok(())
}

/// Generates `n` requests, each carrying a unique proof, round-robin over `keys`, on `threads`
/// threads. `build` turns a proof into the full request bytes.
pub fn make_pool(
    keys: &[ClientKey],
    n: usize,
    htm: &str,
    htu: &str,
    threads: usize,
    build: &(dyn Fn(&str) -> Vec<u8> + Sync),
) -> Result<Vec<Vec<u8>>, String> {
    if keys.is_empty() {
        return Err("no client keys".into());
    }
    for k in keys {
        self_check(&k.proof(htm, htu)?, htm, htu, k)?;
    }
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    let started = Instant::now();
    let parts: Vec<Result<Vec<Vec<u8>>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let lo = t * chunk;
                    let hi = ((t + 1) * chunk).min(n);
                    let mut out = Vec::with_capacity(hi.saturating_sub(lo));
                    for i in lo..hi {
                        let Some(key) = keys.get(i % keys.len()) else {
                            return Err("key index out of range".to_owned());
                        };
                        out.push(build(&key.proof(htm, htu)?));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("proof generator thread panicked".into()))
            })
            .collect()
    });
    let mut pool = Vec::with_capacity(n);
    for p in parts {
        pool.extend(p?);
    }
    eprintln!(
        "dpop-bench: {} unique {} proofs ({} keys) in {:.1} s on {threads} threads",
        pool.len(),
        keys.first().map_or("?", |k| k.alg.name()),
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(pool)
}

/// An ES256 issuer key and a one-hour access token signed with it, for the jwt_authn scenario.
/// Returns (JWKS text, token).
pub fn issuer(iss: &str, kid: &str) -> Result<(String, String), String> {
    use p256::ecdsa::signature::Signer as _;
    let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
    let pt = sk.verifying_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (pt.x(), pt.y()) else {
        return Err("generated P-256 key has no affine coordinates".into());
    };
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": b64::encode(x), "y": b64::encode(y),
        "kid": kid, "alg": "ES256", "use": "sig",
    });
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    let now = now_secs()?;
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let claims = serde_json::json!({
        "iss": iss,
        "sub": "bench-client",
        "client_id": "bench-client",
        "scope": "read write",
        "jti": random_b64(16)?,
        "iat": now,
        "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(claims.to_string().as_bytes())
    );
    let sig: p256::ecdsa::Signature = sk
        .try_sign(input.as_bytes())
        .map_err(|e| format!("ES256 signing failed: {e}"))?;
    let sig = sig.to_bytes().to_vec();
    let public = PublicJwk::from_json(jwk.to_string().as_bytes())
        .map_err(|e| format!("issuer JWK refused: {e:?}"))?;
    if !public.verify(Alg::ES256, input.as_bytes(), &sig) {
        return Err("issuer token does not verify".into());
    }
    Ok((jwks, format!("{input}.{}", b64::encode(&sig))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_of_every_alg_verify() {
        let htu = "http://127.0.0.1:10000/bench";
        for alg in [Alg::EdDSA, Alg::ES256, Alg::RS256] {
            let k = ClientKey::generate(alg).unwrap();
            let a = k.proof("GET", htu).unwrap();
            let b = k.proof("GET", htu).unwrap();
            assert_ne!(a, b, "jti must differ");
            self_check(&a, "GET", htu, &k).unwrap();
            assert!(self_check(&a, "POST", htu, &k).is_err());
        }
    }

    #[test]
    fn pool_is_unique() {
        let keys = vec![
            ClientKey::generate(Alg::EdDSA).unwrap(),
            ClientKey::generate(Alg::EdDSA).unwrap(),
        ];
        let pool = make_pool(&keys, 101, "GET", "http://h/x", 3, &|p| {
            p.as_bytes().to_vec()
        })
        .unwrap();
        assert_eq!(pool.len(), 101);
        let set: std::collections::HashSet<_> = pool.iter().collect();
        assert_eq!(set.len(), 101);
    }

    #[test]
    fn issuer_token_is_es256() {
        let (jwks, token) = issuer("https://issuer.bench.local", "k1").unwrap();
        assert!(jwks.contains("\"P-256\""));
        assert_eq!(token.split('.').count(), 3);
    }
}
