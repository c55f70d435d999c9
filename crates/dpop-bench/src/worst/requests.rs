//! One class's requests: the material shared by a pool (`Ctx`: client keys, bound tokens, the
//! padding sized once), the big tokens and proofs, each request of a `Shape` (`one`), the
//! headers every request carries, and `generate` (a pool built on several threads).

use super::material::{
    compact, ed25519_junk_sig, ed25519_jwk_json, fit, flat_members, members_pad, nested_pad,
    p256_junk_sig, p256_jwk, small_claims, Headers, Target,
};
use super::{
    Class, Shape, BIG_PROOF, CYCLE, DEFAULT_PROOF, KEYS, MAX_TOKEN, PAD_HEADERS, PAD_HEADER_BYTES,
};
use crate::proofs::{now_secs, random_bytes, random_jti, ClientKey};
use dpop_guard::b64;
use dpop_guard::jose::Alg;
use dpop_guard::proof::ath_for;
use serde_json::json;
use std::time::Instant;

/// Shared material of one class's pool.
pub(super) struct Ctx {
    keys: Vec<ClientKey>,
    /// Per key: the 16 KiB token bound to it (4a).
    tokens: Vec<String>,
    /// The JSON padding, sized once for the class.
    pad: String,
    /// Ed25519 JWKs used twice each (6b).
    jwks: Vec<String>,
}

impl Ctx {
    pub(super) fn new(shape: Shape, t: &Target) -> Result<Ctx, String> {
        let needs_keys = matches!(
            shape,
            Shape::ClaimsNested | Shape::TokenUpstream | Shape::HeadersValid | Shape::RefEddsa
        );
        let keys = if needs_keys {
            (0..KEYS)
                .map(|_| ClientKey::generate(Alg::EdDSA))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let pad_fn: fn(usize) -> String = match shape {
            Shape::HeaderMembers => members_pad,
            Shape::HeaderOverCap => flat_members,
            _ => nested_pad,
        };
        let jwks = if shape == Shape::Ed25519Twice {
            (0..CYCLE / 2)
                .map(|_| ed25519_jwk_json())
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let mut ctx = Ctx {
            keys,
            tokens: Vec::new(),
            pad: String::new(),
            jwks,
        };
        let budget = match shape {
            Shape::HeaderNested | Shape::PlainBigHeader | Shape::HeaderMembers => {
                Some(fit(BIG_PROOF, &|b| big_junk_header_proof(t, &pad_fn(b)))?)
            }
            Shape::HeaderNestedDefault => Some(fit(DEFAULT_PROOF, &|b| {
                big_junk_header_proof(t, &pad_fn(b))
            })?),
            Shape::HeaderOverCap => Some(fit(BIG_PROOF, &|b| over_cap_proof(t, &pad_fn(b)))?),
            Shape::ClaimsNested => {
                let key = ctx.key(0)?;
                Some(fit(BIG_PROOF, &|b| big_claims_proof(key, t, &pad_fn(b)))?)
            }
            // a thumbprint is 43 characters
            Shape::TokenUpstream => Some(fit(MAX_TOKEN, &|b| {
                upstream_token(&"x".repeat(43), &pad_fn(b))
            })?),
            Shape::TokenKeys => Some(fit(MAX_TOKEN, &|b| keys_token(&pad_fn(b)))?),
            _ => None,
        };
        ctx.pad = budget.map(pad_fn).unwrap_or_default();
        if shape == Shape::TokenUpstream {
            ctx.tokens = ctx
                .keys
                .iter()
                .map(|k| upstream_token(&k.public.thumbprint(), &ctx.pad))
                .collect::<Result<Vec<_>, _>>()?;
        }
        Ok(ctx)
    }

    fn key(&self, i: usize) -> Result<&ClientKey, String> {
        self.keys
            .get(i % self.keys.len().max(1))
            .ok_or_else(|| "no client keys".to_owned())
    }
}

/// A 16 KiB JWT (junk ES256 signature) carrying `cnf.jkt` and the padding in its payload:
/// `upstream` mode decodes and parses the whole payload.
fn upstream_token(jkt: &str, pad: &str) -> Result<String, String> {
    let header = r#"{"alg":"ES256","typ":"at+jwt"}"#;
    let claims = format!(
        r#"{{"iss":"https://issuer.bench.local","sub":"bench","exp":{},"cnf":{{"jkt":"{jkt}"}},"pad":{pad}}}"#,
        now_secs()? + 3600,
    );
    Ok(compact(header, &claims, &p256_junk_sig()?))
}

/// A 16 KiB JWT whose protected header carries the padding, with a junk ES256 signature:
/// `keys` mode parses the header, then verifies (and refuses) the signature.
fn keys_token(pad: &str) -> Result<String, String> {
    let claims =
        json!({"iss": "https://issuer.bench.local", "sub": "bench", "exp": now_secs()? + 3600})
            .to_string();
    let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","pad":{pad}}}"#);
    Ok(compact(&header, &claims, &p256_junk_sig()?))
}

/// A proof whose protected header is {typ, alg, fresh jwk, "pad": pad}, junk signature.
fn big_junk_header_proof(t: &Target, pad: &str) -> Result<String, String> {
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{},"pad":{pad}}}"#,
        ed25519_jwk_json()?
    );
    Ok(compact(
        &header,
        &small_claims(&t.htu)?,
        &ed25519_junk_sig()?,
    ))
}

