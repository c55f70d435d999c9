//! `replay.transport = "grpc"` in the built wasm: one gRPC stream per worker, owned by the root
//! context, each batch (or an idle worker's single check) one message `{"id":N,"entries":[…]}`,
//! answered by `{"id":N,"results":[…]}` in any order. The test plays dpop-replay with
//! [`Vm::grpc_receive`] and [`Vm::grpc_close`].

use crate::common::*;
use dpop_guard::proof::replay_key;
use dpop_guard::replay::grpc_service_target;
use proxy_wasm_emu::dpop::{check_reply_shape, reply_slug, Key, ProofClaims};
use proxy_wasm_emu::{
    status, CallRecord, Fault, GrpcStream, GrpcStreamState, HostState, Outcome, Vm,
};
use serde_json::Value;

fn config(extra: &str) -> String {
    format!(
        r#"{{"required": true, "replay": {{"store": "remote", "cluster": "dpop_replay",
             "timeout_ms": 250, "transport": "grpc"{extra}}}}}"#
    )
}

fn vm(extra: &str) -> Vm {
    start(&config(extra))
}

const TWO_SLOTS: &str = r#", "max_in_flight": 2"#;

/// A request whose check is waiting on the stream (sent or queued).
struct Req {
    ctx: u32,
    /// The replay key it must be checked under.
    key: String,
    jkt: String,
    /// Host calls made during its `proxy_on_request_headers`.
    calls: Vec<CallRecord>,
}

impl Req {
    fn grpc_calls(&self) -> Vec<&CallRecord> {
        self.calls
            .iter()
            .filter(|c| c.name.contains("proxy_grpc_"))
            .collect()
    }
}

/// Starts a request with a fresh proof from `key`; it pauses for its replay check.
fn request(vm: &mut Vm, key: &Key) -> Req {
    let jti = jti();
    let p = key.proof(&ProofClaims {
        htm: "GET",
        htu: &htu("/api"),
        iat: NOW,
        jti: &jti,
        token: None,
        nonce: None,
    });
    let ex = vm
        .request_headers(&get(b"/api", &[(b"dpop", p.as_bytes())]))
        .unwrap_or_else(|t| panic!("{t}"));
    assert_eq!(ex.outcome, Outcome::Stalled, "paused for the replay check");
    Req {
        ctx: ex.context_id,
        key: replay_key(&key.jkt(), &jti),
        jkt: key.jkt(),
        calls: ex.calls,
    }
}

fn streams(vm: &Vm) -> &[GrpcStream] {
    &vm.host().grpc_streams
}

fn stream(vm: &Vm, token: u32) -> &GrpcStream {
    vm.host().grpc_stream(token).unwrap()
}

/// Message `i` of stream `token`: (its id, the keys of its entries).
fn message(vm: &Vm, token: u32, i: usize) -> (u64, Vec<String>) {
    let text = stream(vm, token).message_text(i).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let keys = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["ttl"].as_i64().unwrap() > 0, "{text}");
            e["key"].as_str().unwrap().to_owned()
        })
        .collect();
    (v["id"].as_u64().unwrap(), keys)
}

