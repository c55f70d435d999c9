//! Building blocks of the worst-case requests: the `Target` and `Headers` types, fresh public
//! keys with well-formed junk signatures (Ed25519, P-256), the JSON paddings (nested arrays,
//! 256-member objects, flat members) and `fit` to size them, compact JWS assembly.

use super::DEPTH;
use crate::proofs::{now_secs, random_bytes, random_jti};
use dpop_client::{KeyKind, SigningKey};
use dpop_guard::b64;
use serde_json::{json, Value};

/// One request's headers beyond the request line and Host.
pub type Headers = Vec<(String, String)>;

/// Where the requests go (for `htu`).
pub struct Target {
    pub htu: String,
}

fn ed25519_public() -> Result<[u8; 32], String> {
    // A real public key (a point of large order): only the signature is junk.
    let key = SigningKey::generate(KeyKind::Ed25519).map_err(|e| e.0)?;
    let Some(x) = key
        .public_members()
        .map_err(|e| e.0)?
        .into_iter()
        .find(|(n, _)| *n == "x")
    else {
        return Err("Ed25519 JWK without x".into());
    };
    b64::decode(&x.1)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "Ed25519 x is not 32 bytes".into())
}

pub(super) fn ed25519_jwk_json() -> Result<String, String> {
    Ok(format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
        b64::encode(&ed25519_public()?)
    ))
}

/// A well-formed Ed25519 signature that does not verify: R a canonical point of large order,
/// s < 2^252 < ℓ. Every byte-level check passes, so verification runs to the last comparison.
pub(super) fn ed25519_junk_sig() -> Result<Vec<u8>, String> {
    let mut sig = ed25519_public()?.to_vec();
    let mut s = random_bytes(32)?;
    if let Some(top) = s.last_mut() {
        *top &= 0x0f;
    }
    sig.extend_from_slice(&s);
    Ok(sig)
}

fn p256_point() -> Result<([u8; 32], [u8; 32]), String> {
    let key = SigningKey::generate(KeyKind::P256).map_err(|e| e.0)?;
    let members = key.public_members().map_err(|e| e.0)?;
    let coordinate = |name: &str| -> Result<[u8; 32], String> {
        members
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| b64::decode(v))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("P-256 JWK without a 32-byte {name}"))
    };
    Ok((coordinate("x")?, coordinate("y")?))
}

pub(super) fn p256_jwk() -> Result<Value, String> {
    let (x, y) = p256_point()?;
    Ok(json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&x), "y": b64::encode(&y)}))
}

/// r ‖ s, both in [1, n): the top byte below 0x7f keeps each under the group order.
pub(super) fn p256_junk_sig() -> Result<Vec<u8>, String> {
    let mut sig = random_bytes(64)?;
    for i in [0usize, 32] {
        if let Some(b) = sig.get_mut(i) {
            *b = (*b & 0x7f) | 0x01;
        }
    }
    Ok(sig)
}

/// Arrays nested `DEPTH` deep, as many as fit in `budget` bytes: `[[[…]]],[[[…]]],…` inside
/// one array (at most 1024 elements).
pub(super) fn nested_pad(budget: usize) -> String {
    let one = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let n = (budget.saturating_sub(2) / (one.len() + 1)).clamp(1, 1024);
    format!("[{}]", vec![one; n].join(","))
}

/// Objects of 256 members `"k":0` (hex names), as many as fit in `budget` bytes, in one array.
pub(super) fn members_pad(budget: usize) -> String {
    let full: Vec<String> = (0..256).map(|i| format!("\"{i:x}\":0")).collect();
    let obj = |k: usize| format!("{{{}}}", full.get(..k).unwrap_or_default().join(","));
    let one = obj(256);
    let mut parts = Vec::new();
    let mut len = 2;
    while len + one.len() < budget && parts.len() < 1024 {
        len += one.len() + 1;
        parts.push(one.clone());
    }
    // a last, partial object for the rest
    let left = budget.saturating_sub(len + 1 + 2);
    if left > 8 {
        parts.push(obj((left / 7).min(256)));
    }
    format!("[{}]", parts.join(","))
}

/// `,"m0":0,"m1":0,…` (flat members, thousands) within `budget` bytes.
pub(super) fn flat_members(budget: usize) -> String {
    let mut out = String::with_capacity(budget);
    let mut i = 0usize;
    loop {
        let m = format!(",\"m{i:x}\":0");
        if out.len() + m.len() > budget {
            break;
        }
        out.push_str(&m);
        i += 1;
    }
    out
}

/// The largest padding `budget` (within a padding unit) for which `make(budget)` is at most
/// `target` bytes long. The random parts of a request have fixed lengths, so one budget fits
/// every request of a class.
pub(super) fn fit(
    target: usize,
    make: &dyn Fn(usize) -> Result<String, String>,
) -> Result<usize, String> {
    let mut budget = target * 3 / 4;
    for _ in 0..64 {
        let len = make(budget)?.len();
        if len <= target {
            return Ok(budget);
        }
        budget = budget.saturating_sub((len - target) * 3 / 4 + 16);
    }
    Err(format!("cannot fit the padding into {target} bytes"))
}

pub(super) fn compact(header_json: &str, claims_json: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(header_json.as_bytes()),
        b64::encode(claims_json.as_bytes()),
        b64::encode(sig)
    )
}

pub(super) fn small_claims(htu: &str) -> Result<String, String> {
    Ok(json!({"jti": random_jti()?, "htm": "GET", "htu": htu, "iat": now_secs()?}).to_string())
}
