//! The gRPC stream transport of remote replay checks (`replay.transport = "grpc"`, README
//! "Replay service"). Each worker's root context keeps one long-lived bidi stream to
//! dpop-replay (`/dpop.replay.v1.Replay/Check` on an HTTP/2 cluster) and sends every batch — and
//! the single check of an idle worker — as one message on it. An HTTP callout costs Envoy a new
//! request (header map, router instance, upstream stream) per check or batch; a message on an
//! open stream is a DATA frame each way.
//!
//! Messages carry an id ([`replay_wire::stream`]); answers are matched by it and may come in
//! any order. A message not answered within `timeout_ms` (checked on the root's tick), an
//! unreadable answer, a failed send or the stream ending fails every message of that stream
//! with `on_error` — never resent: the service may have recorded the key, and a resend would
//! then call the first use a replay — and the next check opens a new stream.

use super::abi::{self, now_nanos, now_secs};
use super::coalesce::{finish_members, with, Member};
use super::filter::{Filter, ReplyContext, Stage};
use super::metrics::bump;
use super::Root;
use crate::config::ReplayConfig;
use crate::outcome::ProofKey;
use crate::reason::DenyReason;
use crate::replay::{self, StoreAnswer};
use proxy_wasm::types::Action;
use replay_wire::stream as wire;

/// The stream new messages go on, and the target (cluster, authority) it was opened for.
pub(super) struct OpenStream {
    pub(super) token: u32,
    target: String,
}

/// One message out: its stream, when it times out (ns), and the requests waiting on it.
pub(super) struct Message {
    stream: u32,
    deadline: u64,
    pub(super) members: Vec<Member>,
}

/// The stream target (computed once per configuration, [`super::Shared::replay_target`]) and
/// the message timeout of a `transport = "grpc"` configuration.
fn target_of(shared: &super::Shared) -> Option<(&str, u32)> {
    match (&shared.cfg.replay, &shared.replay_target) {
        (ReplayConfig::Remote { timeout_ms, .. }, Some(target)) => Some((target, *timeout_ms)),
        _ => None,
    }
}

/// The open stream of root `root` for `target`, if any.
fn open_for(root: u32, target: &str) -> Option<u32> {
    with(root, |co| {
        co.stream
            .as_ref()
            .filter(|s| s.target == target)
            .map(|s| s.token)
    })
    .flatten()
}

/// Sends `members` as one message on `stream` (the effective context must be the root).
fn send_message(
    root: u32,
    stream: u32,
    members: Vec<Member>,
    timeout_ms: u32,
) -> Result<(), Vec<Member>> {
    let Some(id) = with(root, |co| {
        co.next_message = co.next_message.wrapping_add(1);
        co.next_message
    }) else {
        return Err(members);
    };
    let body = wire::request(id, members.iter().map(|m| (m.key.as_str(), m.ttl)));
    if let Err(status) = abi::grpc_send(stream, body.as_bytes()) {
        log::warn!("dpop_guard: replay stream send failed (host status {status})");
        return Err(members);
    }
    let deadline = now_nanos().saturating_add(u64::from(timeout_ms) * 1_000_000);
    let message = Message {
        stream,
        deadline,
        members,
    };
    with(root, |co| co.messages.insert(id, message));
    Ok(())
}

/// Gives up on `stream`: it is reset (unless it already ended) and every message on it fails
/// with `on_error`. The effective context is left on some member's stream.
fn fail_stream(root: u32, stream: u32, reset: bool) {
    let failed = with(root, |co| {
        if co.stream.as_ref().is_some_and(|s| s.token == stream) {
            co.stream = None;
        }
        let ids: Vec<u32> = co
            .messages
            .iter()
            .filter(|(_, m)| m.stream == stream)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| co.messages.remove(&id))
            .flat_map(|m| m.members)
            .collect::<Vec<Member>>()
    })
    .unwrap_or_default();
    if reset {
        let _ = abi::set_effective_context(root);
        // the SDK keeps the token in its dispatcher map (no close callback follows a reset)
        let _ = abi::grpc_cancel(stream);
    }
    finish_members(root, failed, |_| StoreAnswer::Unavailable);
}

impl Root {
    /// Sends a batch on this worker's stream, opening one if there is none for its target.
    pub(super) fn send_on_stream(&mut self, batch: Vec<Member>) {
        let Some(first) = batch.first() else { return };
        let shared = first.shared.clone();
        let Some((target, timeout_ms)) = target_of(&shared) else {
            return finish_members(self.id, batch, |_| StoreAnswer::Unavailable);
        };
        let _ = abi::set_effective_context(self.id);
        let stream = match open_for(self.id, target) {
            Some(s) => Some(s),
            None => self.open_stream(target.to_owned()),
        };
        let Some(stream) = stream else {
            return finish_members(self.id, batch, |_| StoreAnswer::Unavailable);
        };
        bump(shared.metrics.replay_batches);
        abi::increment_by(
            shared.metrics.replay_batched,
            i64::try_from(batch.len()).unwrap_or(0),
        );
        if let Err(batch) = send_message(self.id, stream, batch, timeout_ms) {
            fail_stream(self.id, stream, true);
            finish_members(self.id, batch, |_| StoreAnswer::Unavailable);
        }
        let _ = abi::set_effective_context(self.id);
    }