fn answer(vm: &mut Vm, token: u32, id: u64, codes: &[u16]) -> Vec<CallRecord> {
    let list: Vec<String> = codes.iter().map(u16::to_string).collect();
    let body = format!(r#"{{"id":{id},"results":[{}]}}"#, list.join(","));
    vm.grpc_receive(token, body.as_bytes())
        .unwrap_or_else(|t| panic!("{t}"))
}

/// Answers message `i` of stream `token`.
fn answer_nth(vm: &mut Vm, token: u32, i: usize, codes: &[u16]) -> Vec<CallRecord> {
    let id = message(vm, token, i).0;
    answer(vm, token, id, codes)
}

/// The first check of a fresh VM: queued (no stream yet), then the root's wake-up opens the
/// stream and sends it as the stream's first message. Returns the request and the token.
fn open(vm: &mut Vm, key: &Key) -> (Req, u32) {
    let before = streams(vm).len();
    let r = request(vm, key);
    assert!(r.grpc_calls().is_empty(), "no stream open: queued");
    assert_eq!(vm.deliver_queue_ready().unwrap(), 1);
    assert_eq!(streams(vm).len(), before + 1, "the root opened a stream");
    let s = streams(vm).last().unwrap();
    assert_eq!(s.state, GrpcStreamState::Open);
    let token = s.token;
    assert_eq!(message(vm, token, 0).1, vec![r.key.clone()]);
    (r, token)
}

fn allowed(vm: &Vm, r: &Req) {
    match vm.outcome_of(r.ctx) {
        Outcome::Upstream(h) => assert_eq!(values(&h, "x-dpop-jkt"), vec![r.jkt.as_bytes()]),
        other => panic!("expected request {} upstream, got {other:?}", r.ctx),
    }
}

fn refused(vm: &Vm, r: &Req, status: u32, slug: &str) -> Value {
    let reply = match vm.outcome_of(r.ctx) {
        Outcome::LocalReply(reply) => reply,
        other => panic!(
            "expected a {status} {slug} reply to {}, got {other:?}",
            r.ctx
        ),
    };
    check_reply_shape(&reply).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((reply.status, reply_slug(&reply).as_str()), (status, slug));
    serde_json::from_slice(&reply.body).unwrap()
}

fn unavailable(vm: &Vm, r: &Req) {
    refused(vm, r, 503, "replay-check-unavailable");
}

fn waiting(vm: &Vm, r: &Req) {
    assert_eq!(vm.outcome_of(r.ctx), Outcome::Stalled, "request {}", r.ctx);
}

fn resumed(calls: &[CallRecord]) -> usize {
    calls
        .iter()
        .filter(|c| c.name.ends_with("proxy_continue_stream"))
        .count()
}

fn metric(vm: &Vm, name: &str) -> u64 {
    vm.host().metric(&format!("dpop_guard.replay.{name}"))
}

#[test]
fn the_first_check_opens_the_stream_then_an_idle_worker_sends_at_once_on_it() {
    let mut vm = vm("");
    // the configure probe: Envoy's ParseFailure, nothing opened
    let probes: Vec<&CallRecord> = vm
        .host()
        .calls
        .iter()
        .filter(|c| c.name.ends_with("proxy_grpc_stream"))
        .collect();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].status, Some(status::PARSE_FAILURE));
    assert!(streams(&vm).is_empty());
    assert_eq!(vm.host().tick_period_ms, Some(62), "timeout_ms / 4");

    let (a, token) = open(&mut vm, &Key::new(200));
    let root = vm.root_context();
    let s = stream(&vm, token);
    assert_eq!(s.context, root, "the stream belongs to the root context");
    assert_eq!(
        s.target,
        grpc_service_target("dpop_replay", "dpop-replay").as_bytes()
    );
    assert_eq!(s.target, b"\x0a\x1a\x0a\x0bdpop_replay\x12\x0bdpop-replay");
    assert_eq!(
        (s.cluster.as_slice(), s.authority.as_deref()),
        (&b"dpop_replay"[..], Some(&b"dpop-replay"[..]))
    );
    assert_eq!(
        (s.service.as_slice(), s.method.as_slice()),
        (&b"dpop.replay.v1.Replay"[..], &b"Check"[..])
    );
    let (first, _) = message(&vm, token, 0);
    waiting(&vm, &a);
    answer(&mut vm, token, first, &[201]);
    allowed(&vm, &a);

    // idle worker, stream open: sent from the request's own callback, as the root
    let b = request(&mut vm, &Key::new(201));
    let grpc = b.grpc_calls();
    assert_eq!(grpc.len(), 1, "{grpc:?}");
    assert!(grpc[0].name.ends_with("proxy_grpc_send"));
    assert_eq!((grpc[0].context, grpc[0].status), (root, Some(status::OK)));
    assert_eq!(vm.deliver_queue_ready().unwrap(), 0, "no wake-up hop");
    assert_eq!(streams(&vm).len(), 1, "the same stream");
    let (second, keys) = message(&vm, token, 1);
    assert_ne!(second, first);
    assert_eq!(keys, vec![b.key.clone()]);
    answer(&mut vm, token, second, &[201]);
    allowed(&vm, &b);
    assert_eq!(metric(&vm, "streams"), 1);
    assert_eq!(metric(&vm, "alone"), 1);
    assert_eq!(metric(&vm, "batches"), 1);
    for r in [&a, &b] {
        // the response phase picks up what the root left (no trap, nothing refused)
        let (action, _) = vm
            .response_headers(r.ctx, vec![(b":status".to_vec(), b"200".to_vec())])
            .unwrap();
        assert_eq!(action, Some(0));
        vm.finish(r.ctx).unwrap();
    }
    assert!(vm.dead().is_none());
}

