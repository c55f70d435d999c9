//! proxy-wasm glue: the only module that talks to the host. It gathers request facts, calls the
//! pure decision code, and applies the result (local reply, replay check, headers, stats).

use crate::authn::{self, Decision, JwtAuthnView, Request};
use crate::config::{Config, OnError, ReplayConfig, VerifyMode};
use crate::problem::{self, ProblemContext};
use crate::proof::KeyCache;
use crate::reason::DenyReason;
use crate::replay::{Insert, LocalReplayStore, SharedKv, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

mod profile;
use profile::Probe;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

fn now_secs() -> i64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// Counter ids (SPEC §7). Names are fixed; Envoy exports them under `wasmcustom.`.
struct Metrics {
    allowed: u32,
    denied: u32,
    per_reason: Vec<u32>,
    replay_detected: u32,
    replay_errors: u32,
    replay_local_full: u32,
}

fn counter(name: &str) -> u32 {
    hostcalls::define_metric(MetricType::Counter, name).unwrap_or(0)
}

fn bump(id: u32) {
    if id != 0 {
        let _ = hostcalls::increment_metric(id, 1);
    }
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
        }
    }

    fn denied(&self, reason: DenyReason) {
        bump(self.denied);
        if let Some(i) = DenyReason::ALL.iter().position(|r| *r == reason) {
            bump(self.per_reason.get(i).copied().unwrap_or(0));
        }
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
        match hostcalls::get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Ok(Some((v, cas))),
            Ok((None, Some(cas))) => Ok(Some((Vec::new(), cas))),
            Ok((_, None)) => Ok(None),
            Err(_) => Err(StoreError::Host),
        }
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(true),
            Err(Status::CasMismatch) => Ok(false),
            Err(_) => Err(StoreError::Host),
        }
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
        log(LogLevel::Info, &format!("dpop_guard {VERSION} starting"));
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let cfg = match Config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("dpop_guard: invalid configuration: {e}"),
                );
                return false;
            }
        };
        let local = match cfg.replay {
            ReplayConfig::Local { capacity } => {
                let store = LocalReplayStore::new(capacity);
                if let Err(e) = store.init(&HostKv) {
                    log(
                        LogLevel::Error,
                        &format!("dpop_guard: cannot initialise the local replay store: {e:?}"),
                    );
                    return false;
                }
                Some(store)
            }
            ReplayConfig::Off => {
                log(LogLevel::Warn, "dpop_guard: replay.store = \"off\": proofs can be replayed within their lifetime");
                None
            }
            ReplayConfig::Remote { .. } => None,
        };
        let replay = match &cfg.replay {
            ReplayConfig::Local { capacity } => format!("local(capacity={capacity})"),
            ReplayConfig::Remote {
                cluster, on_error, ..
            } => format!("remote(cluster={cluster}, on_error={on_error:?})"),
            ReplayConfig::Off => "off".to_owned(),
        };
        log(
            LogLevel::Info,
            &format!(
                "dpop_guard configured: enabled={} required={} algorithms=\"{}\" access_token.verify={:?} replay={replay}",
                cfg.enabled,
                cfg.required,
                cfg.proof.algorithms.names(),
                cfg.access_token.verify
            ),
        );
        // The Ed25519 base-point table (≈ 480 KiB per VM, a few ms): built here rather than
        // inside the first request.
        crate::jose::ed25519_fast::warm_up();
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

/// Where a request is in the pipeline.
enum Stage {
    Start,
    /// Waiting for the dpop-replay service; the callout is matched by its token.
    AwaitingReplay {
        token: u32,
        jkt: Option<String>,
        instance: String,
        request_id: Option<String>,
    },
    Done,
}

struct Filter {
    shared: Rc<Shared>,
    stage: Stage,
}

impl Filter {
    fn deny(&mut self, reason: DenyReason, instance: &str, request_id: Option<&str>, now: i64) {
        let cfg = &self.shared.cfg;
        self.shared.metrics.denied(reason);
        let nonce = match (reason, &cfg.nonce) {
            (DenyReason::NonceMissing | DenyReason::NonceInvalid, Some(n)) => {
                Some(crate::nonce::current(n, now))
            }
            _ => None,
        };
        let ctx = ProblemContext {
            instance,
            request_id,
            now,
            nonce: nonce.as_deref(),
        };
        let resp = problem::build(cfg, reason, &ctx);
        log(
            LogLevel::Debug,
            &format!(
                "dpop_guard: denied {} ({})",
                reason.stat_name(),
                resp.status
            ),
        );
        let headers: Vec<(&str, &str)> =
            resp.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.send_http_response(resp.status, headers, Some(resp.body.as_bytes()));
        self.stage = Stage::Done;
    }