    /// Opens this worker's stream to `target` (root context callbacks only: the SDK routes the
    /// stream's callbacks to the context that opened it). A stream still open for another
    /// target (a reconfiguration) is half-closed: its messages are still answered.
    fn open_stream(&mut self, target: String) -> Option<u32> {
        let old = with(self.id, |co| co.stream.take()).flatten();
        if let Some(old) = old {
            let _ = abi::grpc_close(old.token);
        }
        match proxy_wasm::hostcalls::open_grpc_stream(&target, wire::SERVICE, wire::METHOD, vec![])
        {
            Ok(token) => {
                if let Some(shared) = &self.shared {
                    bump(shared.metrics.replay_streams);
                }
                with(self.id, |co| co.stream = Some(OpenStream { token, target }));
                Some(token)
            }
            Err(status) => {
                log::warn!("dpop_guard: cannot open the replay stream (host status {status:?})");
                None
            }
        }
    }

    /// An answer on a replay stream.
    pub(super) fn on_stream_message(&mut self, stream: u32, size: usize) {
        let answer = abi::grpc_message(size.min(wire::MAX_MESSAGE + 1))
            .ok()
            .filter(|b| b.len() <= wire::MAX_MESSAGE)
            .and_then(|b| wire::read_reply(&b));
        match answer {
            Some((id, answers)) => {
                let message = with(self.id, |co| {
                    if co.messages.get(&id).is_some_and(|m| m.stream == stream) {
                        co.messages.remove(&id)
                    } else {
                        None
                    }
                })
                .flatten();
                // none: the answer to a message that already timed out
                if let Some(message) = message {
                    let n = message.members.len();
                    let answers: Vec<StoreAnswer> = if answers.len() == n {
                        answers.into_iter().map(replay::store_answer).collect()
                    } else {
                        vec![StoreAnswer::Unavailable; n]
                    };
                    finish_members(self.id, message.members, |i| {
                        answers.get(i).copied().unwrap_or(StoreAnswer::Unavailable)
                    });
                }
            }
            None => {
                log::warn!("dpop_guard: unreadable answer on the replay stream; reopening it");
                fail_stream(self.id, stream, true);
            }
        }
        let _ = abi::set_effective_context(self.id);
        self.pump();
    }

    /// A replay stream ended (the service or the connection closed it, or it never opened).
    pub(super) fn on_stream_close(&mut self, stream: u32, status: u32) {
        let pending = with(self.id, |co| {
            co.messages.values().filter(|m| m.stream == stream).count()
        })
        .unwrap_or(0);
        if pending > 0 || status != 0 {
            log::warn!(
                "dpop_guard: replay stream closed (grpc-status {status}) with {pending} message(s) unanswered"
            );
        }
        fail_stream(self.id, stream, false);
        let _ = abi::set_effective_context(self.id);
        self.pump();
    }

    /// The tick: messages past their deadline fail, and their stream is given up.
    pub(super) fn stream_tick(&mut self) {
        let now = now_nanos();
        let mut late: Vec<u32> = with(self.id, |co| {
            co.messages
                .values()
                .filter(|m| m.deadline <= now)
                .map(|m| m.stream)
                .collect()
        })
        .unwrap_or_default();
        late.sort_unstable();
        late.dedup();
        for stream in late {
            log::warn!("dpop_guard: replay stream timed out (replay.timeout_ms); reopening it");
            fail_stream(self.id, stream, true);
        }
        let _ = abi::set_effective_context(self.id);
    }
}

impl Filter {
    /// `replay.transport = "grpc"`: an idle worker (nothing queued, a slot free) with an open
    /// stream sends this check at once from the request's own callback (the effective context
    /// switched to the root, which owns the stream); otherwise it joins the next batch.
    pub(super) fn check_on_stream(
        &mut self,
        proof_key: Option<ProofKey>,
        key: &str,
        ttl: i64,
        reply: ReplyContext,
    ) -> Action {
        let member = self.member(proof_key, key, ttl, reply);
        let shared = self.shared.clone();
        let Some((target, timeout_ms)) = target_of(&shared) else {
            return self.join_queue(member);
        };
        let (_, max_in_flight) = self.shared.cfg.replay.batch_limits();
        let idle = with(self.root, |co| {
            co.waiting.is_empty() && co.has_slot(max_in_flight)
        }) == Some(true);
        let stream = if idle {
            open_for(self.root, target)
        } else {
            None
        };
        let Some(stream) = stream else {
            return self.join_queue(member);
        };
        if abi::set_effective_context(self.root).is_err() {
            return self.join_queue(member);
        }
        let sent = send_message(self.root, stream, vec![member], timeout_ms);
        let action = match sent {
            Ok(()) => {
                bump(self.shared.metrics.replay_alone);
                self.stage = Stage::AwaitingBatch;
                self.batched = true;
                Action::Pause
            }
            Err(mut back) => {
                fail_stream(self.root, stream, true);
                let _ = abi::set_effective_context(self.ctx);
                match back.pop() {
                    Some(member) => return self.join_queue(member),
                    // not reached (one member went out, one came back); fail closed anyway
                    None => {
                        self.send_reply(
                            DenyReason::HostCallFailed,
                            &ReplyContext::default(),
                            now_secs(),
                        );
                        return Action::Pause;
                    }
                }
            }
        };
        let _ = abi::set_effective_context(self.ctx);
        action
    }
}
