//! Client keys and DPoP proofs, signed with the shared client library (`dpop-client`, as the
//! `dpop` CLI and the tests do). The public JWK goes through the filter's own `PublicJwk`, and
//! the first proof of every key is run through the filter's native `verify_proof` before any
//! load is sent, so a proof the filter would refuse is caught before Envoy sees it.
//!
//! Requests may also carry an access token (`Authorization: DPoP <token>`, the proof's `ath`
//! set to its hash): one per key for the whole run, or a new one per request ([`Tokens`]).
//! The tokens are JWT-shaped, bound to the proof key by `cnf.jkt`, with a junk signature:
//! `upstream` mode only decodes the payload, `introspection` mode never looks inside.

use dpop_client::{KeyKind, ProofClaims, ProofSigner, SigningKey};
use dpop_guard::b64;
use dpop_guard::jose::{Alg, PublicJwk};
use dpop_guard::{verify_proof, ProofPolicy, RequestFacts};
use std::time::Instant;

/// One client key with its pre-encoded JWS protected header.
pub struct ClientKey {
    pub alg: Alg,
    signer: ProofSigner,
    pub public: PublicJwk,
}

fn text(e: dpop_client::ClientError) -> String {
    e.0
}

pub fn now_secs() -> Result<i64, String> {
    dpop_client::now_secs().map_err(text)
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
        Self::make(alg, None)
    }

    /// The same key for the same seed (EdDSA, ES256): `dpop-bench client-key` prints a seed
    /// and its thumbprint, so an introspection answer can name the key before the run.
    pub fn from_seed(alg: Alg, seed: &[u8]) -> Result<ClientKey, String> {
        Self::make(alg, Some(seed))
    }

    fn make(alg: Alg, seed: Option<&[u8]>) -> Result<ClientKey, String> {
        let client_alg = dpop_client::Alg::from_name(alg.name())
            .ok_or_else(|| format!("{} is not benchmarked", alg.name()))?;
        let kind = KeyKind::for_alg(client_alg, 2048);
        let key = match seed {
            Some(seed) => SigningKey::from_seed(kind, seed).map_err(text)?,
            None => SigningKey::generate(kind).map_err(text)?,
        };
        let public = PublicJwk::from_json(key.public_jwk().map_err(text)?.as_bytes())
            .map_err(|e| format!("generated {} JWK refused by the filter: {e:?}", alg.name()))?;
        Ok(ClientKey {
            alg,
            signer: ProofSigner::new(key, client_alg).map_err(text)?,
            public,
        })
    }

    /// A proof with a fresh random `jti` and `iat` = now.
    pub fn proof(&self, htm: &str, htu: &str) -> Result<String, String> {
        self.proof_for(htm, htu, None)
    }

    /// [`ClientKey::proof`], with `ath` when the request carries `token`.
    pub fn proof_for(&self, htm: &str, htu: &str, token: Option<&str>) -> Result<String, String> {
        let mut claims = ProofClaims::new(htm, htu, now_secs()?).map_err(text)?;
        if let Some(t) = token {
            claims = claims.for_token(t);
        }
        self.signer.proof(&claims).map_err(text)
    }

    /// A proof over claims given as JSON text (signed as is, so it may hold anything).
    pub fn sign_claims(&self, claims_json: &str) -> Result<String, String> {
        self.signer.sign_claims(claims_json).map_err(text)
    }
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    dpop_client::random_bytes(n).map_err(text)
}

/// A random `jti` (16 bytes, base64url).
pub fn random_jti() -> Result<String, String> {
    dpop_client::random_jti().map_err(text)
}

/// An access token bound to `jkt` (`cnf.jkt`), JWT-shaped with a fresh `jti` and a junk
/// ES256-sized signature (≈ 420 bytes, the size of a typical JWT access token).
pub fn access_token(jkt: &str) -> Result<String, String> {
    let now = now_secs()?;
    let header = r#"{"alg":"ES256","typ":"at+jwt","kid":"bench-issuer"}"#;
    let claims = serde_json::json!({
        "iss": "https://issuer.bench.local",
        "sub": "bench-client",
        "client_id": "bench-client",
        "scope": "read write",
        "jti": random_b64(16)?,
        "iat": now,
        "exp": now + 3600,
        "cnf": {"jkt": jkt},
    });
    Ok(format!(
        "{}.{}.{}",
        b64::encode(header.as_bytes()),
        b64::encode(claims.to_string().as_bytes()),
        random_b64(64)?
    ))
}

/// The access tokens of a pool.
pub enum Tokens {
    /// No `Authorization` header.
    None,
    /// One token per key (index = key index), on every request of that key.
    Shared(Vec<String>),
    /// A new token (fresh `jti`) on every request.
    Unique,
}

impl Tokens {
    fn for_request(&self, key_index: usize, key: &ClientKey) -> Result<Option<String>, String> {
        match self {
            Tokens::None => Ok(None),
            Tokens::Shared(ts) => ts
                .get(key_index)
                .cloned()
                .map(Some)
                .ok_or_else(|| "no token for this key".to_owned()),
            Tokens::Unique => access_token(&key.public.thumbprint()).map(Some),
        }
    }
}

