//! [`HostState`]: everything the guest can read (configurations, clocks, properties, shared
//! data, the streams) and everything it did (logs, host calls, callouts, metrics), with its
//! defaults and the accessors tests use; [`Stream`], the state of one HTTP stream.

use super::callouts::{CalloutResponse, HttpCall};
use super::fault::Fault;
use super::foreign::VerifySignature;
use super::general::LogEntry;
use super::grpc::GrpcStream;
use super::headers::{HeaderMap, HeaderOp};
use super::imports::CallRecord;
use super::metrics::Metric;
use super::stream::LocalResponse;
use crate::abi::{self, status};
use std::collections::BTreeMap;
use wasmi::{Func, Memory};

/// Per-HTTP-stream state (one per context id).
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub request_headers: HeaderMap,
    pub request_trailers: HeaderMap,
    pub response_headers: HeaderMap,
    pub response_trailers: HeaderMap,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub local_response: Option<LocalResponse>,
    /// `proxy_continue_stream` stream types, in order.
    pub continued: Vec<u32>,
    /// `proxy_close_stream` stream types, in order.
    pub closed: Vec<u32>,
    pub header_ops: Vec<HeaderOp>,
    /// Tokens of the HTTP calls dispatched from this stream still waiting for a response.
    pub pending_calls: Vec<u32>,
    /// `proxy_set_property` calls.
    pub properties_set: Vec<(Vec<u8>, Vec<u8>)>,
    pub route_cache_cleared: bool,
}

/// All host state: what the guest can read, what it did.
#[derive(Debug, Clone)]
pub struct HostState {
    pub vm_configuration: Vec<u8>,
    pub plugin_configuration: Vec<u8>,
    /// `proxy_get_current_time_nanoseconds` and WASI realtime clock.
    pub now_nanos: u64,
    pub monotonic_nanos: u64,
    pub log_level: u32,
    /// `proxy_get_property`: path segments → value (missing → NotFound).
    pub properties: BTreeMap<Vec<Vec<u8>>, Vec<u8>>,
    /// Shared data: key → (value, cas).
    pub shared_data: BTreeMap<Vec<u8>, (Vec<u8>, u32)>,
    pub(crate) next_cas: u32,
    /// Shared queues: token → (name, items).
    pub queues: BTreeMap<u32, (Vec<u8>, Vec<Vec<u8>>)>,
    /// The context that registered each queue (it gets `proxy_on_queue_ready`).
    pub queue_owners: BTreeMap<u32, u32>,
    /// Queue tokens enqueued to and not yet announced with `proxy_on_queue_ready`, in order
    /// (Envoy posts one notification per enqueue to the registrant's thread).
    pub queue_ready: Vec<u32>,
    /// Metric id → definition; values by name.
    pub metric_defs: BTreeMap<u32, Metric>,
    pub metric_values: BTreeMap<String, u64>,
    pub(crate) next_metric_id: [u32; 3],
    pub logs: Vec<LogEntry>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub faults: Vec<Fault>,
    pub(crate) fault_hits: Vec<usize>,
    pub calls: Vec<CallRecord>,
    pub streams: BTreeMap<u32, Stream>,
    pub http_calls: Vec<HttpCall>,
    /// Status `proxy_http_call` returns (Envoy: BadArgument for an unknown cluster).
    pub http_call_status: u32,
    /// How the foreign function `verify_signature` answers (default: like Envoy).
    pub verify_signature: VerifySignature,
    pub(crate) next_token: u32,
    pub callout_response: Option<CalloutResponse>,
    /// gRPC streams the guest opened, in order (cancelled and closed ones included).
    pub grpc_streams: Vec<GrpcStream>,
    /// When set, `proxy_grpc_stream` answers this and opens nothing (a host without gRPC
    /// streams: e.g. BadArgument or Unimplemented).
    pub grpc_stream_status: Option<u32>,
    /// The clusters `proxy_grpc_stream` knows (`None`: every non-empty name without control
    /// bytes).
    pub grpc_clusters: Option<Vec<Vec<u8>>>,
    /// The message being delivered by `proxy_on_grpc_receive` (buffer GrpcReceiveBuffer).
    pub grpc_receive: Option<Vec<u8>>,
    pub tick_period_ms: Option<u32>,
    pub done_called: u32,
    /// The context the host is calling into, and the one set by `proxy_set_effective_context`.
    pub current_context: u32,
    pub effective_context: u32,
    /// Root context ids (one per plugin configuration in this VM).
    pub root_contexts: Vec<u32>,
    pub(crate) rng: u64,
    pub(crate) memory: Option<Memory>,
    pub(crate) alloc: Option<Func>,
}

impl Default for HostState {
    fn default() -> Self {
        HostState {
            vm_configuration: Vec::new(),
            plugin_configuration: Vec::new(),
            now_nanos: 1_700_000_000_000_000_000,
            monotonic_nanos: 1_000_000_000,
            log_level: abi::log_level::INFO,
            properties: BTreeMap::new(),
            shared_data: BTreeMap::new(),
            next_cas: 1,
            queues: BTreeMap::new(),
            queue_owners: BTreeMap::new(),
            queue_ready: Vec::new(),
            metric_defs: BTreeMap::new(),
            metric_values: BTreeMap::new(),
            next_metric_id: [0, 1, 2],
            logs: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            faults: Vec::new(),
            fault_hits: Vec::new(),
            calls: Vec::new(),
            streams: BTreeMap::new(),
            http_calls: Vec::new(),
            http_call_status: status::OK,
            verify_signature: VerifySignature::Envoy,
            next_token: 1,
            callout_response: None,
            grpc_streams: Vec::new(),
            grpc_stream_status: None,
            grpc_clusters: None,
            grpc_receive: None,
            tick_period_ms: None,
            done_called: 0,
            current_context: 0,
            effective_context: 0,
            root_contexts: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
            memory: None,
            alloc: None,
        }
    }
}

impl HostState {
    /// Default state with this plugin configuration.
    pub fn new(plugin_configuration: &[u8]) -> HostState {
        HostState {
            plugin_configuration: plugin_configuration.to_vec(),
            ..HostState::default()
        }
    }

    pub fn stream(&self, ctx: u32) -> Option<&Stream> {
        self.streams.get(&ctx)
    }

    /// Logs and stderr/stdout as text (for failure messages).
    pub fn transcript(&self) -> String {
        let mut s = String::new();
        for l in &self.logs {
            s.push_str(&format!(
                "[log {} ctx {}] {}\n",
                l.level, l.context, l.message
            ));
        }
        if !self.stderr.is_empty() {
            s.push_str(&format!(
                "[stderr] {}\n",
                String::from_utf8_lossy(&self.stderr)
            ));
        }
        if !self.stdout.is_empty() {
            s.push_str(&format!(
                "[stdout] {}\n",
                String::from_utf8_lossy(&self.stdout)
            ));
        }
        s
    }

    /// The context a host call acts on: the effective context when it names a live context,
    /// else the one the host called into.
    pub(super) fn active_context(&self) -> u32 {
        if self.effective_context != 0
            && (self.streams.contains_key(&self.effective_context)
                || self.root_contexts.contains(&self.effective_context))
        {
            self.effective_context
        } else {
            self.current_context
        }
    }
}
