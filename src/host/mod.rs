//! proxy-wasm glue: the only module that talks to the host. It gathers request facts, calls the
//! pure decision code, and applies the result (local reply, replay check, headers, stats).

use crate::authn::{self, Decision, JwtAuthnView};
use crate::config::{Config, ReplayConfig, VerifyMode};
use crate::outcome::{self, Ending, Outcome, Plan, ProofKey};
use crate::problem::{self, ProblemContext};
use crate::proof::KeyCache;
use crate::reason::DenyReason;
use crate::replay::{self, LocalReplayStore, ReplayVerdict, SharedKv, StoreAnswer, StoreError};
use crate::upstream::UpstreamEdits;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

mod abi;
mod profile;
use abi::now_secs;
use profile::Probe;

proxy_wasm::main! {{
    abi::init_logging();
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Counter ids (README "Metrics"). Names are fixed; Envoy exports them under `wasmcustom.`.
struct Metrics {
    allowed: u32,
    denied: u32,
    per_reason: Vec<u32>,
    replay_detected: u32,
    replay_errors: u32,
    replay_local_full: u32,
    host_errors: u32,
    shadow_denied: u32,
    shadow_per_reason: Vec<u32>,
}

fn counter(name: &str) -> u32 {
    abi::define_counter(name)
}

fn bump(id: u32) {
    abi::increment(id);
}

impl Metrics {
    fn define() -> Metrics {
        Metrics {
            allowed: counter("dpop_guard.allowed"),
            denied: counter("dpop_guard.denied"),
            per_reason: DenyReason::ALL
                .iter()
                .map(|r| counter(&format!("dpop_guard.denied.{}", r.stat_name())))
                .collect(),
            replay_detected: counter("dpop_guard.replay.detected"),
            replay_errors: counter("dpop_guard.replay.errors"),
            replay_local_full: counter("dpop_guard.replay.local_full"),
            host_errors: counter("dpop_guard.host_errors"),
            shadow_denied: counter("dpop_guard.shadow.denied"),
            shadow_per_reason: DenyReason::ALL
                .iter()
                .map(|r| counter(&format!("dpop_guard.shadow.denied.{}", r.stat_name())))
                .collect(),
        }
    }

    /// A refusal, enforced or (shadow mode) only counted.
    fn refused(&self, reason: DenyReason, shadow: bool) {
        let (total, per_reason) = if shadow {
            (self.shadow_denied, &self.shadow_per_reason)
        } else {
            (self.denied, &self.per_reason)
        };
        bump(total);
        bump(per_reason.get(reason.index()).copied().unwrap_or(0));
        match reason {
            DenyReason::ProofReplayed => bump(self.replay_detected),
            DenyReason::ReplayStoreFull => bump(self.replay_local_full),
            _ => {}
        }
    }
}

/// Proxy-wasm shared data as the replay store's key-value backend.
struct HostKv;

impl SharedKv for HostKv {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        abi::shared_data(key).map_err(|_| StoreError::Host)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, StoreError> {
        abi::set_shared_data(key, value, cas.unwrap_or(0)).map_err(|_| StoreError::Host)
    }
}

/// Validated proof headers kept per VM (DPoP clients reuse one key).
const KEY_CACHE_ENTRIES: usize = 256;

/// Everything an HTTP context needs, built once per configuration.
struct Shared {
    cfg: Config,
    metrics: Metrics,
    local: Option<LocalReplayStore>,
    /// Made for `cfg` (its algorithm allow-list): a new configuration gets a new cache.
    key_cache: RefCell<KeyCache>,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _: usize) -> bool {
        abi::sync_log_level();
        log::info!("dpop_guard {VERSION} starting");
        true
    }

    fn on_configure(&mut self, config_size: usize) -> bool {
        abi::sync_log_level();
        let bytes = match abi::plugin_configuration(config_size) {
            Ok(b) => b,
            Err(status) => {
                log::error!(
                    "dpop_guard: cannot read the plugin configuration (host status {status})"
                );
                return false;
            }
        };
        let cfg = match Config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("dpop_guard: invalid configuration: {e}");
                return false;
            }
        };
        let local = match cfg.replay {
            ReplayConfig::Local { capacity } => {
                let store = LocalReplayStore::new(capacity);
                if let Err(e) = store.init(&HostKv) {
                    log::error!("dpop_guard: cannot initialise the local replay store: {e:?}");
                    return false;
                }
                Some(store)
            }
            ReplayConfig::Off => {
                log::warn!("dpop_guard: replay.store = \"off\": proofs can be replayed within their lifetime");
                None
            }
            ReplayConfig::Remote { .. } => None,
        };
        log::info!("dpop_guard configured: {}", cfg.summary());
        // The Ed25519 base-point table (≈ 480 KiB per VM, a few ms): built here rather than
        // inside the first request.
        crate::jose::warm_up();
        self.shared = Some(Rc::new(Shared {
            cfg,
            metrics: Metrics::define(),
            local,
            key_cache: RefCell::new(KeyCache::new(KEY_CACHE_ENTRIES)),
        }));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Filter {
            shared,
            stage: Stage::Start,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What ending a request needs from its headers, kept from the header read (a remote replay
/// check answers after they are gone).
#[derive(Default)]
struct ReplyContext {
    /// Request path without query (problem `instance`).
    instance: String,
    request_id: Option<String>,
    /// A gRPC request: a refusal is a gRPC status.
    grpc: bool,
    /// The route is in shadow mode.
    shadow: bool,
    /// The upstream edits should the request be allowed.
    allow_edits: UpstreamEdits,
}

/// Where a request is in the pipeline.
enum Stage {
    Start,
    /// Waiting for the dpop-replay service; the callout is matched by its token.
    AwaitingReplay {
        token: u32,
        key: Option<ProofKey>,
        reply: ReplyContext,
    },
    Done,
}

struct Filter {
    shared: Rc<Shared>,
    stage: Stage,
}

impl Filter {
    /// The one place a request ends: the pure plan ([`outcome::plan`]) becomes host actions.
    fn finish(&mut self, ending: Ending, reply: &ReplyContext, now: i64) -> Action {
        let plan = outcome::plan(ending, reply.shadow, reply.allow_edits.clone());
        self.stage = Stage::Done;
        if let Err(status) = publish(&plan) {
            // Filters after this one (RBAC on the jkt, the access log) read this state: a
            // request must not go on without it.
            self.host_error("set_property", status);
            return self.send_reply(DenyReason::HostCallFailed, reply, now);
        }
        match plan.outcome {
            Outcome::Pass => Action::Continue,
            Outcome::Deny => {
                let reason = plan.reply.unwrap_or(DenyReason::HostCallFailed);
                self.send_reply(reason, reply, now)
            }
            Outcome::ShadowDeny => {
                if let Some(reason) = plan.reason {
                    self.shared.metrics.refused(reason, true);
                    log::debug!("dpop_guard: shadow mode: would deny {}", reason.stat_name());
                }
                Action::Continue
            }
            Outcome::Allow => self.allow(&plan, reply, now),
        }
    }

    /// Counts the refusal and sends its local reply (problem+json, or a gRPC status).
    fn send_reply(&mut self, reason: DenyReason, reply: &ReplyContext, now: i64) -> Action {
        let cfg = &self.shared.cfg;
        self.shared.metrics.refused(reason, false);
        self.stage = Stage::Done;
        let nonce = match (reason, &cfg.nonce) {
            (DenyReason::NonceMissing | DenyReason::NonceInvalid, Some(n)) => {
                Some(crate::nonce::current(n, now))
            }
            _ => None,
        };
        let ctx = ProblemContext {
            instance: &reply.instance,
            request_id: reply.request_id.as_deref(),
            now,
            nonce: nonce.as_deref(),
            grpc: reply.grpc,
        };
        let resp = problem::build(cfg, reason, &ctx);
        log::debug!(
            "dpop_guard: denied {} ({})",
            reason.stat_name(),
            resp.status
        );
        let headers: Vec<(&str, &str)> =
            resp.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Err(status) = abi::send_local_response(
            resp.status,
            &headers,
            resp.body.as_bytes(),
            resp.grpc_status,
        ) {
            // The request stays paused: Envoy times it out. Never let it through.
            self.host_error("send_local_response", status);
        }
        Action::Pause
    }

    /// Continue upstream with the thumbprint header set and the hand-off edits made. If the
    /// host refuses any of them, the request is refused: the upstream must never see a request
    /// without the header we vouch for (a token endpoint binds what it receives).
    fn allow(&mut self, plan: &Plan, reply: &ReplyContext, now: i64) -> Action {
        let name = &self.shared.cfg.forward_jkt_header;
        let mut edits: Vec<(&str, Result<(), u32>)> = Vec::new();
        if let Some(jkt) = &plan.jkt_header {
            edits.push((
                "replace_header_map_value",
                abi::replace_request_header(name, jkt),
            ));
        }
        if plan.edits.remove_dpop {
            edits.push((
                "remove_header_map_value",
                abi::remove_request_header("dpop"),
            ));
        }
        if let Some(value) = &plan.edits.authorization {
            edits.push((
                "replace_header_map_value",
                abi::replace_request_header("authorization", value),
            ));
        }
        if let Some((call, Err(status))) = edits.into_iter().find(|(_, r)| r.is_err()) {
            self.host_error(call, status);
            return self.send_reply(DenyReason::HostCallFailed, reply, now);
        }
        bump(self.shared.metrics.allowed);
        Action::Continue
    }

    fn host_error(&self, call: &str, status: u32) {
        bump(self.shared.metrics.host_errors);
        log::warn!("dpop_guard: host call {call} failed with status {status}");
    }

    /// What jwt_authn left in dynamic metadata. `Err` when the host fails to answer (not
    /// "absent": that would read as "no token").
    fn jwt_authn_view(&self) -> Result<JwtAuthnView, u32> {
        let at = &self.shared.cfg.access_token;
        let base = [
            "metadata",
            "filter_metadata",
            at.metadata_namespace.as_str(),
            at.payload_key.as_str(),
        ];
        let payload_present = abi::property(&base)?.is_some_and(|v| !v.is_empty());
        if !payload_present {
            return Ok(JwtAuthnView::default());
        }
        let mut path = base.to_vec();
        path.extend(["cnf", "jkt"]);
        // A jkt that is not UTF-8 still names a key — one no proof can match — never "unbound".
        let jkt = abi::property(&path)?
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(JwtAuthnView {
            payload_present,
            jkt,
        })
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, _: usize, _: usize) {
        let Stage::AwaitingReplay { token, key, reply } =
            std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return;
        };
        if token != token_id {
            // not our callout: keep waiting
            self.stage = Stage::AwaitingReplay { token, key, reply };
            return;
        }
        let status = abi::http_call_response_header(":status");
        if let Err(code) = &status {
            self.host_error("get_header_map_value", *code);
        }
        let answer = replay::remote_answer(status.ok().flatten().as_deref());
        if self.apply_replay(answer, key, &reply) == Action::Continue {
            if let Err(code) = abi::resume_request() {
                // The request would hang until Envoy's timeout: answer it now instead.
                self.host_error("continue_stream", code);
                self.send_reply(DenyReason::HostCallFailed, &reply, now_secs());
            }
        }
    }
}

impl Filter {
    /// The one place a replay store's answer becomes host actions.
    fn apply_replay(
        &mut self,
        answer: StoreAnswer,
        key: Option<ProofKey>,
        reply: &ReplyContext,
    ) -> Action {
        if answer == StoreAnswer::Unavailable {
            bump(self.shared.metrics.replay_errors);
        }
        let ending = match replay::verdict(answer, self.shared.cfg.replay.on_error()) {
            ReplayVerdict::Allow => Ending::Allow(key),
            ReplayVerdict::AllowUnchecked => {
                log::warn!(
                    "dpop_guard: replay check unavailable; allowed by replay.on_error = allow"
                );
                Ending::Allow(key)
            }
            ReplayVerdict::Deny(reason) => Ending::Deny { reason, key },
        };
        self.finish(ending, reply, now_secs())
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let mut probe = Probe::start();
        let action = self.request_headers(&mut probe);
        probe.finish();
        action
    }

    fn on_http_request_body(&mut self, _: usize, _: bool) -> Action {
        match self.stage {
            Stage::AwaitingReplay { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        match self.stage {
            Stage::AwaitingReplay { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }
}

impl Filter {
    fn request_headers(&mut self, probe: &mut Probe) -> Action {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let now = now_secs();
        // Read as bytes and parsed by our own code: no header value can panic the VM.
        let map = abi::request_header_map();
        let pairs = map.as_deref().ok().and_then(crate::headers::parse_map);
        let Some(pairs) = pairs else {
            self.host_error("get_header_map_pairs", map.err().unwrap_or(0));
            return self.send_reply(DenyReason::HostCallFailed, &ReplyContext::default(), now);
        };
        let h = crate::headers::gather(&pairs, &cfg.forward_jkt_header);
        probe.mark("get_headers");
        let mut reply = ReplyContext {
            instance: authn::path_only(h.path).to_owned(),
            request_id: h.request_id.map(str::to_owned),
            grpc: h.grpc,
            ..ReplyContext::default()
        };
        // Never trust a client-sent thumbprint, in any spelling (`x_dpop_jkt` reaches WSGI
        // apps as `x-dpop-jkt`), whatever the route or mode. The removal hostcall is only made
        // when there is something to remove.
        for name in &h.forged_jkt {
            if let Err(status) = abi::remove_request_header(name) {
                self.host_error("remove_header_map_value", status);
                return self.send_reply(DenyReason::HostCallFailed, &reply, now);
            }
        }
        if !cfg.enabled {
            return self.finish(Ending::Pass, &reply, now);
        }
        let jwt_view = if cfg.access_token.verify == VerifyMode::JwtAuthn {
            match self.jwt_authn_view() {
                Ok(v) => Some(v),
                Err(status) => {
                    self.host_error("get_property", status);
                    return self.send_reply(DenyReason::HostCallFailed, &reply, now);
                }
            }
        } else {
            None
        };
        probe.mark("facts");
        // A VM is single-threaded and nothing re-enters here, so the borrow always succeeds;
        // if it ever did not, deciding without the cache is still correct.
        let checked = match shared.key_cache.try_borrow_mut() {
            Ok(mut cache) => authn::check_gathered(cfg, &h, jwt_view.as_ref(), now, &mut cache),
            Err(_) => {
                authn::check_gathered(cfg, &h, jwt_view.as_ref(), now, &mut KeyCache::disabled())
            }
        };
        probe.mark("decide");
        reply.shadow = checked.shadow;
        match checked.decision {
            Decision::Pass => self.finish(Ending::Pass, &reply, now),
            Decision::Deny(reason) => self.finish(Ending::Deny { reason, key: None }, &reply, now),
            Decision::Allow {
                jkt,
                alg,
                replay_key,
                replay_ttl,
            } => {
                let key = jkt.zip(alg).map(|(jkt, alg)| ProofKey { jkt, alg });
                reply.allow_edits = outcome::allow_edits(cfg, key.is_some(), &h.authorization);
                let action = match replay_key {
                    None => self.finish(Ending::Allow(key), &reply, now),
                    Some(replay_key) => self.check_replay(key, &replay_key, replay_ttl, reply, now),
                };
                probe.mark("replay+allow");
                action
            }
        }
    }
}

impl Filter {
    /// Records the proof's replay key in the configured store; a remote check pauses the
    /// request until [`Context::on_http_call_response`].
    fn check_replay(
        &mut self,
        proof_key: Option<ProofKey>,
        key: &str,
        ttl: i64,
        reply: ReplyContext,
        now: i64,
    ) -> Action {
        let shared = self.shared.clone();
        let answer = match (&shared.cfg.replay, &shared.local) {
            (ReplayConfig::Off, _) => StoreAnswer::Fresh,
            (ReplayConfig::Local { .. }, Some(store)) => {
                let result = store.check_and_insert(&HostKv, key, now, ttl);
                if let Err(e) = result {
                    log::warn!("dpop_guard: local replay store error: {e:?}");
                }
                StoreAnswer::from(result)
            }
            (ReplayConfig::Local { .. }, None) => StoreAnswer::Unavailable,
            (
                ReplayConfig::Remote {
                    cluster,
                    authority,
                    path,
                    timeout_ms,
                    ..
                },
                _,
            ) => {
                let body = replay::remote_request_body(key, ttl);
                let len = body.len().to_string();
                let headers = vec![
                    (":method", "POST"),
                    (":path", path.as_str()),
                    (":authority", authority.as_str()),
                    ("content-type", "application/json"),
                    ("content-length", len.as_str()),
                ];
                match self.dispatch_http_call(
                    cluster,
                    headers,
                    Some(body.as_bytes()),
                    vec![],
                    Duration::from_millis(u64::from(*timeout_ms)),
                ) {
                    Ok(token) => {
                        self.stage = Stage::AwaitingReplay {
                            token,
                            key: proof_key,
                            reply,
                        };
                        return Action::Pause;
                    }
                    Err(e) => {
                        log::warn!("dpop_guard: replay callout to cluster {cluster} failed: {e:?}");
                        StoreAnswer::Unavailable
                    }
                }
            }
        };
        self.apply_replay(answer, proof_key, &reply)
    }
}

/// Publishes the plan's filter state (`wasm.dpop_guard.*`).
fn publish(plan: &Plan) -> Result<(), u32> {
    for (name, value) in plan.state() {
        abi::set_property(name, value.as_bytes())?;
    }
    Ok(())
}