/// Checks a proof with the filter's own verifier (natively), as Envoy will see the request.
pub fn self_check(
    proof: &str,
    htm: &str,
    htu: &str,
    key: &ClientKey,
    token: Option<&str>,
) -> Result<(), String> {
    let facts = RequestFacts {
        method: htm,
        uri: htu,
        access_token: token,
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
/// threads, with the access token `tokens` gives the request's key. `build` turns a proof and
/// the token into the full request bytes.
pub fn make_pool(
    keys: &[ClientKey],
    tokens: &Tokens,
    n: usize,
    htm: &str,
    htu: &str,
    threads: usize,
    build: &(dyn Fn(&str, Option<&str>) -> Vec<u8> + Sync),
) -> Result<Vec<Vec<u8>>, String> {
    if keys.is_empty() {
        return Err("no client keys".into());
    }
    for (i, k) in keys.iter().enumerate() {
        let token = tokens.for_request(i, k)?;
        let token = token.as_deref();
        self_check(&k.proof_for(htm, htu, token)?, htm, htu, k, token)?;
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
                        let token = tokens.for_request(i % keys.len(), key)?;
                        let token = token.as_deref();
                        out.push(build(&key.proof_for(htm, htu, token)?, token));
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
    let with = match tokens {
        Tokens::None => "",
        Tokens::Shared(_) => ", one access token per key",
        Tokens::Unique => ", a new access token each",
    };
    eprintln!(
        "dpop-bench: {} unique {} proofs ({} keys{with}) in {:.1} s on {threads} threads",
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
    let sk = SigningKey::generate(KeyKind::P256).map_err(text)?;
    let mut jwk: serde_json::Value =
        serde_json::from_str(&sk.public_jwk().map_err(text)?).map_err(|e| e.to_string())?;
    if let Some(o) = jwk.as_object_mut() {
        o.insert("kid".into(), kid.into());
        o.insert("alg".into(), "ES256".into());
        o.insert("use".into(), "sig".into());
    }
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
    let token = dpop_client::compact_jws(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        &sk,
        dpop_client::Alg::ES256,
    )
    .map_err(text)?;
    let public = PublicJwk::from_json(jwk.to_string().as_bytes())
        .map_err(|e| format!("issuer JWK refused: {e:?}"))?;
    let (input, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| "issuer token is not a compact JWS".to_owned())?;
    let sig = b64::decode(sig).ok_or_else(|| "issuer signature is not base64url".to_owned())?;
    if !public.verify(Alg::ES256, input.as_bytes(), &sig) {
        return Err("issuer token does not verify".into());
    }
    Ok((jwks, token))
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
            self_check(&a, "GET", htu, &k, None).unwrap();
            assert!(self_check(&a, "POST", htu, &k, None).is_err());
        }
    }

    #[test]
    fn pool_is_unique() {
        let keys = vec![
            ClientKey::generate(Alg::EdDSA).unwrap(),
            ClientKey::generate(Alg::EdDSA).unwrap(),
        ];
        let pool = make_pool(
            &keys,
            &Tokens::None,
            101,
            "GET",
            "http://h/x",
            3,
            &|p, _| p.as_bytes().to_vec(),
        )
        .unwrap();
        assert_eq!(pool.len(), 101);
        let set: std::collections::HashSet<_> = pool.iter().collect();
        assert_eq!(set.len(), 101);
    }

    #[test]
    fn token_pools_bind_and_hash() {
        let htu = "http://h/x";
        let seed = [7u8; 32];
        let k = ClientKey::from_seed(Alg::EdDSA, &seed).unwrap();
        assert_eq!(
            k.public.thumbprint(),
            ClientKey::from_seed(Alg::EdDSA, &seed)
                .unwrap()
                .public
                .thumbprint()
        );
        let jkt = k.public.thumbprint();
        let t = access_token(&jkt).unwrap();
        assert_eq!(
            dpop_guard::token::inspect_unverified(&t)
                .unwrap()
                .jkt
                .as_deref(),
            Some(jkt.as_str())
        );
        let keys = vec![k];
        let build = |p: &str, t: Option<&str>| format!("{}|{}", t.unwrap_or(""), p).into_bytes();
        let shared = Tokens::Shared(vec![t.clone()]);
        let unique = Tokens::Unique;
        for (tokens, distinct) in [(&shared, 1), (&unique, 20)] {
            let pool = make_pool(&keys, tokens, 20, "GET", htu, 2, &build).unwrap();
            let mut seen = std::collections::HashSet::new();
            for r in &pool {
                let r = String::from_utf8(r.clone()).unwrap();
                let (tok, proof) = r.split_once('|').unwrap();
                self_check(proof, "GET", htu, &keys[0], Some(tok)).unwrap();
                assert!(self_check(proof, "GET", htu, &keys[0], Some(&t[1..])).is_err());
                seen.insert(tok.to_owned());
            }
            assert_eq!(seen.len(), distinct);
        }
    }

    #[test]
    fn issuer_token_is_es256() {
        let (jwks, token) = issuer("https://issuer.bench.local", "k1").unwrap();
        assert!(jwks.contains("\"P-256\""));
        assert_eq!(token.split('.').count(), 3);
    }
}