#[test]
fn checks_queued_while_a_message_is_out_leave_as_one_message() {
    let mut vm = vm("");
    let (a, token) = open(&mut vm, &Key::new(210));
    answer_nth(&mut vm, token, 0, &[201]);
    allowed(&vm, &a);
    let b = request(&mut vm, &Key::new(211));
    assert_eq!(b.grpc_calls().len(), 1, "sent at once");
    // max_in_flight 1: the next two wait for b's answer
    let c = request(&mut vm, &Key::new(212));
    let d = request(&mut vm, &Key::new(213));
    assert!(c.grpc_calls().is_empty() && d.grpc_calls().is_empty());
    assert_eq!(vm.deliver_queue_ready().unwrap(), 0, "no slot: no wake-up");
    assert_eq!(stream(&vm, token).messages.len(), 2);
    answer_nth(&mut vm, token, 1, &[201]);
    allowed(&vm, &b);
    // b's answer sent c and d as one message
    assert_eq!(stream(&vm, token).messages.len(), 3);
    let (id, keys) = message(&vm, token, 2);
    assert_eq!(keys, vec![c.key.clone(), d.key.clone()]);
    waiting(&vm, &c);
    answer(&mut vm, token, id, &[201, 409]);
    allowed(&vm, &c);
    let body = refused(&vm, &d, 401, "dpop-invalid");
    assert_eq!(body["detail"], "DPoP jti already used (replay attack)");
    assert_eq!(metric(&vm, "detected"), 1);
    assert_eq!(metric(&vm, "batches"), 2);
    assert_eq!(metric(&vm, "batched"), 3);
    assert!(vm.dead().is_none());
}

#[test]
fn answers_in_another_order_are_matched_by_id() {
    let mut vm = vm(TWO_SLOTS);
    let (a, token) = open(&mut vm, &Key::new(220));
    // a slot is free: b goes out at once while a's message is out
    let b = request(&mut vm, &Key::new(221));
    assert_eq!(b.grpc_calls().len(), 1);
    let (ia, ib) = (message(&vm, token, 0).0, message(&vm, token, 1).0);
    assert_eq!(message(&vm, token, 1).1, vec![b.key.clone()]);
    answer(&mut vm, token, ib, &[409]);
    refused(&vm, &b, 401, "dpop-invalid");
    waiting(&vm, &a);
    answer(&mut vm, token, ia, &[201]);
    allowed(&vm, &a);
    assert!(vm.dead().is_none());
}

#[test]
fn an_answer_with_the_wrong_count_fails_its_members_and_keeps_the_stream() {
    let mut vm = vm("");
    let (a, token) = open(&mut vm, &Key::new(230));
    let b = request(&mut vm, &Key::new(231));
    let c = request(&mut vm, &Key::new(232));
    // one member, two results
    answer_nth(&mut vm, token, 0, &[201, 201]);
    unavailable(&vm, &a);
    // two members, one result
    let (id, keys) = message(&vm, token, 1);
    assert_eq!(keys.len(), 2);
    answer(&mut vm, token, id, &[201]);
    unavailable(&vm, &b);
    unavailable(&vm, &c);
    assert_eq!(metric(&vm, "errors"), 3);
    // the stream is still good
    assert_eq!(stream(&vm, token).state, GrpcStreamState::Open);
    let d = request(&mut vm, &Key::new(233));
    assert_eq!(d.grpc_calls().len(), 1);
    answer_nth(&mut vm, token, 2, &[201]);
    allowed(&vm, &d);
    assert_eq!(streams(&vm).len(), 1);
    assert!(vm.dead().is_none());
}

#[test]
fn an_unreadable_answer_fails_the_stream_and_the_next_check_opens_a_new_one() {
    for bad in ["not json", r#"{"results":[201]}"#, ""] {
        let mut vm = vm(TWO_SLOTS);
        let (a, token) = open(&mut vm, &Key::new(240));
        let b = request(&mut vm, &Key::new(241));
        assert_eq!(b.grpc_calls().len(), 1);
        vm.grpc_receive(token, bad.as_bytes()).unwrap();
        unavailable(&vm, &a);
        unavailable(&vm, &b);
        assert_eq!(
            stream(&vm, token).state,
            GrpcStreamState::Cancelled,
            "{bad}"
        );
        let (c, new) = open(&mut vm, &Key::new(242));
        assert_ne!(new, token);
        answer_nth(&mut vm, new, 0, &[201]);
        allowed(&vm, &c);
        assert_eq!(metric(&vm, "streams"), 2);
        assert!(vm.dead().is_none());
    }
}

