//! Single use of a proof: the local store in shared data, and the remote store's callout.

use crate::common::*;
use proxy_wasm_emu::dpop::Key;
use proxy_wasm_emu::{status, Outcome, Pairs, Vm};

#[test]
fn local_store_refuses_the_second_use() {
    let mut vm = start(&demo_config());
    let key = Key::new(30);
    let p = proof(&key, "/api", None);
    let req = get(b"/api", &[(b"dpop", p.as_bytes())]);
    let first = run(&mut vm, &req);
    assert_eq!(
        values(upstream(&first), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
    let second = run(&mut vm, &req);
    let body = assert_reply(&second, 401, "dpop-invalid");
    assert_eq!(body["detail"], "DPoP jti already used (replay attack)");
    assert_eq!(vm.host().metric("dpop_guard.replay.detected"), 1);
    assert_eq!(vm.host().metric("dpop_guard.denied.proof_replayed"), 1);
    // the used jti lives in shared data (all workers see it)
    assert!(!vm.host().shared_data.is_empty());
    // a fresh proof from the same key is fine
    let p = proof(&key, "/api", None);
    let ex = run(&mut vm, &get(b"/api", &[(b"dpop", p.as_bytes())]));
    upstream(&ex);
}

#[test]
fn local_store_is_shared_between_vms() {
    // Two workers: two VMs, one shared-data store (copied across here).
    let mut a = start(&demo_config());
    let mut b = start(&demo_config());
    let key = Key::new(31);
    let p = proof(&key, "/api", None);
    let req = get(b"/api", &[(b"dpop", p.as_bytes())]);
    upstream(&run(&mut a, &req));
    b.host_mut().shared_data = a.host().shared_data.clone();
    assert_reply(&run(&mut b, &req), 401, "dpop-invalid");
}

fn remote(on_error: &str) -> Vm {
    start(&format!(
        r#"{{"required": true, "replay": {{"store": "remote", "cluster": "dpop_replay",
             "timeout_ms": 250, "on_error": "{on_error}", "max_batch": 1}}}}"#
    ))
}

fn status_pairs(s: &str) -> Pairs {
    vec![(b":status".to_vec(), s.as_bytes().to_vec())]
}

/// Start a request that needs the callout; returns (context, token).
fn pending(vm: &mut Vm, key: &Key) -> (u32, u32) {
    let p = proof(key, "/api", None);
    let ex = vm
        .request_headers(&get(b"/api", &[(b"dpop", p.as_bytes())]))
        .unwrap_or_else(|t| panic!("{t}"));
    let Outcome::Pending(tokens) = &ex.outcome else {
        panic!("expected a callout, got {:?}", ex.outcome);
    };
    let call = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(call.cluster, b"dpop_replay");
    assert_eq!(call.timeout_ms, 250);
    let h = call.headers.unwrap();
    assert_eq!(values(&h, ":method"), vec![&b"POST"[..]]);
    assert_eq!(values(&h, ":path"), vec![&b"/v1/replay"[..]]);
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert!(
        body["key"].as_str().unwrap().starts_with("dpop:jti:"),
        "{body}"
    );
    assert!(body["ttl"].as_i64().unwrap() > 0, "{body}");
    assert_eq!(tokens, &vec![call.token]);
    (ex.context_id, call.token)
}

#[test]
fn remote_store_answers() {
    let key = Key::new(32);
    type Case<'a> = (&'a str, &'a str, Option<(u32, &'a str)>);
    let cases: [Case; 5] = [
        ("deny", "201", None),
        ("deny", "409", Some((401, "dpop-invalid"))),
        ("deny", "500", Some((503, "replay-check-unavailable"))),
        ("deny", "", Some((503, "replay-check-unavailable"))),
        ("allow", "503", None),
    ];
    for (on_error, answer, expect) in cases {
        let mut vm = remote(on_error);
        let (ctx, token) = pending(&mut vm, &key);
        let headers = if answer.is_empty() {
            Vec::new()
        } else {
            status_pairs(answer)
        };
        let ex = vm
            .http_call_response(ctx, token, headers, Vec::new())
            .unwrap_or_else(|t| panic!("{answer}: {t}"));
        match expect {
            None => {
                assert_eq!(
                    values(upstream(&ex), "x-dpop-jkt"),
                    vec![key.jkt().as_bytes()],
                    "{on_error} {answer}"
                );
                // resumed with proxy_continue_stream(HttpRequest)
                assert_eq!(vm.host().streams[&ctx].continued, vec![0]);
            }
            Some((st, slug)) => {
                assert_reply(&ex, st, slug);
            }
        }
        vm.finish(ctx).unwrap_or_else(|t| panic!("{t}"));
    }
}

#[test]
fn remote_dispatch_failure_is_never_a_hang() {
    for (on_error, expect_reply) in [("deny", true), ("allow", false)] {
        let mut vm = remote(on_error);
        vm.host_mut().http_call_status = status::BAD_ARGUMENT;
        let key = Key::new(33);
        let p = proof(&key, "/api", None);
        let ex = run(&mut vm, &get(b"/api", &[(b"dpop", p.as_bytes())]));
        if expect_reply {
            assert_reply(&ex, 503, "replay-check-unavailable");
        } else {
            assert_eq!(
                values(upstream(&ex), "x-dpop-jkt"),
                vec![key.jkt().as_bytes()]
            );
        }
        assert_eq!(vm.host().metric("dpop_guard.replay.errors"), 1);
    }
}

#[test]
fn a_callout_answer_for_another_token_is_ignored() {
    let mut vm = remote("deny");
    let key = Key::new(34);
    let (ctx, token) = pending(&mut vm, &key);
    let (ctx2, token2) = pending(&mut vm, &key);
    // answers arrive out of order
    let ex = vm
        .http_call_response(ctx2, token2, status_pairs("201"), Vec::new())
        .unwrap_or_else(|t| panic!("{t}"));
    upstream(&ex);
    assert!(vm.host().streams[&ctx].local_response.is_none());
    let ex = vm
        .http_call_response(ctx, token, status_pairs("409"), Vec::new())
        .unwrap_or_else(|t| panic!("{t}"));
    assert_reply(&ex, 401, "dpop-invalid");
}
