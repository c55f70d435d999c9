//! Coalesced remote replay checks (README "Replay service": batching). A request whose proof
//! passed every other check joins its worker's queue and pauses; the root context — woken
//! through a per-VM shared queue, so no timer and no added latency on an idle proxy — sends
//! the waiting keys as one `POST <path>/batch` while fewer than `replay.max_in_flight` batches
//! are out, and the rest join the next batch when one returns. Callouts are made by the root
//! context, so a member whose client goes away cannot take the batch with it. Each member is
//! finished from the answer with the effective context set to it, exactly as it would have
//! finished itself ([`Filter::apply_replay`]); its filter picks up what it needs later (the
//! response nonce) from [`Coalescer::settled`].

use super::abi::{self, now_nanos, now_secs};
use super::filter::{Filter, ReplyContext, Stage};
use super::metrics::bump;
use super::{Root, Shared};
use crate::config::ReplayConfig;
use crate::outcome::ProofKey;
use crate::reason::DenyReason;
use crate::replay::{self, StoreAnswer};
use proxy_wasm::traits::Context;
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

/// One paused request waiting for its replay verdict.
pub(super) struct Member {
    pub(super) ctx: u32,
    pub(super) key: String,
    pub(super) ttl: i64,
    pub(super) proof_key: Option<ProofKey>,
    pub(super) reply: ReplyContext,
    /// The configuration the request was checked under (a reconfiguration does not change it).
    pub(super) shared: Rc<Shared>,
}

/// One root context's batching state.
#[derive(Default)]
pub(super) struct Coalescer {
    /// The shared queue that wakes the root context.
    queue: u32,
    wake_pending: bool,
    waiting: VecDeque<Member>,
    /// Batches out, by callout token.
    in_flight: BTreeMap<u32, Vec<Member>>,
    /// Members whose request went away while their batch was out.
    gone: BTreeSet<u32>,
    /// Members finished by the root context: their `DPoP-Nonce` for the response.
    settled: BTreeMap<u32, Option<String>>,
}

thread_local! {
    /// Per VM (one per worker thread), by root context id.
    static COALESCERS: RefCell<BTreeMap<u32, Coalescer>> = const { RefCell::new(BTreeMap::new()) };
}

fn with<T>(root: u32, f: impl FnOnce(&mut Coalescer) -> T) -> Option<T> {
    COALESCERS.with(|c| c.try_borrow_mut().ok()?.get_mut(&root).map(f))
}

/// Sets up batching for root context `root` (once per root; kept across reconfigurations so
/// batches in flight still find their members). `false` when the host has no shared queues:
/// the filter then makes one callout per request.
pub(super) fn register(root: u32) -> bool {
    if with(root, |_| ()).is_some() {
        return true;
    }
    // A queue name no other worker's VM uses: Envoy keys queues by (vm_id, name) and wakes only
    // the last registrant. A counter in shared data (CAS) plus the clock make it unique.
    let seq = next_vm_sequence();
    let name = format!("dpop_guard.replay.{seq}.{root}.{}", now_nanos());
    match abi::register_shared_queue(&name) {
        Ok(queue) => COALESCERS.with(|c| {
            c.try_borrow_mut()
                .map(|mut m| {
                    m.insert(
                        root,
                        Coalescer {
                            queue,
                            ..Coalescer::default()
                        },
                    );
                })
                .is_ok()
        }),
        Err(status) => {
            log::warn!("dpop_guard: no shared queue for replay batching (host status {status}); one callout per request");
            false
        }
    }
}

fn next_vm_sequence() -> u64 {
    const KEY: &str = "dpop_guard.vm_sequence";
    for _ in 0..16 {
        let (current, cas) = match abi::shared_data(KEY) {
            Ok(Some((v, cas))) => (
                v.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes),
                cas,
            ),
            _ => (0, 0),
        };
        let next = current.wrapping_add(1);
        if let Ok(true) = abi::set_shared_data(KEY, &next.to_le_bytes(), cas) {
            return next;
        }
    }
    0
}

