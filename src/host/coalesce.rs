//! Coalesced remote replay checks (README "Replay service": batching). A request whose proof
//! passed every other check joins its worker's queue and pauses; the root context — woken
//! through a per-VM shared queue, so no timer and no added latency on an idle proxy — sends
//! the waiting keys as one `POST <path>/batch` while fewer than `replay.max_in_flight` batches
//! are out, and the rest join the next batch when one returns. Callouts are made by the root
//! context, so a member whose client goes away cannot take the batch with it. Each member is
//! finished from the answer with the effective context set to it, exactly as it would have
//! finished itself ([`Filter::apply_replay`]); its filter picks up what it needs later (the
//! response nonce) from [`Coalescer::handoff`].
//!
//! The same machinery makes introspection single-flight: the requests that need an answer for
//! the same token wait on one root-context callout, and each is then decided again from the
//! answer, in its own stream ([`Root::on_introspection_answer`]).

use super::abi::{self, now_nanos, now_secs};
use super::filter::{Filter, ReplyContext, Stage};
use super::metrics::bump;
use super::profile::Probe;
use super::{Root, Shared};
use crate::config::ReplayConfig;
use crate::introspection::{self, Answer};
use crate::outcome::ProofKey;
use crate::reason::DenyReason;
use crate::replay::{self, ReplayTransport, StoreAnswer};
use proxy_wasm::traits::Context;
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// A small map as a vector: these hold at most a worker's concurrent requests, and each
/// `BTreeMap` instantiation costs kilobytes of wasm.
pub(super) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: PartialEq, V> VecMap<K, V> {
    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| v)
    }
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.0.iter_mut().find(|(x, _)| x == k).map(|(_, v)| v)
    }
    pub(super) fn insert(&mut self, k: K, v: V) {
        match self.get_mut(&k) {
            Some(slot) => *slot = v,
            None => self.0.push((k, v)),
        }
    }
    pub(super) fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.0.iter().position(|(x, _)| x == k)?;
        Some(self.0.swap_remove(i).1)
    }
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

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

/// A request waiting for an introspection answer another request asked for.
pub(super) struct Waiter {
    pub(super) ctx: u32,
    pub(super) shared: Rc<Shared>,
}

/// One introspection in flight (or about to be sent) for a token hash.
struct PendingIntrospection {
    /// The access token to send (kept only until the answer).
    token: String,
    /// The callout, once sent.
    call: Option<u32>,
    waiters: Vec<Waiter>,
}

/// What the root context did with a request it finished or moved on.
pub(super) enum Handoff {
    /// Finished (allowed and resumed, or refused): its `DPoP-Nonce` for the response.
    Settled(Option<String>),
    /// Decided again after an introspection answer and now waiting in a replay batch.
    Batched,
    /// Decided again and now waiting on a per-request replay callout made from the root
    /// context (a lone check, or batching off): `foreign` holds its stage.
    Foreign,
}

/// A replay callout the root context made for a request it decided again.
pub(super) struct ForeignCheck {
    ctx: u32,
    shared: Rc<Shared>,
    stage: Stage,
    /// It holds the worker's lone-check slot ([`try_go_alone`]) until its answer.
    lone: bool,
}

/// One root context's batching state.
#[derive(Default)]
pub(super) struct Coalescer {
    /// The shared queue that wakes the root context.
    queue: u32,
    wake_pending: bool,
    /// Lone checks in flight: a request that found nothing queued and nothing in flight sends
    /// its own `POST <path>` at once (an idle proxy pays no wake-up hop); it counts against
    /// `max_in_flight` like a batch.
    lone: usize,
    pub(super) waiting: VecDeque<Member>,
    /// Batches out, by callout token.
    in_flight: VecMap<u32, Vec<Member>>,
    /// Members whose request went away while their batch was out.
    pub(super) gone: Vec<u32>,
    /// What became of requests the root context acted for, until their filter reads it.
    handoff: VecMap<u32, Handoff>,
    /// Introspections by token hash (single-flight).
    introspections: VecMap<[u8; 32], PendingIntrospection>,
    /// Callouts the root made on behalf of a request (its per-request replay check after an
    /// introspection answer), by callout token.
    foreign: VecMap<u32, ForeignCheck>,
    /// `replay.transport = "grpc"`: the stream new messages go on ([`super::stream`]).
    pub(super) stream: Option<super::stream::OpenStream>,
    /// Messages out on a stream, by message id; they count against `max_in_flight`.
    pub(super) messages: VecMap<u32, super::stream::Message>,
    pub(super) next_message: u32,
}

