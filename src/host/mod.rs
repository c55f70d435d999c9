//! proxy-wasm glue: the only module that talks to the host. It gathers request facts, calls the
//! pure decision code, and applies the result (local reply, replay check, headers, stats).

use crate::config::{Config, ReplayConfig, ReplayTransport};
use crate::introspection::TokenCache;
use crate::jwks::RemoteJwks;
use crate::proof::KeyCache;
use crate::replay::LocalReplayStore;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::rc::Rc;

mod abi;
mod coalesce;
mod crypto;
mod filter;
mod introspection;
mod jwks;
mod metrics;
mod profile;
mod replay;
mod stream;
use filter::{Filter, Stage};
use metrics::Metrics;
use replay::HostKv;

proxy_wasm::main! {{
    abi::init_logging();
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
        Box::new(Root {
            id,
            ..Root::default()
        })
    });
}}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Validated proof headers kept per VM (DPoP clients reuse one key).
const KEY_CACHE_ENTRIES: usize = 256;

/// Everything an HTTP context needs, built once per configuration.
struct Shared {
    cfg: Config,
    metrics: Metrics,
    local: Option<LocalReplayStore>,
    /// Made for `cfg` (its algorithm allow-list): a new configuration gets a new cache.
    key_cache: RefCell<KeyCache>,
    /// Introspection answers by token hash (`introspection` mode; empty otherwise).
    token_cache: RefCell<TokenCache>,
    /// Keys fetched from `access_token.jwks_uri` (empty otherwise).
    remote_jwks: RefCell<RemoteJwks>,
    /// Remote replay checks are coalesced ([`coalesce`]).
    batching: bool,
    /// Introspection callouts are single-flight per worker ([`coalesce`]).
    single_flight: bool,
    /// `replay.transport = "grpc"`: the stream's serialized target, made once here rather
    /// than per check ([`stream`]).
    replay_target: Option<String>,
}

#[derive(Default)]
struct Root {
    /// This root context's id (replay batches are its callouts).
    id: u32,
    shared: Option<Rc<Shared>>,
    /// The JWKS fetch in flight (its callout token).
    jwks_call: Option<u32>,
}

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
        let shared_jwks_uri = cfg.access_token.jwks_uri.clone();
        let shared_replay_timeout = match &cfg.replay {
            ReplayConfig::Remote { timeout_ms, .. } => Some(*timeout_ms),
            _ => None,
        };
        // the gRPC transport always goes through the root context (it owns the stream)
        let grpc = matches!(
            cfg.replay,
            ReplayConfig::Remote {
                transport: ReplayTransport::Grpc,
                ..
            }
        );
        let batching = matches!(cfg.replay, ReplayConfig::Remote { max_batch, .. } if max_batch > 1 || grpc)
            && coalesce::register(self.id);
        if grpc && !batching {
            log::error!("dpop_guard: replay.transport = \"grpc\" needs shared queues, which this host does not offer; use \"http\"");
            return false;
        }
        if grpc && !abi::grpc_streams_supported() {
            log::error!("dpop_guard: replay.transport = \"grpc\": this host cannot open gRPC streams; use \"http\"");
            return false;
        }
        let single_flight = cfg.access_token.introspection.is_some() && coalesce::register(self.id);
        let cfg_introspection_entries = cfg
            .access_token
            .introspection
            .as_ref()
            .map_or(0, |i| i.cache_entries);
        // The Ed25519 base-point table (≈ 480 KiB per VM, a few ms): built here rather than
        // inside the first request.
        crate::jose::warm_up();
        crypto::configure(cfg.crypto);
        let replay_target = match &cfg.replay {
            ReplayConfig::Remote {
                cluster, authority, ..
            } if grpc => Some(crate::replay::grpc_service_target(cluster, authority)),
            _ => None,
        };
        self.shared = Some(Rc::new(Shared {
            cfg,
            metrics: Metrics::define(),
            local,
            key_cache: RefCell::new(KeyCache::new(KEY_CACHE_ENTRIES)),
            token_cache: RefCell::new(TokenCache::new(cfg_introspection_entries)),
            remote_jwks: RefCell::new(RemoteJwks::default()),
            batching,
            single_flight,
            replay_target,
        }));
        if batching || single_flight || shared_jwks_uri.is_some() {
            // JWKS: the first fetch goes out on the first tick; until one succeeds, requests
            // that need a remote key get token-check-unavailable. Batching: a safety net. The
            // gRPC transport: its messages time out on the tick (timeout_ms + a quarter of it).
            let period = match &shared_replay_timeout {
                Some(ms) if grpc => (ms / 4).clamp(10, 1000),
                _ => 1000,
            };
            if let Err(status) = abi::set_tick_period(period) {
                log::error!("dpop_guard: cannot set a tick period (host status {status})");
                return false;
            }
        }
        true
    }

    fn on_tick(&mut self) {
        self.jwks_tick();
        self.stream_tick();
        // A safety net for replay batching: a lost wake-up delays a batch by a tick at most.
        self.pump();
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        self.on_batch_wakeup(queue_id);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Filter {
            shared,
            stage: Stage::Start,
            response_nonce: None,
            ctx: context_id,
            root: self.id,
            batched: false,
            lone: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