    fn allow(&mut self, jkt: Option<&str>) {
        if let Some(jkt) = jkt {
            let name = self.shared.cfg.forward_jkt_header.clone();
            self.set_http_request_header(&name, Some(jkt));
        }
        bump(self.shared.metrics.allowed);
        self.stage = Stage::Done;
    }

    fn jwt_authn_view(&self) -> JwtAuthnView {
        let at = &self.shared.cfg.access_token;
        let base = [
            "metadata",
            "filter_metadata",
            at.metadata_namespace.as_str(),
            at.payload_key.as_str(),
        ];
        let payload_present = self
            .get_property(base.to_vec())
            .is_some_and(|v| !v.is_empty());
        let mut path = base.to_vec();
        path.extend(["cnf", "jkt"]);
        let jkt = self
            .get_property(path)
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|s| !s.is_empty());
        JwtAuthnView {
            payload_present,
            jkt,
        }
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, _: usize, _: usize) {
        let Stage::AwaitingReplay {
            token,
            jkt,
            instance,
            request_id,
        } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return;
        };
        if token != token_id {
            // not our callout: keep waiting
            self.stage = Stage::AwaitingReplay {
                token,
                jkt,
                instance,
                request_id,
            };
            return;
        }
        let status = self.get_http_call_response_header(":status");
        match status.as_deref() {
            Some("201") => {
                self.allow(jkt.as_deref());
                self.resume_http_request();
            }
            Some("409") => self.deny(
                DenyReason::ProofReplayed,
                &instance,
                request_id.as_deref(),
                now_secs(),
            ),
            _ => {
                self.replay_unavailable(jkt, &instance, request_id.as_deref(), true);
            }
        }
    }
}

impl Filter {
    /// The remote store could not answer (error status, timeout, dispatch failure):
    /// `replay.on_error` decides. `resume` when the request is paused waiting for us.
    fn replay_unavailable(
        &mut self,
        jkt: Option<String>,
        instance: &str,
        request_id: Option<&str>,
        resume: bool,
    ) -> Action {
        bump(self.shared.metrics.replay_errors);
        let on_error = match &self.shared.cfg.replay {
            ReplayConfig::Remote { on_error, .. } => *on_error,
            _ => OnError::Deny,
        };
        match on_error {
            OnError::Allow => {
                log(
                    LogLevel::Warn,
                    "dpop_guard: replay check unavailable; allowed by replay.on_error = allow",
                );
                self.allow(jkt.as_deref());
                if resume {
                    self.resume_http_request();
                }
                Action::Continue
            }
            OnError::Deny => {
                self.deny(
                    DenyReason::ReplayCheckFailed,
                    instance,
                    request_id,
                    now_secs(),
                );
                Action::Pause
            }
        }
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
        let headers = self.get_http_request_headers();
        probe.mark("get_headers");
        // Never trust a client-sent thumbprint, whatever the route or mode. (Envoy hands
        // header names over lowercased, as the configured name is; the removal hostcall is
        // only made when there is something to remove.)
        if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(&cfg.forward_jkt_header))
        {
            self.set_http_request_header(&cfg.forward_jkt_header, None);
        }
        if !cfg.enabled {
            self.stage = Stage::Done;
            return Action::Continue;
        }
        let mut method = "";
        let mut path = "/";
        let mut request_id = None;
        let (mut scheme, mut authority, mut forwarded_proto) = (None, "", None);
        let mut dpop: Vec<&str> = Vec::new();
        let mut authorization: Vec<&str> = Vec::new();
        for (k, v) in &headers {
            match k.as_str() {
                ":method" => method = v,
                ":path" => path = v,
                ":scheme" => scheme = Some(v.as_str()),
                ":authority" => authority = v,
                "x-forwarded-proto" if forwarded_proto.is_none() => {
                    forwarded_proto = Some(v.as_str())
                }
                "x-request-id" => request_id = Some(v.as_str()),
                "dpop" => dpop.push(v),
                "authorization" => authorization.push(v),
                _ => {}
            }
        }
        let now = now_secs();
        let path_no_query = authn::path_only(path);
        // every fact comes from the one header read above: no further hostcalls
        let uri = authn::target_uri(cfg, scheme, forwarded_proto, authority, path_no_query);
        let jwt_view =
            (cfg.access_token.verify == VerifyMode::JwtAuthn).then(|| self.jwt_authn_view());
        let req = Request {
            method,
            path,
            uri: &uri,
            dpop: &dpop,
            authorization: &authorization,
            jwt_authn: jwt_view.as_ref(),
            now,
        };
        let instance = path_no_query.to_owned();
        let request_id = request_id.map(str::to_owned);
        // A VM is single-threaded and nothing re-enters here, so the borrow always succeeds;
        // if it ever did not, deciding without the cache is still correct.
        probe.mark("facts");
        let decision = match shared.key_cache.try_borrow_mut() {
            Ok(mut cache) => authn::decide_cached(cfg, &req, &mut cache),
            Err(_) => authn::decide(cfg, &req),
        };
        probe.mark("decide");
        match decision {
            Decision::Pass => {
                self.stage = Stage::Done;
                Action::Continue
            }
            Decision::Deny(reason) => {
                self.deny(reason, &instance, request_id.as_deref(), now);
                Action::Pause
            }
            Decision::Allow {
                jkt,
                replay_key: None,
            } => {
                self.allow(jkt.as_deref());
                Action::Continue
            }
            Decision::Allow {
                jkt,
                replay_key: Some(key),
            } => {
                let action = self.check_replay(jkt, &key, &instance, request_id, now);
                probe.mark("replay+allow");
                action
            }
        }
    }
}