#[test]
fn an_answer_for_an_unknown_id_is_ignored() {
    let mut vm = vm("");
    let (a, token) = open(&mut vm, &Key::new(250));
    let id = message(&vm, token, 0).0;
    let calls = answer(&mut vm, token, id + 100, &[409]);
    assert_eq!(resumed(&calls), 0);
    waiting(&vm, &a);
    assert_eq!(stream(&vm, token).state, GrpcStreamState::Open);
    answer(&mut vm, token, id, &[201]);
    allowed(&vm, &a);
    assert!(vm.dead().is_none());
}

#[test]
fn the_stream_ending_fails_its_messages_with_on_error() {
    for on_error in ["deny", "allow"] {
        let mut vm = vm(&format!(r#"{TWO_SLOTS}, "on_error": "{on_error}""#));
        let (a, token) = open(&mut vm, &Key::new(260));
        let b = request(&mut vm, &Key::new(261));
        assert_eq!(b.grpc_calls().len(), 1);
        // UNAVAILABLE: the service went away
        let calls = vm.grpc_close(token, 14).unwrap();
        assert!(
            !calls.iter().any(|c| c.name.contains("proxy_grpc_")),
            "the stream is over: nothing to cancel"
        );
        for r in [&a, &b] {
            match on_error {
                "deny" => unavailable(&vm, r),
                _ => allowed(&vm, r),
            }
        }
        assert_eq!(metric(&vm, "errors"), 2);
        assert_eq!(stream(&vm, token).state, GrpcStreamState::Closed(14));
        let (c, new) = open(&mut vm, &Key::new(262));
        assert_ne!(new, token);
        answer_nth(&mut vm, new, 0, &[201]);
        allowed(&vm, &c);
        assert!(vm.dead().is_none());
    }
}

#[test]
fn a_message_past_timeout_ms_fails_on_the_tick_and_a_late_answer_is_ignored() {
    let mut vm = vm("");
    let (a, token) = open(&mut vm, &Key::new(270));
    let id = message(&vm, token, 0).0;
    vm.host_mut().now_nanos += 200_000_000;
    vm.tick().unwrap();
    waiting(&vm, &a);
    assert_eq!(stream(&vm, token).state, GrpcStreamState::Open);
    vm.host_mut().now_nanos += 51_000_000;
    vm.tick().unwrap();
    unavailable(&vm, &a);
    assert_eq!(stream(&vm, token).state, GrpcStreamState::Cancelled);
    // the next check opens a new stream
    let (b, new) = open(&mut vm, &Key::new(271));
    assert_ne!(new, token);
    // the late answer, on the reset stream and on the new one: nobody is touched
    for t in [token, new] {
        let calls = answer(&mut vm, t, id, &[201]);
        assert_eq!(resumed(&calls), 0, "{calls:?}");
    }
    unavailable(&vm, &a);
    waiting(&vm, &b);
    answer_nth(&mut vm, new, 0, &[201]);
    allowed(&vm, &b);
    assert!(vm.dead().is_none());
}

#[test]
fn a_request_that_goes_away_is_skipped_and_the_rest_of_its_message_settled() {
    let mut vm = vm("");
    let (a, token) = open(&mut vm, &Key::new(280));
    answer_nth(&mut vm, token, 0, &[201]);
    allowed(&vm, &a);
    let b = request(&mut vm, &Key::new(281));
    let c = request(&mut vm, &Key::new(282));
    let d = request(&mut vm, &Key::new(283));
    let e = request(&mut vm, &Key::new(284));
    // e leaves while queued: it never goes out
    vm.finish(e.ctx).unwrap();
    answer_nth(&mut vm, token, 1, &[201]);
    allowed(&vm, &b);
    let (id, keys) = message(&vm, token, 2);
    assert_eq!(keys, vec![c.key.clone(), d.key.clone()]);
    // c leaves while its message is out
    vm.finish(c.ctx).unwrap();
    let calls = answer(&mut vm, token, id, &[201, 201]);
    allowed(&vm, &d);
    assert_eq!(resumed(&calls), 1, "d only");
    assert!(calls.iter().all(|r| r.context != c.ctx), "{calls:?}");
    assert!(
        !calls.iter().any(
            |r| r.name.ends_with("proxy_set_effective_context") && r.status != Some(status::OK)
        ),
        "no switch to the gone request: {calls:?}"
    );
    // a lone check whose request left: its answer touches nothing
    let f = request(&mut vm, &Key::new(285));
    assert_eq!(f.grpc_calls().len(), 1);
    vm.finish(f.ctx).unwrap();
    let calls = answer_nth(&mut vm, token, 3, &[201]);
    assert_eq!(resumed(&calls), 0);
    assert!(
        calls.iter().all(|r| r.status == Some(status::OK)),
        "{calls:?}"
    );
    // and the worker is idle again
    let g = request(&mut vm, &Key::new(286));
    assert_eq!(g.grpc_calls().len(), 1);
    answer_nth(&mut vm, token, 4, &[201]);
    allowed(&vm, &g);
    assert!(vm.dead().is_none());
}

/// A new target (here the authority) half-closes the old stream: the message still out on it
/// is answered there, and new checks go on a new stream.
#[test]
fn a_reconfiguration_half_closes_the_old_stream_and_its_answers_still_count() {
    let mut vm = vm(TWO_SLOTS);
    let (a, old) = open(&mut vm, &Key::new(300));
    vm.host_mut().plugin_configuration =
        config(&format!(r#"{TWO_SLOTS}, "authority": "replay.v2""#)).into_bytes();
    assert!(vm.on_configure().unwrap());
    let (b, new) = open(&mut vm, &Key::new(301));
    assert_eq!(
        stream(&vm, new).authority.as_deref(),
        Some(&b"replay.v2"[..])
    );
    assert_eq!(stream(&vm, old).state, GrpcStreamState::HalfClosed);
    answer_nth(&mut vm, old, 0, &[201]);
    allowed(&vm, &a);
    answer_nth(&mut vm, new, 0, &[201]);
    allowed(&vm, &b);
    // the service ends the old stream, nothing left on it
    let calls = vm.grpc_close(old, 0).unwrap();
    assert_eq!(resumed(&calls), 0);
    let c = request(&mut vm, &Key::new(302));
    assert_eq!(c.grpc_calls().len(), 1, "sent at once on the new stream");
    answer_nth(&mut vm, new, 1, &[201]);
    allowed(&vm, &c);
    assert!(vm.dead().is_none());
}

/// The idle worker's send fails (the host lost the stream): the stream's other messages fail
/// with `on_error`, the stream is reset, and the check itself waits for a new stream.
#[test]
fn a_failed_send_reopens_the_stream_for_the_check() {
    let mut vm = vm(TWO_SLOTS);
    let (a, token) = open(&mut vm, &Key::new(295));
    vm.host_mut()
        .set_faults(vec![Fault::nth("proxy_grpc_send", 0, status::NOT_FOUND)]);
    let b = request(&mut vm, &Key::new(296));
    unavailable(&vm, &a);
    assert_eq!(stream(&vm, token).state, GrpcStreamState::Cancelled);
    assert_eq!(stream(&vm, token).messages.len(), 1);
    // b waits in the queue; the wake-up opens a new stream for it
    let before = streams(&vm).len();
    assert_eq!(vm.deliver_queue_ready().unwrap(), 1);
    assert_eq!(streams(&vm).len(), before + 1);
    let new = streams(&vm).last().unwrap().token;
    assert_eq!(message(&vm, new, 0).1, vec![b.key.clone()]);
    answer_nth(&mut vm, new, 0, &[201]);
    allowed(&vm, &b);
    assert!(vm.dead().is_none());
}

/// A GrpcService naming a cluster the host does not have: Envoy's InternalFailure, no stream;
/// the check fails with `on_error`, no trap.
#[test]
fn a_stream_that_cannot_open_fails_the_check() {
    let mut host = HostState::new(config("").as_bytes());
    host.grpc_clusters = Some(vec![b"other".to_vec()]);
    let mut vm = Vm::start_with(wasm(), host).unwrap_or_else(|e| panic!("{e}"));
    set_now(&mut vm, NOW);
    let a = request(&mut vm, &Key::new(290));
    assert_eq!(vm.deliver_queue_ready().unwrap(), 1);
    assert!(streams(&vm).is_empty());
    let opens: Vec<Option<u32>> = vm
        .host()
        .calls
        .iter()
        .filter(|c| c.name.ends_with("proxy_grpc_stream"))
        .map(|c| c.status)
        .collect();
    assert_eq!(
        opens,
        vec![Some(status::PARSE_FAILURE), Some(status::INTERNAL_FAILURE)]
    );
    unavailable(&vm, &a);
    assert_eq!(metric(&vm, "streams"), 0);
    assert!(vm.dead().is_none());
}