/// Queues a member and wakes its root context. `Err(member)` when the root cannot be woken
/// (the caller then treats the check as unavailable).
pub(super) fn enqueue(root: u32, member: Member) -> Result<(), Member> {
    let mut member = Some(member);
    let queued = with(root, |co| {
        if !co.wake_pending {
            if let Err(status) = abi::enqueue_shared_queue(co.queue, b"") {
                log::warn!("dpop_guard: cannot wake the replay batcher (host status {status})");
                return false;
            }
            co.wake_pending = true;
        }
        if let Some(m) = member.take() {
            co.waiting.push_back(m);
        }
        true
    });
    match (queued, member) {
        (Some(true), _) => Ok(()),
        (_, Some(m)) => Err(m),
        (_, None) => Ok(()),
    }
}

/// The member's settlement, once the root context finished it: `Some(response nonce)`.
pub(super) fn take_settled(root: u32, ctx: u32) -> Option<Option<String>> {
    with(root, |co| co.settled.remove(&ctx)).flatten()
}

/// The member's request went away: drop it from its queue or batch.
pub(super) fn forget(root: u32, ctx: u32) {
    with(root, |co| {
        co.settled.remove(&ctx);
        let before = co.waiting.len();
        co.waiting.retain(|m| m.ctx != ctx);
        if co.waiting.len() == before && co.in_flight.values().flatten().any(|m| m.ctx == ctx) {
            co.gone.insert(ctx);
        }
    });
}

/// Finishes one member from its answer, acting on its stream; returns its response nonce.
fn settle(member: Member, answer: StoreAnswer) -> Option<Option<String>> {
    if abi::set_effective_context(member.ctx).is_err() {
        return None; // the request is gone
    }
    let mut f = Filter {
        shared: member.shared.clone(),
        stage: Stage::Start,
        response_nonce: None,
        ctx: member.ctx,
        root: 0,
        batched: false,
    };
    if f.apply_replay(answer, member.proof_key, &member.reply) == Action::Continue {
        if let Err(code) = abi::resume_request() {
            f.host_error("continue_stream", code);
            f.send_reply(DenyReason::HostCallFailed, &member.reply, now_secs());
        }
    }
    Some(f.response_nonce.take())
}

impl Root {
    /// The shared queue woke us (or the tick): empty it, then send what is waiting.
    pub(super) fn on_batch_wakeup(&mut self, queue: u32) {
        let mine = with(self.id, |co| {
            if co.queue != queue {
                return false;
            }
            co.wake_pending = false;
            true
        });
        if mine != Some(true) {
            return;
        }
        while let Ok(Some(_)) = abi::dequeue_shared_queue(queue) {}
        self.pump();
    }

    /// Sends batches while fewer than `max_in_flight` are out.
    pub(super) fn pump(&mut self) {
        loop {
            // Take the next batch: members checked under the same configuration as the first.
            let batch = with(self.id, |co| {
                let first = co.waiting.front()?;
                let (max_batch, max_in_flight) = match &first.shared.cfg.replay {
                    ReplayConfig::Remote {
                        max_batch,
                        max_in_flight,
                        ..
                    } => (*max_batch as usize, *max_in_flight as usize),
                    _ => (1, 1),
                };
                if co.in_flight.len() >= max_in_flight {
                    return None;
                }
                let shared = first.shared.clone();
                let mut batch = Vec::new();
                let mut rest = VecDeque::new();
                while let Some(m) = co.waiting.pop_front() {
                    if batch.len() < max_batch && Rc::ptr_eq(&m.shared, &shared) {
                        batch.push(m);
                    } else {
                        rest.push_back(m);
                    }
                }
                co.waiting = rest;
                Some(batch)
            })
            .flatten();
            let Some(batch) = batch else { return };
            self.send(batch);
        }
    }

