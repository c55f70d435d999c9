//! Shared helpers of the per-request decision tests (tests/authn.rs, tests/authn_jwt_authn.rs,
//! tests/authn_routes.rs): the fixed clock and URI, proofs with a fresh `jti`, unsigned-looking
//! tokens for `upstream` mode, `run` (one request through `decide`), config parsing, `denied`.
//! Included with `#[path = "common/authn.rs"] mod authn;` next to `mod common;`.
#![allow(dead_code)]

use crate::common::{header_for, make_proof, TestKey};
use dpop_guard::authn::{decide, Decision, JwtAuthnView, Request};
use dpop_guard::b64;
use dpop_guard::config::Config;
use dpop_guard::proof::ath_for;
use dpop_guard::reason::DenyReason as R;

pub const NOW: i64 = 1_700_000_000;
pub const URI: &str = "https://api.example.com/api/x";

pub fn proof(key: &TestKey, token: Option<&str>, extra: &str) -> String {
    let ath = token
        .map(|t| format!(r#","ath":"{}""#, ath_for(t)))
        .unwrap_or_default();
    let claims = format!(
        r#"{{"jti":"j-{}","htm":"GET","htu":"{URI}","iat":{NOW}{ath}{extra}}}"#,
        rand_tag()
    );
    make_proof(&header_for("EdDSA", key), &claims, key)
}

pub fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// An unsigned-looking JWT for `upstream` mode (which only decodes the payload).
pub fn token(payload: &str) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(br#"{"alg":"HS256"}"#),
        b64::encode(payload.as_bytes()),
        b64::encode(b"sig")
    )
}

pub fn bound(key: &TestKey) -> String {
    token(&format!(r#"{{"sub":"a","cnf":{{"jkt":"{}"}}}}"#, key.jkt()))
}

pub fn run(
    cfg: &Config,
    path: &str,
    dpop: &[&str],
    authz: &[&str],
    jwt: Option<&JwtAuthnView>,
) -> Decision {
    let dpop: Vec<&[u8]> = dpop.iter().map(|s| s.as_bytes()).collect();
    let authz: Vec<&[u8]> = authz.iter().map(|s| s.as_bytes()).collect();
    let req = Request {
        method: "GET",
        authority: "api.example.com",
        path,
        uri: URI,
        dpop: &dpop,
        authorization: &authz,
        jwt_authn: jwt,
        introspection: None,
        remote_jwks: None,
        now: NOW,
    };
    decide(cfg, &req)
}

pub fn cfg(json: &str) -> Config {
    Config::parse(json.as_bytes()).unwrap()
}

pub fn denied(d: Decision) -> R {
    match d {
        Decision::Deny(r) => r,
        other => panic!("expected a denial, got {other:?}"),
    }
}