/// A proof whose protected header is {typ, alg, jwk} followed by thousands of flat members.
fn over_cap_proof(t: &Target, members: &str) -> Result<String, String> {
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}{members}}}"#,
        ed25519_jwk_json()?
    );
    Ok(compact(
        &header,
        &small_claims(&t.htu)?,
        &ed25519_junk_sig()?,
    ))
}

/// A valid proof with {jti, htm, htu, iat, "pad": pad} as claims.
fn big_claims_proof(key: &ClientKey, t: &Target, pad: &str) -> Result<String, String> {
    let claims = format!(
        r#"{{"jti":"{}","htm":"GET","htu":"{}","iat":{},"pad":{pad}}}"#,
        random_jti()?,
        t.htu,
        now_secs()?
    );
    key.sign_claims(&claims)
}

/// One request of the class (`i`: its index in the pool).
pub(super) fn one(shape: Shape, ctx: &Ctx, t: &Target, i: usize) -> Result<Headers, String> {
    let dpop = |v: String| vec![("DPoP".to_owned(), v)];
    Ok(match shape {
        Shape::HeaderNested
        | Shape::HeaderNestedDefault
        | Shape::PlainBigHeader
        | Shape::HeaderMembers => dpop(big_junk_header_proof(t, &ctx.pad)?),
        Shape::HeaderOverCap => dpop(over_cap_proof(t, &ctx.pad)?),
        Shape::ClaimsNested => dpop(big_claims_proof(ctx.key(i)?, t, &ctx.pad)?),
        Shape::TokenUpstream => {
            let key = ctx.key(i)?;
            let token = ctx
                .tokens
                .get(i % KEYS)
                .ok_or_else(|| "no token".to_owned())?;
            let claims = json!({
                "jti": random_jti()?, "htm": "GET", "htu": t.htu, "iat": now_secs()?,
                "ath": ath_for(token),
            });
            vec![
                ("Authorization".to_owned(), format!("Bearer {token}")),
                ("DPoP".to_owned(), key.sign_claims(&claims.to_string())?),
            ]
        }
        Shape::TokenKeys => vec![(
            "Authorization".to_owned(),
            format!("Bearer {}", keys_token(&ctx.pad)?),
        )],
        Shape::Rsa4096 => {
            let mut n = random_bytes(512)?;
            if let Some(b) = n.first_mut() {
                *b |= 0x80;
            }
            if let Some(b) = n.last_mut() {
                *b |= 0x01;
            }
            let mut sig = random_bytes(512)?;
            if let Some(b) = sig.first_mut() {
                *b &= 0x7f; // < n
            }
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"RS256","jwk":{{"kty":"RSA","n":"{}","e":"AQAB"}}}}"#,
                b64::encode(&n)
            );
            dpop(compact(&header, &small_claims(&t.htu)?, &sig))
        }
        Shape::RsaRefused => {
            // in turn: 8192 bits with e = 2^32 - 1 (the old worst case), 2048 bits with e = 3
            let (bytes, e) = if i.is_multiple_of(2) {
                (1024, "_____w")
            } else {
                (256, "Aw")
            };
            let mut n = random_bytes(bytes)?;
            if let Some(b) = n.first_mut() {
                *b |= 0x80;
            }
            if let Some(b) = n.last_mut() {
                *b |= 0x01;
            }
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"RS256","jwk":{{"kty":"RSA","n":"{}","e":"{e}"}}}}"#,
                b64::encode(&n)
            );
            dpop(compact(
                &header,
                &small_claims(&t.htu)?,
                &random_bytes(bytes)?,
            ))
        }
        Shape::Ed25519First => {
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#,
                ed25519_jwk_json()?
            );
            dpop(compact(
                &header,
                &small_claims(&t.htu)?,
                &ed25519_junk_sig()?,
            ))
        }
        Shape::Ed25519Twice => {
            let jwk = ctx
                .jwks
                .get((i / 2) % ctx.jwks.len().max(1))
                .ok_or_else(|| "no keys".to_owned())?;
            let header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{jwk}}}"#);
            dpop(compact(
                &header,
                &small_claims(&t.htu)?,
                &ed25519_junk_sig()?,
            ))
        }
        Shape::P256First => {
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                p256_jwk()?
            );
            dpop(compact(&header, &small_claims(&t.htu)?, &p256_junk_sig()?))
        }
        Shape::HeadersDup | Shape::PlainHeaders => {
            let mut h = Vec::new();
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#,
                ed25519_jwk_json()?
            );
            let p = compact(&header, &small_claims(&t.htu)?, &ed25519_junk_sig()?);
            h.push(("DPoP".to_owned(), p.clone()));
            h.push(("DPoP".to_owned(), p));
            h
        }
        Shape::HeadersValid => dpop(ctx.key(i)?.proof("GET", &t.htu)?),
        Shape::RefEddsa => dpop(ctx.key(i)?.proof("GET", &t.htu)?),
    })
}

