//! Coalesced remote replay checks in the built wasm (issue 17): requests queue and pause, the
//! root context (woken through the shared queue) sends one batch, and each member is finished
//! from its own verdict with the effective context set to it.

use crate::common::*;
use proxy_wasm_emu::dpop::Key;
use proxy_wasm_emu::{status, HostState, Outcome, Vm};

fn vm(extra: &str) -> Vm {
    start(&format!(
        r#"{{"required": true, "replay": {{"store": "remote", "cluster": "dpop_replay",
             "timeout_ms": 250{extra}}}}}"#
    ))
}

/// `max_in_flight: 2` (the default is 1): a batch may leave while a lone check is out.
const TWO_SLOTS: &str = r#", "max_in_flight": 2"#;

/// Starts requests (each paused in the queue); returns their context ids.
fn queue(vm: &mut Vm, keys: &[&Key]) -> Vec<u32> {
    keys.iter()
        .map(|k| {
            let p = proof(k, "/api", None);
            let ex = vm
                .request_headers(&get(b"/api", &[(b"dpop", p.as_bytes())]))
                .unwrap();
            assert_eq!(
                ex.outcome,
                Outcome::Stalled,
                "queued, no callout of its own"
            );
            ex.context_id
        })
        .collect()
}

/// On an idle worker the first check goes out alone, at once, from its own context: start one
/// and return (context, its callout token).
fn lone(vm: &mut Vm, key: &Key) -> (u32, u32) {
    let p = proof(key, "/api", None);
    let ex = vm
        .request_headers(&get(b"/api", &[(b"dpop", p.as_bytes())]))
        .unwrap();
    let Outcome::Pending(tokens) = &ex.outcome else {
        panic!("expected a lone check, got {:?}", ex.outcome)
    };
    let call = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(call.context, ex.context_id);
    let h = call.headers.unwrap();
    assert_eq!(values(&h, ":path"), vec![&b"/v1/replay"[..]]);
    (ex.context_id, tokens[0])
}

fn batch_calls(vm: &Vm) -> Vec<proxy_wasm_emu::HttpCall> {
    let root = vm.root_context();
    vm.host()
        .http_calls
        .iter()
        .filter(|c| c.context == root)
        .cloned()
        .collect()
}

fn entries(call: &proxy_wasm_emu::HttpCall) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    v["entries"].as_array().unwrap().len()
}

fn answer(vm: &mut Vm, ctx: u32, token: u32, status: &str, body: &str) {
    vm.http_call_response(
        ctx,
        token,
        vec![(b":status".to_vec(), status.as_bytes().to_vec())],
        body.as_bytes().to_vec(),
    )
    .unwrap();
}

#[test]
fn a_lone_check_on_an_idle_worker_goes_out_at_once() {
    let mut vm = vm("");
    let (ctx, token) = lone(&mut vm, &Key::new(79));
    answer(&mut vm, ctx, token, "201", "");
    upstream_of(&vm, ctx);
    assert_eq!(vm.host().metric("dpop_guard.replay.batches"), 0);
    // idle again: the next one goes alone too
    let (ctx, token) = lone(&mut vm, &Key::new(78));
    answer(&mut vm, ctx, token, "201", "");
    upstream_of(&vm, ctx);
}

#[test]
fn one_batch_per_wakeup_each_member_gets_its_own_verdict() {
    let mut vm = vm(TWO_SLOTS);
    let _busy = lone(&mut vm, &Key::new(77));
    let keys: Vec<Key> = (80..83).map(Key::new).collect();
    let ctxs = queue(&mut vm, &keys.iter().collect::<Vec<_>>());
    assert!(
        batch_calls(&vm).is_empty(),
        "nothing is sent from a request's context"
    );
    assert_eq!(
        vm.deliver_queue_ready().unwrap(),
        1,
        "one wake-up for the three"
    );
    let calls = batch_calls(&vm);
    assert_eq!(calls.len(), 1);
    let h = calls[0].headers.clone().unwrap();
    assert_eq!(values(&h, ":path"), vec![&b"/v1/replay/batch"[..]]);
    assert_eq!(entries(&calls[0]), 3);
    answer(
        &mut vm,
        ctxs[0],
        calls[0].token,
        "200",
        r#"{"results":[201,409,201]}"#,
    );
    assert_eq!(
        values(upstream_of(&vm, ctxs[0]), "x-dpop-jkt"),
        vec![keys[0].jkt().as_bytes()]
    );
    match vm.outcome_of(ctxs[1]) {
        Outcome::LocalReply(r) => {
            assert_eq!(r.status, 401);
            assert!(String::from_utf8_lossy(&r.body).contains("already used"));
        }
        other => panic!("{other:?}"),
    }
    upstream_of(&vm, ctxs[2]);
    assert_eq!(vm.host().metric("dpop_guard.replay.batches"), 1);
    assert_eq!(vm.host().metric("dpop_guard.replay.batched"), 3);
    assert_eq!(vm.host().metric("dpop_guard.replay.detected"), 1);
    for c in ctxs {
        vm.finish(c).unwrap();
    }
}