impl Coalescer {
    /// Whether another batch or lone check may go out under `max_in_flight`.
    pub(super) fn has_slot(&self, max_in_flight: usize) -> bool {
        self.in_flight.len() + self.lone + self.messages.len() < max_in_flight
    }
}

thread_local! {
    /// Per VM (one per worker thread), by root context id.
    static COALESCERS: RefCell<VecMap<u32, Coalescer>> = const { RefCell::new(VecMap(Vec::new())) };
}

/// Removes `ctx` from `list`; whether it was there.
fn take(list: &mut Vec<u32>, ctx: u32) -> bool {
    match list.iter().position(|c| *c == ctx) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

pub(super) fn with<T>(root: u32, f: impl FnOnce(&mut Coalescer) -> T) -> Option<T> {
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
    // A wake-up only helps while a batch could leave now: otherwise the batch or lone check
    // out will pump when it returns (`on_batch_reply`, `lone_done`), and the hop would be
    // a wasted VM entry per queued request.
    let (_, max_in_flight) = member.shared.cfg.replay.batch_limits();
    let mut member = Some(member);
    let queued = with(root, |co| {
        if !co.wake_pending && co.has_slot(max_in_flight) {
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

/// Whether a request may check alone right now (nothing queued, nothing in flight); if so it
/// is counted as in flight until [`lone_done`].
pub(super) fn try_go_alone(root: u32) -> bool {
    with(root, |co| {
        let idle = co.waiting.is_empty() && co.in_flight.len() == 0 && co.lone == 0;
        if idle {
            co.lone += 1;
        }
        idle
    })
    .unwrap_or(false)
}

/// A lone check ended (answered, failed, or its request went away): requests that queued
/// meanwhile may go now.
pub(super) fn lone_done(root: u32) {
    with(root, |co| {
        co.lone = co.lone.saturating_sub(1);
        if !co.waiting.is_empty()
            && !co.wake_pending
            && abi::enqueue_shared_queue(co.queue, b"").is_ok()
        {
            co.wake_pending = true;
        }
    });
}

/// What the root context did for request `ctx`, if anything yet.
pub(super) fn take_handoff(root: u32, ctx: u32) -> Option<Handoff> {
    with(root, |co| co.handoff.remove(&ctx)).flatten()
}

/// The request went away: drop it from every queue, batch and wait list.
pub(super) fn forget(root: u32, ctx: u32) {
    with(root, |co| {
        co.handoff.remove(&ctx);
        co.waiting.retain(|m| m.ctx != ctx);
        if co.in_flight.values().flatten().any(|m| m.ctx == ctx)
            || co
                .messages
                .values()
                .any(|m| m.members.iter().any(|m| m.ctx == ctx))
            || co.foreign.values().any(|f| f.ctx == ctx)
        {
            co.gone.push(ctx);
        }
        for p in co.introspections.values_mut() {
            p.waiters.retain(|w| w.ctx != ctx);
        }
    });
}

/// Waits for the introspection answer about `token` (hash `hash`), asking for it if nobody
/// has: one callout per token in flight per worker. `false`: the root cannot be woken.
pub(super) fn join_introspection(root: u32, waiter: Waiter, hash: [u8; 32], token: &str) -> bool {
    with(root, |co| {
        if let Some(p) = co.introspections.get_mut(&hash) {
            p.waiters.push(waiter);
            return true;
        }
        if !co.wake_pending {
            if abi::enqueue_shared_queue(co.queue, b"").is_err() {
                return false;
            }
            co.wake_pending = true;
        }
        co.introspections.insert(
            hash,
            PendingIntrospection {
                token: token.to_owned(),
                call: None,
                waiters: vec![waiter],
            },
        );
        true
    })
    .unwrap_or(false)
}

/// A stand-in for request `ctx`'s filter, for the root context to act in its stream.
fn stand_in(shared: Rc<Shared>, ctx: u32, root: u32, stage: Stage) -> Filter {
    Filter {
        shared,
        stage,
        response_nonce: None,
        ctx,
        root,
        batched: false,
        lone: false,
    }
}

/// Finishes one member from its answer, acting on its stream; returns its response nonce.
fn settle(member: Member, answer: StoreAnswer) -> Option<Option<String>> {
    if abi::set_effective_context(member.ctx).is_err() {
        return None; // the request is gone
    }
    let mut f = stand_in(member.shared.clone(), member.ctx, 0, Stage::Start);
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

    /// Sends the introspections nobody has sent yet, then batches while fewer than
    /// `max_in_flight` are out.
    pub(super) fn pump(&mut self) {
        self.send_introspections();
        loop {
            // Take the next batch: members checked under the same configuration as the first.
            let batch = with(self.id, |co| {
                let first = co.waiting.front()?;
                let (max_batch, max_in_flight) = first.shared.cfg.replay.batch_limits();
                if !co.has_slot(max_in_flight) {
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
            path, transport, ..
        } = &shared.cfg.replay
        else {
            return;
        };
        if *transport == ReplayTransport::Grpc {
            return self.send_on_stream(batch);
        }
        let body = replay::remote_batch_body(batch.iter().map(|m| (m.key.as_str(), m.ttl)));
        let path = format!("{path}{}", replay_wire::BATCH_SUFFIX);
        // The callout belongs to the root context (in Envoy and in the SDK): it outlives any
        // member's request.
        let _ = abi::set_effective_context(self.id);
        bump(shared.metrics.replay_batches);
        abi::increment_by(
            shared.metrics.replay_batched,
            i64::try_from(batch.len()).unwrap_or(0),
        );
        match super::replay::dispatch(self, &shared.cfg.replay, &path, &body) {
            Ok(token) => {
                with(self.id, |co| co.in_flight.insert(token, batch));
            }
            Err(()) => self.finish_batch(batch, |_| StoreAnswer::Unavailable),
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
        finish_members(self.id, batch, answer);
    }
}

/// Finishes each member of a batch from its answer (members whose request went away are
/// skipped). Leaves the effective context on the last member's stream.
pub(super) fn finish_members(root: u32, batch: Vec<Member>, answer: impl Fn(usize) -> StoreAnswer) {
    for (i, member) in batch.into_iter().enumerate() {
        let ctx = member.ctx;
        if with(root, |co| take(&mut co.gone, ctx)) == Some(true) {
            continue;
        }
        if let Some(nonce) = settle(member, answer(i)) {
            with(root, |co| co.handoff.insert(ctx, Handoff::Settled(nonce)));
        }
    }
}

impl Root {
    fn send_introspections(&mut self) {
        let unsent: Vec<([u8; 32], String, Rc<Shared>)> = with(self.id, |co| {
            co.introspections
                .iter()
                .filter(|(_, p)| p.call.is_none())
                .filter_map(|(h, p)| Some((*h, p.token.clone(), p.waiters.first()?.shared.clone())))
                .collect()
        })
        .unwrap_or_default();
        for (hash, token, shared) in unsent {
            let Some(cfg) = &shared.cfg.access_token.introspection else {
                self.on_introspection_answer(hash, Answer::Unavailable);
                continue;
            };
            let _ = abi::set_effective_context(self.id);
            match super::introspection::dispatch(self, cfg, &shared.metrics, &token) {
                Ok(call) => {
                    with(self.id, |co| {
                        if let Some(p) = co.introspections.get_mut(&hash) {
                            p.call = Some(call);
                        }
                    });
                }
                Err(_) => {
                    self.on_introspection_answer(hash, Answer::Unavailable);
                }
            }
        }
    }

    /// An introspection answer (callout response being delivered to the root context).
    /// `false` when `token` is not one.
    pub(super) fn on_introspection_reply(&mut self, call: u32, body_size: usize) -> bool {
        let hash = with(self.id, |co| {
            co.introspections
                .iter()
                .find(|(_, p)| p.call == Some(call))
                .map(|(h, _)| *h)
        })
        .flatten();
        let Some(hash) = hash else { return false };
        let status = abi::http_call_response_header(":status").ok().flatten();
        let answer =
            match abi::http_call_response_body(body_size.min(introspection::MAX_REPLY_BYTES + 1)) {
                Ok(body) => introspection::parse_reply(status.as_deref(), &body, now_secs()),
                Err(_) => Answer::Unavailable,
            };
        self.on_introspection_answer(hash, answer);
        let _ = abi::set_effective_context(self.id);
        self.pump();
        true
    }

    /// Caches the answer, then decides every waiting request again with it, in its stream.
    fn on_introspection_answer(&mut self, hash: [u8; 32], answer: Answer) {
        let Some(pending) = with(self.id, |co| co.introspections.remove(&hash)).flatten() else {
            return;
        };
        let now = now_secs();
        if let Some(first) = pending.waiters.first() {
            let shared = &first.shared;
            if answer == Answer::Unavailable {
                bump(shared.metrics.introspection_errors);
                log::warn!("dpop_guard: introspection failed (no answer, timeout or error status)");
            }
            if let (Some(cfg), Ok(mut cache)) = (
                &shared.cfg.access_token.introspection,
                shared.token_cache.try_borrow_mut(),
            ) {
                cache.insert(cfg, hash, &answer, now);
            }
        }
        for w in pending.waiters {
            if abi::set_effective_context(w.ctx).is_err() {
                continue; // the request is gone
            }
            let mut f = stand_in(w.shared.clone(), w.ctx, self.id, Stage::Start);
            let mut probe = Probe::start();
            let action = f.request_headers(&mut probe, Some((hash, answer.clone())));
            probe.finish();
            // the stand-in's membership (if it joined a batch) is the request's, not its own
            f.batched = false;
            let handoff = match std::mem::replace(&mut f.stage, Stage::Done) {
                Stage::AwaitingBatch => Handoff::Batched,
                stage @ Stage::AwaitingReplay { .. } => {
                    // the lone slot stays taken until the answer (`on_foreign_reply`), not
                    // released when this stand-in is dropped
                    let lone = std::mem::replace(&mut f.lone, false);
                    if let Stage::AwaitingReplay { token, .. } = &stage {
                        let call = *token;
                        let check = ForeignCheck {
                            ctx: w.ctx,
                            shared: w.shared.clone(),
                            stage,
                            lone,
                        };
                        with(self.id, |co| co.foreign.insert(call, check));
                    }
                    Handoff::Foreign
                }
                _ => {
                    if action == Action::Continue {
                        if let Err(code) = abi::resume_request() {
                            f.host_error("continue_stream", code);
                            f.send_reply(DenyReason::HostCallFailed, &ReplyContext::default(), now);
                        }
                    }
                    Handoff::Settled(f.response_nonce.take())
                }
            };
            with(self.id, |co| co.handoff.insert(w.ctx, handoff));
        }
    }

    /// A per-request replay answer for a request the root context decided again. `false` when
    /// `call` is not one.
    pub(super) fn on_foreign_reply(&mut self, call: u32, body_size: usize) -> bool {
        let Some(check) = with(self.id, |co| co.foreign.remove(&call)).flatten() else {
            return false;
        };
        let ctx = check.ctx;
        if with(self.id, |co| take(&mut co.gone, ctx)) == Some(true)
            || abi::set_effective_context(ctx).is_err()
        {
            if check.lone {
                lone_done(self.id);
            }
            return true;
        }
        let mut f = stand_in(check.shared, ctx, self.id, check.stage);
        // the answer releases the lone slot ([`Filter::apply_replay`])
        f.lone = check.lone;
        f.on_http_call_response(call, 0, body_size, 0);
        let nonce = f.response_nonce.take();
        with(self.id, |co| {
            co.handoff.insert(ctx, Handoff::Settled(nonce))
        });
        let _ = abi::set_effective_context(self.id);
        true
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
        let member = self.member(proof_key, key, ttl, reply);
        self.join_queue(member)
    }

    /// This request as a batch member.
    pub(super) fn member(
        &self,
        proof_key: Option<ProofKey>,
        key: &str,
        ttl: i64,
        reply: ReplyContext,
    ) -> Member {
        Member {
            ctx: self.ctx,
            key: key.to_owned(),
            ttl,
            proof_key,
            reply,
            shared: self.shared.clone(),
        }
    }

    /// Queues this request for the root context's next batch and pauses it.
    pub(super) fn join_queue(&mut self, member: Member) -> Action {
        match enqueue(self.root, member) {
            Ok(()) => {
                self.stage = Stage::AwaitingBatch;
                self.batched = true;
                Action::Pause
            }
            Err(m) => self.apply_replay(StoreAnswer::Unavailable, m.proof_key, &m.reply),
        }
    }

    /// Waiting on the root context: has it finished this request? Then take what it left
    /// (`true`: the request goes on). A request decided again and queued elsewhere keeps
    /// waiting.
    pub(super) fn batch_settled(&mut self) -> bool {
        match take_handoff(self.root, self.ctx) {
            Some(Handoff::Settled(nonce)) => {
                self.stage = Stage::Done;
                self.response_nonce = nonce;
                true
            }
            Some(Handoff::Batched | Handoff::Foreign) => {
                self.stage = Stage::AwaitingBatch;
                false
            }
            None => false,
        }
    }

    /// Waits for the (single-flight) introspection answer about `token`; `None` when the root
    /// context cannot be woken (then the caller asks itself).
    pub(super) fn wait_for_introspection(&mut self, token: &str) -> Option<Action> {
        let waiter = Waiter {
            ctx: self.ctx,
            shared: self.shared.clone(),
        };
        if !join_introspection(self.root, waiter, introspection::token_hash(token), token) {
            return None;
        }
        self.stage = Stage::AwaitingBatch;
        self.batched = true;
        Some(Action::Pause)
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if self.batched {
            forget(self.root, self.ctx);
        }
        if self.lone {
            // the host cancels the callout of a context that goes away
            lone_done(self.root);
        }
    }
}
