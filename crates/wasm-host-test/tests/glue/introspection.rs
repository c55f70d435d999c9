//! RFC 7662 introspection in the built wasm (issue 13): the callout, the second decision with
//! its answer, the per-VM cache, and failures that never let a request through unchecked.

use crate::common::*;
use proxy_wasm_emu::dpop::{Key, ProofClaims};
use proxy_wasm_emu::{Outcome, Pairs, Vm};

const OPAQUE: &str = "opaque-token.a+b/c=";

fn vm(extra: &str) -> Vm {
    start(&format!(
        r#"{{"required": true, "access_token": {{"verify": "introspection", "introspection": {{
             "cluster": "as", "authority": "as.example", "path": "/token/introspection",
             "client_id": "rs", "client_secret": "rs-secret", "timeout_ms": 300{extra}}}}}}}"#
    ))
}

fn request(key: &Key) -> proxy_wasm_emu::Request {
    let p = key.proof(&ProofClaims {
        htm: "GET",
        htu: &htu("/api"),
        iat: NOW,
        jti: &jti(),
        token: Some(OPAQUE),
        nonce: None,
    });
    let auth = format!("DPoP {OPAQUE}");
    get(
        b"/api",
        &[(b"dpop", p.as_bytes()), (b"authorization", auth.as_bytes())],
    )
}

fn ok(body: &str) -> (Pairs, Vec<u8>) {
    (
        vec![(b":status".to_vec(), b"200".to_vec())],
        body.as_bytes().to_vec(),
    )
}

/// Starts a request, checks the callout it makes, answers it; returns the final exchange.
fn with_answer(vm: &mut Vm, key: &Key, answer: (Pairs, Vec<u8>)) -> proxy_wasm_emu::Exchange {
    let ex = vm.request_headers(&request(key)).unwrap();
    let Outcome::Pending(tokens) = &ex.outcome else {
        panic!("expected an introspection callout, got {:?}", ex.outcome);
    };
    let call = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(call.cluster, b"as");
    assert_eq!(call.timeout_ms, 300);
    let h = call.headers.clone().unwrap();
    assert_eq!(values(&h, ":method"), vec![&b"POST"[..]]);
    assert_eq!(values(&h, ":path"), vec![&b"/token/introspection"[..]]);
    assert_eq!(values(&h, ":authority"), vec![&b"as.example"[..]]);
    assert_eq!(
        values(&h, "authorization"),
        vec![&b"Basic cnM6cnMtc2VjcmV0"[..]]
    );
    assert_eq!(
        call.body,
        b"token=opaque-token.a%2Bb%2Fc%3D&token_type_hint=access_token"
    );
    let ex = vm
        .http_call_response(ex.context_id, tokens[0], answer.0, answer.1)
        .unwrap();
    if !matches!(ex.outcome, Outcome::Pending(_)) {
        vm.finish(ex.context_id).unwrap();
    }
    ex
}

#[test]
fn active_bound_token_is_introspected_once_then_cached() {
    let mut vm = vm("");
    let key = Key::new(60);
    let reply = format!(
        r#"{{"active":true,"cnf":{{"jkt":"{}"}},"exp":{}}}"#,
        key.jkt(),
        NOW + 600
    );
    let ex = with_answer(&mut vm, &key, ok(&reply));
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
    assert_eq!(vm.host().metric("dpop_guard.introspection.requests"), 1);
    // the same token again: no callout, same answer
    let calls = vm.host().http_calls.len();
    for _ in 0..5 {
        let ex = run(&mut vm, &request(&key));
        upstream(&ex);
    }
    assert_eq!(vm.host().http_calls.len(), calls);
    assert_eq!(vm.host().metric("dpop_guard.introspection.cache_hits"), 5);
    // a proof of another key with the cached token: binding mismatch, from the cache
    let other = Key::new(61);
    assert_reply(
        &run(&mut vm, &request(&other)),
        401,
        "dpop-binding-mismatch",
    );
    assert_eq!(vm.host().metric("dpop_guard.introspection.requests"), 1);
}

#[test]
fn inactive_and_unreadable_answers_are_token_invalid() {
    for body in [
        r#"{"active":false}"#,
        r#"{"active":true,"exp":1}"#,
        "<html>",
    ] {
        let mut vm = vm("");
        let ex = with_answer(&mut vm, &Key::new(62), ok(body));
        assert_reply(&ex, 401, "token-invalid");
    }
    // token_type alone does not bind: an active token without cnf on a required route
    let mut vm = vm("");
    let ex = with_answer(
        &mut vm,
        &Key::new(63),
        ok(r#"{"active":true,"token_type":"DPoP"}"#),
    );
    assert_reply(&ex, 401, "token-not-dpop-bound");
}

#[test]
fn an_unreachable_authorization_server_is_a_503_or_on_error_allow() {
    let mut denying = vm("");
    let failed = (vec![(b":status".to_vec(), b"504".to_vec())], Vec::new());
    let ex = with_answer(&mut denying, &Key::new(64), failed.clone());
    let body = assert_reply(&ex, 503, "token-check-unavailable");
    assert_eq!(body["title"], "Token Check Unavailable");
    assert_eq!(denying.host().metric("dpop_guard.introspection.errors"), 1);
    // errors are never cached: the next request asks again
    let _ = with_answer(&mut denying, &Key::new(64), failed.clone());
    assert_eq!(
        denying.host().metric("dpop_guard.introspection.requests"),
        2
    );

    let mut allowing = vm(r#", "on_error": "allow""#);
    let key = Key::new(65);
    let ex = with_answer(&mut allowing, &key, failed);
    // the proof is still verified; the token's binding could not be
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
}

#[test]
fn an_unknown_cluster_fails_closed() {
    let mut vm = vm("");
    vm.host_mut().http_call_status = proxy_wasm_emu::status::BAD_ARGUMENT;
    let ex = run(&mut vm, &request(&Key::new(66)));
    assert_reply(&ex, 503, "token-check-unavailable");
}