    fn send(&mut self, batch: Vec<Member>) {
        let Some(first) = batch.first() else { return };
        let shared = first.shared.clone();
        let ReplayConfig::Remote {
            cluster,
            authority,
            path,
            timeout_ms,
            ..
        } = &shared.cfg.replay
        else {
            return;
        };
        let body = replay::remote_batch_body(batch.iter().map(|m| (m.key.as_str(), m.ttl)));
        let path = format!("{path}{}", replay_wire::BATCH_SUFFIX);
        let len = body.len().to_string();
        let headers = vec![
            (":method", "POST"),
            (":path", path.as_str()),
            (":authority", authority.as_str()),
            ("content-type", "application/json"),
            ("content-length", len.as_str()),
        ];
        // The callout belongs to the root context (in Envoy and in the SDK): it outlives any
        // member's request.
        let _ = abi::set_effective_context(self.id);
        bump(shared.metrics.replay_batches);
        abi::increment_by(
            shared.metrics.replay_batched,
            i64::try_from(batch.len()).unwrap_or(0),
        );
        match self.dispatch_http_call(
            cluster,
            headers,
            Some(body.as_bytes()),
            vec![],
            Duration::from_millis(u64::from(*timeout_ms)),
        ) {
            Ok(token) => {
                with(self.id, |co| co.in_flight.insert(token, batch));
            }
            Err(e) => {
                log::warn!("dpop_guard: replay callout to cluster {cluster} failed: {e:?}");
                self.finish_batch(batch, |_| StoreAnswer::Unavailable);
            }
        }
    }

    /// A batch's answer (a callout response being delivered to the root context). `false` when
    /// `token` is not a batch.
    pub(super) fn on_batch_reply(&mut self, token: u32, body_size: usize) -> bool {
        let Some(batch) = with(self.id, |co| co.in_flight.remove(&token)).flatten() else {
            return false;
        };
        let status = abi::http_call_response_header(":status").ok().flatten();
        let body = abi::http_call_response_body(body_size.min(64 * 1024)).unwrap_or_default();
        let answers = replay::remote_batch_answers(status.as_deref(), &body, batch.len());
        self.finish_batch(batch, |i| {
            answers.get(i).copied().unwrap_or(StoreAnswer::Unavailable)
        });
        let _ = abi::set_effective_context(self.id);
        self.pump();
        true
    }

    fn finish_batch(&mut self, batch: Vec<Member>, answer: impl Fn(usize) -> StoreAnswer) {
        for (i, member) in batch.into_iter().enumerate() {
            let ctx = member.ctx;
            if with(self.id, |co| co.gone.remove(&ctx)) == Some(true) {
                continue;
            }
            if let Some(nonce) = settle(member, answer(i)) {
                with(self.id, |co| co.settled.insert(ctx, nonce));
            }
        }
    }
}

impl Filter {
    /// Joins the worker's next replay batch; the request pauses until the root finishes it.
    pub(super) fn join_batch(
        &mut self,
        proof_key: Option<ProofKey>,
        key: &str,
        ttl: i64,
        reply: ReplyContext,
    ) -> Action {
        let member = Member {
            ctx: self.ctx,
            key: key.to_owned(),
            ttl,
            proof_key,
            reply,
            shared: self.shared.clone(),
        };
        match enqueue(self.root, member) {
            Ok(()) => {
                self.stage = Stage::AwaitingBatch;
                self.batched = true;
                Action::Pause
            }
            Err(m) => self.apply_replay(StoreAnswer::Unavailable, m.proof_key, &m.reply),
        }
    }

    /// While in a batch: has the root finished this request? Then take what it left.
    pub(super) fn batch_settled(&mut self) -> bool {
        match take_settled(self.root, self.ctx) {
            Some(nonce) => {
                self.stage = Stage::Done;
                self.response_nonce = nonce;
                true
            }
            None => false,
        }
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if self.batched {
            forget(self.root, self.ctx);
        }
    }
}
