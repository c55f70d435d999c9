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

/// Starts a request, checks the callout the root context makes for it, answers it; returns
/// the final exchange.
fn with_answer(vm: &mut Vm, key: &Key, answer: (Pairs, Vec<u8>)) -> proxy_wasm_emu::Exchange {
    let mut ex = vm.request_headers(&request(key)).unwrap();
    assert_eq!(
        ex.outcome,
        Outcome::Stalled,
        "waiting on the root context's callout"
    );
    let before = vm.host().http_calls.len();
    vm.deliver_queue_ready().unwrap();
    assert_eq!(
        vm.host().http_calls.len(),
        before + 1,
        "one introspection callout"
    );
    let call = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(call.context, vm.root_context(), "made by the root context");
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
    vm.http_call_response(ex.context_id, call.token, answer.0, answer.1)
        .unwrap();
    ex.outcome = vm.outcome_of(ex.context_id);
    vm.finish(ex.context_id).unwrap();
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
    let mut ex = vm.request_headers(&request(&Key::new(66))).unwrap();
    vm.deliver_queue_ready().unwrap();
    ex.outcome = vm.outcome_of(ex.context_id);
    assert_reply(&ex, 503, "token-check-unavailable");
}

#[test]
fn concurrent_requests_with_one_token_share_one_callout() {
    let mut vm = vm("");
    let key = Key::new(67);
    let ctxs: Vec<u32> = (0..4)
        .map(|_| {
            let ex = vm.request_headers(&request(&key)).unwrap();
            assert_eq!(ex.outcome, Outcome::Stalled);
            ex.context_id
        })
        .collect();
    vm.deliver_queue_ready().unwrap();
    let calls: Vec<_> = vm
        .host()
        .http_calls
        .iter()
        .filter(|c| c.cluster == b"as")
        .cloned()
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "single-flight: one callout for four requests"
    );
    // one client leaves before the answer
    vm.finish(ctxs[3]).unwrap();
    let reply = format!(r#"{{"active":true,"cnf":{{"jkt":"{}"}}}}"#, key.jkt());
    let (h, b) = ok(&reply);
    vm.http_call_response(ctxs[0], calls[0].token, h, b)
        .unwrap();
    for c in &ctxs[..3] {
        match vm.outcome_of(*c) {
            Outcome::Upstream(h) => {
                assert_eq!(values(&h, "x-dpop-jkt"), vec![key.jkt().as_bytes()])
            }
            other => panic!("{c}: {other:?}"),
        }
    }
    assert_eq!(vm.host().metric("dpop_guard.introspection.requests"), 1);
    assert!(vm.dead().is_none());
}

#[test]
fn single_flight_then_a_remote_replay_batch() {
    let mut vm = start(
        r#"{"required": true, "replay": {"store": "remote", "cluster": "replay"},
            "access_token": {"verify": "introspection", "introspection": {"cluster": "as"}}}"#,
    );
    let key = Key::new(68);
    let ex = vm.request_headers(&request(&key)).unwrap();
    vm.deliver_queue_ready().unwrap();
    let call = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(call.cluster, b"as");
    let reply = format!(r#"{{"active":true,"cnf":{{"jkt":"{}"}}}}"#, key.jkt());
    let (h, b) = ok(&reply);
    vm.http_call_response(ex.context_id, call.token, h, b)
        .unwrap();
    // decided again: an idle worker, so its replay check goes out alone (made by the root
    // context on its behalf)
    let check = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(check.cluster, b"replay");
    // that check holds the worker's one slot (max_in_flight 1) until its answer: a second
    // request (token now cached) queues behind it instead of going out alone too
    let calls = vm.host().http_calls.len();
    let second = vm.request_headers(&request(&key)).unwrap();
    assert_eq!(second.outcome, Outcome::Stalled);
    assert_eq!(
        vm.host().http_calls.len(),
        calls,
        "no second check in flight"
    );
    assert_eq!(vm.deliver_queue_ready().unwrap(), 0);
    vm.http_call_response(
        ex.context_id,
        check.token,
        vec![(b":status".to_vec(), b"201".to_vec())],
        Vec::new(),
    )
    .unwrap();
    match vm.outcome_of(ex.context_id) {
        Outcome::Upstream(h) => assert_eq!(values(&h, "x-dpop-jkt"), vec![key.jkt().as_bytes()]),
        other => panic!("{other:?}"),
    }
    // its answer freed the slot and woke the root: the queued request goes as a batch
    assert_eq!(vm.deliver_queue_ready().unwrap(), 1);
    let batch = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(
        values(batch.headers.as_ref().unwrap(), ":path"),
        vec![&b"/v1/replay/batch"[..]]
    );
    vm.http_call_response(
        second.context_id,
        batch.token,
        vec![(b":status".to_vec(), b"200".to_vec())],
        br#"{"results":[201]}"#.to_vec(),
    )
    .unwrap();
    assert!(matches!(
        vm.outcome_of(second.context_id),
        Outcome::Upstream(_)
    ));
    assert!(vm.dead().is_none());
}

#[test]
fn single_flight_then_a_per_request_replay_check() {
    let mut vm = start(
        r#"{"required": true, "replay": {"store": "remote", "cluster": "replay", "max_batch": 1},
            "access_token": {"verify": "introspection", "introspection": {"cluster": "as"}}}"#,
    );
    let key = Key::new(69);
    let ex = vm.request_headers(&request(&key)).unwrap();
    vm.deliver_queue_ready().unwrap();
    let call = vm.host().http_calls.last().unwrap().clone();
    let reply = format!(r#"{{"active":true,"cnf":{{"jkt":"{}"}}}}"#, key.jkt());
    let (h, b) = ok(&reply);
    vm.http_call_response(ex.context_id, call.token, h, b)
        .unwrap();
    // the replay check went out on the request's behalf; its answer finishes the request
    let check = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(check.cluster, b"replay");
    vm.http_call_response(
        ex.context_id,
        check.token,
        vec![(b":status".to_vec(), b"409".to_vec())],
        Vec::new(),
    )
    .unwrap();
    match vm.outcome_of(ex.context_id) {
        Outcome::LocalReply(r) => assert_eq!(r.status, 401),
        other => panic!("{other:?}"),
    }
}