fn upstream_of(vm: &Vm, ctx: u32) -> &'static proxy_wasm_emu::Pairs {
    match vm.outcome_of(ctx) {
        Outcome::Upstream(h) => Box::leak(Box::new(h)),
        other => panic!("expected upstream for {ctx}, got {other:?}"),
    }
}

#[test]
fn later_arrivals_wait_for_the_check_in_flight() {
    let mut vm = vm(r#", "max_in_flight": 1"#);
    let (l, lt) = lone(&mut vm, &Key::new(83));
    let first = queue(&mut vm, &[&Key::new(84)]);
    assert_eq!(
        vm.deliver_queue_ready().unwrap(),
        0,
        "no wake-up while no batch could leave (the lone check's end pumps)"
    );
    assert!(
        batch_calls(&vm).is_empty(),
        "max_in_flight 1: the lone check holds the slot"
    );
    answer(&mut vm, l, lt, "201", "");
    upstream_of(&vm, l);
    assert_eq!(
        vm.deliver_queue_ready().unwrap(),
        1,
        "the lone check's end wakes the root"
    );
    assert_eq!(batch_calls(&vm).len(), 1);
    let later = queue(&mut vm, &[&Key::new(85), &Key::new(86)]);
    assert_eq!(
        vm.deliver_queue_ready().unwrap(),
        0,
        "the batch out pumps when it returns"
    );
    assert_eq!(
        batch_calls(&vm).len(),
        1,
        "max_in_flight 1: the second batch waits"
    );
    let token = batch_calls(&vm)[0].token;
    answer(&mut vm, first[0], token, "200", r#"{"results":[201]}"#);
    upstream_of(&vm, first[0]);
    // the reply sent the waiting two as the next batch
    let calls = batch_calls(&vm);
    assert_eq!(calls.len(), 2);
    assert_eq!(entries(&calls[1]), 2);
    answer(
        &mut vm,
        later[0],
        calls[1].token,
        "200",
        r#"{"results":[201,201]}"#,
    );
    upstream_of(&vm, later[0]);
    upstream_of(&vm, later[1]);
}

#[test]
fn a_failed_batch_applies_on_error_to_every_member() {
    for (on_error, want_status) in [("deny", Some(503)), ("allow", None)] {
        let mut vm = vm(&format!(r#"{TWO_SLOTS}, "on_error": "{on_error}""#));
        let _busy = lone(&mut vm, &Key::new(76));
        let ctxs = queue(&mut vm, &[&Key::new(87), &Key::new(88)]);
        vm.deliver_queue_ready().unwrap();
        let token = batch_calls(&vm)[0].token;
        // the proxy's timeout answer
        answer(&mut vm, ctxs[0], token, "504", "upstream request timeout");
        for c in &ctxs {
            match (vm.outcome_of(*c), want_status) {
                (Outcome::LocalReply(r), Some(s)) => assert_eq!(r.status, s),
                (Outcome::Upstream(_), None) => {}
                (other, _) => panic!("{on_error}: {other:?}"),
            }
        }
        assert_eq!(vm.host().metric("dpop_guard.replay.errors"), 2);
    }
}

#[test]
fn a_member_that_goes_away_is_dropped_without_breaking_the_others() {
    let mut vm = vm(r#", "max_in_flight": 2"#);
    let _busy = lone(&mut vm, &Key::new(75));
    let ctxs = queue(&mut vm, &[&Key::new(89), &Key::new(90)]);
    vm.deliver_queue_ready().unwrap();
    let token = batch_calls(&vm)[0].token;
    // the first client disconnects while its batch is out
    vm.finish(ctxs[0]).unwrap();
    // and one leaves while still queued
    let queued = queue(&mut vm, &[&Key::new(91), &Key::new(92)]);
    vm.finish(queued[0]).unwrap();
    answer(&mut vm, ctxs[1], token, "200", r#"{"results":[201,201]}"#);
    upstream_of(&vm, ctxs[1]);
    // the next batch holds only the member still there
    vm.deliver_queue_ready().unwrap();
    let calls = batch_calls(&vm);
    assert_eq!(entries(calls.last().unwrap()), 1);
    answer(
        &mut vm,
        queued[1],
        calls.last().unwrap().token,
        "200",
        r#"{"results":[201]}"#,
    );
    upstream_of(&vm, queued[1]);
    assert!(vm.dead().is_none());
}

#[test]
fn a_member_with_a_body_continues_once_settled() {
    let mut vm = vm(TWO_SLOTS);
    let _busy = lone(&mut vm, &Key::new(74));
    let p = proof(&Key::new(93), "/api", None);
    let mut req = get(b"/api", &[(b"dpop", p.as_bytes())]);
    req.end_of_stream = false;
    let ex = vm.request_headers(&req).unwrap();
    vm.deliver_queue_ready().unwrap();
    let ctx = ex.context_id;
    // body arrives while the batch is out: held
    assert_eq!(
        vm.call_on(ctx, "proxy_on_request_body", &[ctx as i32, 10, 1])
            .unwrap(),
        Some(1)
    );
    let token = batch_calls(&vm)[0].token;
    answer(&mut vm, ctx, token, "200", r#"{"results":[201]}"#);
    upstream_of(&vm, ctx);
    // settled: later body chunks pass
    assert_eq!(
        vm.call_on(ctx, "proxy_on_request_body", &[ctx as i32, 10, 1])
            .unwrap(),
        Some(0)
    );
}

#[test]
fn a_reconfiguration_neither_loses_nor_double_answers_queued_requests() {
    let mut vm = vm(r#", "max_in_flight": 2"#);
    let _busy = lone(&mut vm, &Key::new(73));
    let out = queue(&mut vm, &[&Key::new(94)]);
    vm.deliver_queue_ready().unwrap();
    let waiting = queue(&mut vm, &[&Key::new(95)]);
    // new configuration (another cluster) while one batch is out and one request waits
    vm.host_mut().plugin_configuration = br#"{"required": true, "replay": {"store": "remote",
        "cluster": "replay_v2", "timeout_ms": 250, "max_in_flight": 2}}"#
        .to_vec();
    assert!(vm.on_configure().unwrap());
    vm.deliver_queue_ready().unwrap();
    let first = batch_calls(&vm);
    assert_eq!(
        first.len(),
        1,
        "max_in_flight of the old configuration still holds"
    );
    answer(
        &mut vm,
        out[0],
        first[0].token,
        "200",
        r#"{"results":[201]}"#,
    );
    upstream_of(&vm, out[0]);
    // the waiting request goes out with the configuration it was checked under
    let calls = batch_calls(&vm);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].cluster, b"dpop_replay");
    answer(
        &mut vm,
        waiting[0],
        calls[1].token,
        "200",
        r#"{"results":[201]}"#,
    );
    upstream_of(&vm, waiting[0]);
    // a request after the reconfiguration uses the new one
    let new = queue(&mut vm, &[&Key::new(96)]);
    vm.deliver_queue_ready().unwrap();
    let calls = batch_calls(&vm);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].cluster, b"replay_v2");
    answer(
        &mut vm,
        new[0],
        calls[2].token,
        "200",
        r#"{"results":[201]}"#,
    );
    upstream_of(&vm, new[0]);
    // nobody was answered twice: one reply per request
    for c in [out[0], waiting[0], new[0]] {
        assert_eq!(
            vm.host()
                .calls
                .iter()
                .filter(|r| r.name.ends_with("proxy_continue_stream") && r.context == c)
                .count(),
            1,
            "request {c} resumed once"
        );
    }
}

/// `replay.transport = "grpc"` on a host that cannot open gRPC streams (its `proxy_grpc_stream`
/// answers BadArgument or Unimplemented, statuses the SDK's `open_grpc_stream` would panic on):
/// the configuration is refused at start-up with a reason, never a trap at the first request.
#[test]
fn grpc_transport_on_a_host_without_grpc_streams_is_refused_at_configure() {
    let cfg = br#"{"replay": {"store": "remote", "cluster": "dpop_replay", "transport": "grpc"}}"#;
    for status in [status::BAD_ARGUMENT, status::UNIMPLEMENTED] {
        let mut host = HostState::new(cfg);
        host.grpc_stream_status = Some(status);
        match Vm::start_with(wasm(), host) {
            Err(proxy_wasm_emu::StartError::ConfigureRefused(log)) => {
                assert!(log.contains("cannot open gRPC streams"), "{log}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted with proxy_grpc_stream answering {status}"),
        }
    }
    // the same with transport http starts
    let http = br#"{"replay": {"store": "remote", "cluster": "dpop_replay", "transport": "http"}}"#;
    let mut host = HostState::new(http);
    host.grpc_stream_status = Some(status::BAD_ARGUMENT);
    assert!(Vm::start_with(wasm(), host).is_ok());
    // and grpc on a host with gRPC streams (Envoy's answers: tests/glue/stream.rs)
    assert!(Vm::start(wasm(), cfg).is_ok());
}