impl Filter {
    fn check_replay(
        &mut self,
        jkt: Option<String>,
        key: &str,
        instance: &str,
        request_id: Option<String>,
        now: i64,
    ) -> Action {
        let shared = self.shared.clone();
        let ttl = shared.cfg.replay_ttl();
        match &shared.cfg.replay {
            ReplayConfig::Off => {
                self.allow(jkt.as_deref());
                Action::Continue
            }
            ReplayConfig::Local { .. } => {
                let Some(store) = &shared.local else {
                    self.deny(
                        DenyReason::ReplayCheckFailed,
                        instance,
                        request_id.as_deref(),
                        now,
                    );
                    return Action::Pause;
                };
                match store.check_and_insert(&HostKv, key, now, ttl) {
                    Ok(Insert::Fresh) => {
                        self.allow(jkt.as_deref());
                        Action::Continue
                    }
                    Ok(Insert::Replayed) => {
                        self.deny(
                            DenyReason::ProofReplayed,
                            instance,
                            request_id.as_deref(),
                            now,
                        );
                        Action::Pause
                    }
                    Ok(Insert::Full) => {
                        self.deny(
                            DenyReason::ReplayStoreFull,
                            instance,
                            request_id.as_deref(),
                            now,
                        );
                        Action::Pause
                    }
                    Err(e) => {
                        log(
                            LogLevel::Warn,
                            &format!("dpop_guard: local replay store error: {e:?}"),
                        );
                        bump(shared.metrics.replay_errors);
                        self.deny(
                            DenyReason::ReplayCheckFailed,
                            instance,
                            request_id.as_deref(),
                            now,
                        );
                        Action::Pause
                    }
                }
            }
            ReplayConfig::Remote {
                cluster,
                authority,
                path,
                timeout_ms,
                ..
            } => {
                let body = format!("{{\"key\":\"{key}\",\"ttl\":{ttl}}}");
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
                            jkt,
                            instance: instance.to_owned(),
                            request_id,
                        };
                        Action::Pause
                    }
                    Err(e) => {
                        log(
                            LogLevel::Warn,
                            &format!(
                                "dpop_guard: replay callout to cluster {cluster} failed: {e:?}"
                            ),
                        );
                        self.replay_unavailable(jkt, instance, request_id.as_deref(), false)
                    }
                }
            }
        }
    }
}