/// A class's requests: headers every request carries, then each request's own.
pub struct Pool {
    pub common: Headers,
    pub items: Vec<Headers>,
}

/// The headers every request of the class carries (sent first).
pub(super) fn common(shape: Shape) -> Headers {
    let mut h = Vec::new();
    if matches!(
        shape,
        Shape::HeadersDup | Shape::HeadersValid | Shape::PlainHeaders
    ) {
        let value: String = "abcdefghijklmnopqrstuvwxyz0123456789"
            .chars()
            .cycle()
            .take(PAD_HEADER_BYTES)
            .collect();
        for i in 0..PAD_HEADERS {
            h.push((format!("x-pad-{i}"), value.clone()));
        }
    }
    h
}

/// `n` requests of the class, generated on `threads` threads.
pub fn generate(class: &Class, t: &Target, n: usize, threads: usize) -> Result<Pool, String> {
    let ctx = Ctx::new(class.shape, t)?;
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    let started = Instant::now();
    let parts: Vec<Result<Vec<Headers>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|th| {
                let ctx = &ctx;
                s.spawn(move || {
                    let (lo, hi) = (th * chunk, ((th + 1) * chunk).min(n));
                    (lo..hi)
                        .map(|i| one(class.shape, ctx, t, i))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("generator thread panicked".into()))
            })
            .collect()
    });
    let mut items = Vec::with_capacity(n);
    for p in parts {
        items.extend(p?);
    }
    let common = common(class.shape);
    let size = |h: &Headers| -> usize { h.iter().map(|(k, v)| k.len() + v.len() + 4).sum() };
    eprintln!(
        "dpop-bench: {} {} requests ({} header bytes each) in {:.1} s",
        items.len(),
        class.id,
        size(&common) + items.first().map_or(0, size),
        started.elapsed().as_secs_f64()
    );
    Ok(Pool { common, items })
}
