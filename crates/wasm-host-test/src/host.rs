//! The host side of the proxy-wasm ABI 0.2.1 (and the WASI calls a Rust module makes), with
//! Envoy's semantics (proxy-wasm-cpp-host `exports.cc` + Envoy's `Context`) where they matter:
//! `copyToPointerSize` (an empty value is pointer 0, size 0), lower-cased header names on
//! lookup/add/replace/remove, the first value for `get_header_map_value`, replace = remove all +
//! add, shared-data CAS ignored for a missing key, counter ids 4, 8, 12, …
//!
//! Everything the guest does is recorded in [`HostState`]; every call can be made to fail with a
//! chosen status ([`Fault`]).

use crate::abi::{self, errno, status, Pairs};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmi::{Caller, Func, Memory, Val};

/// A call the guest made into the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// `env.proxy_log`, `wasi_snapshot_preview1.fd_write`, …
    pub name: Arc<str>,
    /// The context the call was made in (after `proxy_set_effective_context`).
    pub context: u32,
    /// The status/errno returned (None for calls without a result).
    pub status: Option<u32>,
    /// The status was a [`Fault`], not the emulated behaviour.
    pub injected: bool,
    /// Not implemented by this host (the guest got `Unimplemented`/`ENOSYS`).
    pub unimplemented: bool,
}

/// Make a host call fail: the `skip` first matching calls behave normally, then `times` calls
/// (forever when `None`) return `status` without doing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Import name without module (`proxy_get_header_map_pairs`, `fd_write`, …).
    pub function: String,
    pub status: u32,
    pub skip: usize,
    pub times: Option<usize>,
}

impl Fault {
    pub fn always(function: &str, status: u32) -> Fault {
        Fault {
            function: function.to_owned(),
            status,
            skip: 0,
            times: None,
        }
    }
    /// Only the `n`-th (0-based) call of `function` fails.
    pub fn nth(function: &str, n: usize, status: u32) -> Fault {
        Fault {
            function: function.to_owned(),
            status,
            skip: n,
            times: Some(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: u32,
    pub message: String,
    pub context: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub details: Vec<u8>,
    pub body: Vec<u8>,
    /// Additional response headers as the guest serialized them; `None` when the bytes were not
    /// a valid map (a guest bug; Envoy would send no extra header).
    pub headers: Option<Pairs>,
    pub grpc_status: i32,
}

impl LocalResponse {
    /// The first header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .as_ref()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    /// The context that dispatched it.
    pub context: u32,
    pub cluster: Vec<u8>,
    pub headers: Option<Pairs>,
    pub body: Vec<u8>,
    pub trailers: Option<Pairs>,
    pub timeout_ms: u32,
}

/// A header-map mutation the guest made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    Add {
        map: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    Replace {
        map: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        map: u32,
        name: Vec<u8>,
    },
    SetPairs {
        map: u32,
        pairs: Option<Pairs>,
    },
}

/// One header map of a stream. `raw`, when set, is handed to the guest verbatim by
/// `proxy_get_header_map_pairs` instead of the serialization of `pairs` (malformed-map tests);
/// every other call works on `pairs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pub pairs: Pairs,
    pub raw: Option<Vec<u8>>,
}

impl HeaderMap {
    pub fn from_pairs(pairs: Pairs) -> HeaderMap {
        HeaderMap { pairs, raw: None }
    }
    /// All values of `name` (ASCII case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn get_first(&self, lower_name: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(lower_name))
            .map(|(_, v)| v.as_slice())
    }
    fn remove(&mut self, lower_name: &[u8]) {
        self.pairs
            .retain(|(k, _)| !k.eq_ignore_ascii_case(lower_name));
        self.raw = None;
    }
    fn add(&mut self, lower_name: Vec<u8>, value: Vec<u8>) {
        self.pairs.push((lower_name, value));
        self.raw = None;
    }
}

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

/// The response to an HTTP callout, while `proxy_on_http_call_response` runs.
#[derive(Debug, Clone, Default)]
pub struct CalloutResponse {
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub kind: u32,
    pub name: String,
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
    pub(crate) next_token: u32,
    pub callout_response: Option<CalloutResponse>,
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
            next_token: 1,
            callout_response: None,
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

    /// A property, path given as segments.
    pub fn set_property(&mut self, path: &[&[u8]], value: &[u8]) {
        self.properties
            .insert(path.iter().map(|s| s.to_vec()).collect(), value.to_vec());
    }

    pub fn set_faults(&mut self, faults: Vec<Fault>) {
        self.fault_hits = vec![0; faults.len()];
        self.faults = faults;
    }

    pub fn clear_faults(&mut self) {
        self.set_faults(Vec::new());
    }

    /// A counter or gauge by name (0 when never incremented).
    pub fn metric(&self, name: &str) -> u64 {
        self.metric_values.get(name).copied().unwrap_or(0)
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

    fn active_context(&self) -> u32 {
        if self.effective_context != 0
            && (self.streams.contains_key(&self.effective_context)
                || self.root_contexts.contains(&self.effective_context))
        {
            self.effective_context
        } else {
            self.current_context
        }
    }

    fn take_fault(&mut self, function: &str) -> Option<u32> {
        if self.fault_hits.len() != self.faults.len() {
            self.fault_hits = vec![0; self.faults.len()];
        }
        for (f, hits) in self.faults.iter().zip(self.fault_hits.iter_mut()) {
            if f.function != function {
                continue;
            }
            let n = *hits;
            *hits += 1;
            let active = n >= f.skip && f.times.is_none_or(|t| n < f.skip + t);
            if active {
                return Some(f.status);
            }
        }
        None
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic "random" bytes for random_get
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn map_mut(&mut self, map: u32) -> Option<&mut HeaderMap> {
        use abi::map_type as M;
        let ctx = self.active_context();
        let s = self.streams.get_mut(&ctx)?;
        match map {
            M::HTTP_REQUEST_HEADERS => Some(&mut s.request_headers),
            M::HTTP_REQUEST_TRAILERS => Some(&mut s.request_trailers),
            M::HTTP_RESPONSE_HEADERS => Some(&mut s.response_headers),
            M::HTTP_RESPONSE_TRAILERS => Some(&mut s.response_trailers),
            _ => None,
        }
    }

    /// The map for reading; callout maps only while a callout response is delivered.
    fn map(&self, map: u32) -> Option<HeaderMap> {
        use abi::map_type as M;
        match map {
            M::HTTP_CALL_RESPONSE_HEADERS => self
                .callout_response
                .as_ref()
                .map(|r| HeaderMap::from_pairs(r.headers.clone())),
            M::HTTP_CALL_RESPONSE_TRAILERS => self
                .callout_response
                .as_ref()
                .map(|r| HeaderMap::from_pairs(r.trailers.clone())),
            _ => {
                let s = self.streams.get(&self.active_context())?;
                match map {
                    M::HTTP_REQUEST_HEADERS => Some(s.request_headers.clone()),
                    M::HTTP_REQUEST_TRAILERS => Some(s.request_trailers.clone()),
                    M::HTTP_RESPONSE_HEADERS => Some(s.response_headers.clone()),
                    M::HTTP_RESPONSE_TRAILERS => Some(s.response_trailers.clone()),
                    _ => None,
                }
            }
        }
    }

    fn buffer(&self, kind: u32) -> Option<Vec<u8>> {
        use abi::buffer_type as B;
        match kind {
            B::VM_CONFIGURATION => Some(self.vm_configuration.clone()),
            B::PLUGIN_CONFIGURATION => Some(self.plugin_configuration.clone()),
            B::HTTP_CALL_RESPONSE_BODY => self.callout_response.as_ref().map(|r| r.body.clone()),
            B::HTTP_REQUEST_BODY => self
                .streams
                .get(&self.active_context())
                .map(|s| s.request_body.clone()),
            B::HTTP_RESPONSE_BODY => self
                .streams
                .get(&self.active_context())
                .map(|s| s.response_body.clone()),
            _ => None,
        }
    }
}

// ---- import table ------------------------------------------------------------------------------

/// One import of the module and how the host answers it.
#[derive(Debug, Clone)]
pub(crate) struct ImportSpec {
    pub full_name: Arc<str>,
    pub name: Arc<str>,
    /// Implemented here with a matching signature.
    pub known: bool,
    pub wasi: bool,
    /// The single result type, if any.
    pub result: Option<wasmi::ValType>,
}

/// Signatures this host implements: `i` = i32, `I` = i64; params `:` results.
const KNOWN: &[(&str, &str, &str)] = &[
    ("env", "proxy_log", "iii:i"),
    ("env", "proxy_get_log_level", "i:i"),
    ("env", "proxy_get_current_time_nanoseconds", "i:i"),
    ("env", "proxy_set_tick_period_milliseconds", "i:i"),
    ("env", "proxy_get_buffer_bytes", "iiiii:i"),
    ("env", "proxy_get_buffer_status", "iii:i"),
    ("env", "proxy_set_buffer_bytes", "iiiii:i"),
    ("env", "proxy_get_header_map_pairs", "iii:i"),
    ("env", "proxy_set_header_map_pairs", "iii:i"),
    ("env", "proxy_get_header_map_size", "ii:i"),
    ("env", "proxy_get_header_map_value", "iiiii:i"),
    ("env", "proxy_add_header_map_value", "iiiii:i"),
    ("env", "proxy_replace_header_map_value", "iiiii:i"),
    ("env", "proxy_remove_header_map_value", "iii:i"),
    ("env", "proxy_get_property", "iiii:i"),
    ("env", "proxy_set_property", "iiii:i"),
    ("env", "proxy_get_shared_data", "iiiii:i"),
    ("env", "proxy_set_shared_data", "iiiii:i"),
    ("env", "proxy_register_shared_queue", "iii:i"),
    ("env", "proxy_resolve_shared_queue", "iiiii:i"),
    ("env", "proxy_dequeue_shared_queue", "iii:i"),
    ("env", "proxy_enqueue_shared_queue", "iii:i"),
    ("env", "proxy_continue_stream", "i:i"),
    ("env", "proxy_close_stream", "i:i"),
    ("env", "proxy_continue_request", ":i"),
    ("env", "proxy_continue_response", ":i"),
    ("env", "proxy_clear_route_cache", ":i"),
    ("env", "proxy_send_local_response", "iiiiiiii:i"),
    ("env", "proxy_http_call", "iiiiiiiiii:i"),
    ("env", "proxy_grpc_call", "iiiiiiiiiiii:i"),
    ("env", "proxy_grpc_stream", "iiiiiiiii:i"),
    ("env", "proxy_grpc_send", "iiii:i"),
    ("env", "proxy_grpc_cancel", "i:i"),
    ("env", "proxy_grpc_close", "i:i"),
    ("env", "proxy_get_status", "iii:i"),
    ("env", "proxy_set_effective_context", "i:i"),
    ("env", "proxy_done", ":i"),
    ("env", "proxy_call_foreign_function", "iiiiii:i"),
    ("env", "proxy_define_metric", "iiii:i"),
    ("env", "proxy_increment_metric", "iI:i"),
    ("env", "proxy_record_metric", "iI:i"),
    ("env", "proxy_get_metric", "ii:i"),
    ("wasi_snapshot_preview1", "fd_write", "iiii:i"),
    ("wasi_snapshot_preview1", "fd_read", "iiii:i"),
    ("wasi_snapshot_preview1", "fd_close", "i:i"),
    ("wasi_snapshot_preview1", "fd_seek", "iIii:i"),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "ii:i"),
    ("wasi_snapshot_preview1", "fd_prestat_get", "ii:i"),
    ("wasi_snapshot_preview1", "fd_prestat_dir_name", "iii:i"),
    ("wasi_snapshot_preview1", "environ_get", "ii:i"),
    ("wasi_snapshot_preview1", "environ_sizes_get", "ii:i"),
    ("wasi_snapshot_preview1", "args_get", "ii:i"),
    ("wasi_snapshot_preview1", "args_sizes_get", "ii:i"),
    ("wasi_snapshot_preview1", "clock_time_get", "iIi:i"),
    ("wasi_snapshot_preview1", "clock_res_get", "ii:i"),
    ("wasi_snapshot_preview1", "random_get", "ii:i"),
    ("wasi_snapshot_preview1", "proc_exit", "i:"),
    ("wasi_snapshot_preview1", "sched_yield", ":i"),
    ("wasi_snapshot_preview1", "poll_oneoff", "iiii:i"),
];

fn signature(ty: &wasmi::FuncType) -> String {
    let code = |t: &wasmi::ValType| match t {
        wasmi::ValType::I32 => 'i',
        wasmi::ValType::I64 => 'I',
        wasmi::ValType::F32 => 'f',
        wasmi::ValType::F64 => 'F',
        _ => '?',
    };
    let p: String = ty.params().iter().map(code).collect();
    let r: String = ty.results().iter().map(code).collect();
    format!("{p}:{r}")
}

pub(crate) fn import_spec(module: &str, name: &str, ty: &wasmi::FuncType) -> ImportSpec {
    let sig = signature(ty);
    let known = KNOWN
        .iter()
        .any(|(m, n, s)| *m == module && *n == name && *s == sig);
    ImportSpec {
        full_name: format!("{module}.{name}").into(),
        name: name.into(),
        known,
        wasi: module.starts_with("wasi"),
        result: ty.results().first().copied(),
    }
}

/// A host call failed in a way Envoy would turn into a VM failure (proc_exit) — surfaced as a
/// trap of the guest call.
#[derive(Debug)]
pub struct HostAbort(pub String);

impl std::fmt::Display for HostAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl wasmi::errors::HostError for HostAbort {}

/// Entry point of every import.
pub(crate) fn dispatch(
    mut caller: Caller<'_, HostState>,
    spec: &ImportSpec,
    args: &[Val],
    results: &mut [Val],
) -> Result<(), wasmi::Error> {
    let a: Vec<u64> = args
        .iter()
        .map(|v| match v {
            Val::I32(x) => u64::from(*x as u32),
            Val::I64(x) => *x as u64,
            _ => 0,
        })
        .collect();
    let context = caller.data().active_context();
    let injected = if spec.result.is_some() {
        caller.data_mut().take_fault(&spec.name)
    } else {
        None
    };
    let (ret, unimplemented) = match injected {
        Some(s) => (Some(s), false),
        None if spec.known => (call_known(&mut caller, &spec.name, &a)?, false),
        None => match spec.result {
            None => (None, true),
            Some(_) => (
                Some(if spec.wasi {
                    errno::NOSYS
                } else {
                    status::UNIMPLEMENTED
                }),
                true,
            ),
        },
    };
    caller.data_mut().calls.push(CallRecord {
        name: spec.full_name.clone(),
        context,
        status: ret,
        injected: injected.is_some(),
        unimplemented,
    });
    if let (Some(slot), Some(ty)) = (results.first_mut(), spec.result) {
        let v = ret.unwrap_or(0);
        *slot = match ty {
            wasmi::ValType::I64 => Val::I64(i64::from(v)),
            wasmi::ValType::F32 => Val::F32(0f32.into()),
            wasmi::ValType::F64 => Val::F64(0f64.into()),
            _ => Val::I32(v as i32),
        };
    }
    Ok(())
}

// ---- memory helpers ----------------------------------------------------------------------------

fn read(caller: &Caller<'_, HostState>, ptr: u64, len: u64) -> Option<Vec<u8>> {
    let mem = caller.data().memory?;
    let data = mem.data(caller);
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end).map(<[u8]>::to_vec)
}

fn write(caller: &mut Caller<'_, HostState>, ptr: u64, bytes: &[u8]) -> bool {
    let Some(mem) = caller.data().memory else {
        return false;
    };
    let Ok(start) = usize::try_from(ptr) else {
        return false;
    };
    mem.write(&mut *caller, start, bytes).is_ok()
}

fn write_u32(caller: &mut Caller<'_, HostState>, ptr: u64, v: u32) -> bool {
    write(caller, ptr, &v.to_le_bytes())
}

fn write_u64(caller: &mut Caller<'_, HostState>, ptr: u64, v: u64) -> bool {
    write(caller, ptr, &v.to_le_bytes())
}

/// Guest memory for `bytes` through its allocator export; `Ok(None)` when it returns 0.
fn alloc_copy(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
) -> Result<Option<u64>, wasmi::Error> {
    let Some(alloc) = caller.data().alloc else {
        return Ok(None);
    };
    let mut out = [Val::I32(0)];
    alloc.call(&mut *caller, &[Val::I32(bytes.len() as i32)], &mut out)?;
    let ptr = match out {
        [Val::I32(p)] => u64::from(p as u32),
        _ => 0,
    };
    if ptr == 0 || !write(caller, ptr, bytes) {
        return Ok(None);
    }
    Ok(Some(ptr))
}

/// proxy-wasm-cpp-host `copyToPointerSize`: an empty value is pointer 0, size 0.
fn copy_to_pointer_size(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ptr_ptr: u64,
    size_ptr: u64,
) -> Result<u32, wasmi::Error> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        match alloc_copy(caller, bytes)? {
            Some(p) => p,
            None => return Ok(status::INVALID_MEMORY_ACCESS),
        }
    };
    if !write_u32(caller, ptr_ptr, ptr as u32) || !write_u32(caller, size_ptr, bytes.len() as u32) {
        return Ok(status::INVALID_MEMORY_ACCESS);
    }
    Ok(status::OK)
}

/// Envoy's `Context::getProperty` walk: segments split on NUL; a trailing NUL ends the path
/// (the SDK sends none, other guests send one), an empty path has no segment.
pub fn property_path(path: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = path.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if path.is_empty() || path.ends_with(&[0]) {
        parts.pop();
    }
    parts
}

fn arg(a: &[u64], i: usize) -> u64 {
    a.get(i).copied().unwrap_or(0)
}

fn arg32(a: &[u64], i: usize) -> u32 {
    arg(a, i) as u32
}

// ---- the calls ---------------------------------------------------------------------------------

fn call_known(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    a: &[u64],
) -> Result<Option<u32>, wasmi::Error> {
    use status::*;
    let s = |v: u32| Ok(Some(v));
    macro_rules! mem {
        ($ptr:expr, $len:expr) => {
            match read(caller, $ptr, $len) {
                Some(v) => v,
                None => return s(INVALID_MEMORY_ACCESS),
            }
        };
    }
    macro_rules! wasi_mem {
        ($ptr:expr, $len:expr) => {
            match read(caller, $ptr, $len) {
                Some(v) => v,
                None => return s(errno::FAULT),
            }
        };
    }
    let ctx = caller.data().active_context();
    match name {
        // ---- general
        "proxy_log" => {
            let msg = mem!(arg(a, 1), arg(a, 2));
            caller.data_mut().logs.push(LogEntry {
                level: arg32(a, 0),
                message: String::from_utf8_lossy(&msg).into_owned(),
                context: ctx,
            });
            s(OK)
        }
        "proxy_get_log_level" => {
            let lvl = caller.data().log_level;
            s(if write_u32(caller, arg(a, 0), lvl) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_get_current_time_nanoseconds" => {
            let now = caller.data().now_nanos;
            s(if write_u64(caller, arg(a, 0), now) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_set_tick_period_milliseconds" => {
            caller.data_mut().tick_period_ms = Some(arg32(a, 0));
            s(OK)
        }
        "proxy_done" => {
            caller.data_mut().done_called += 1;
            s(OK)
        }
        "proxy_set_effective_context" => {
            let id = arg32(a, 0);
            let st = caller.data();
            if st.root_contexts.contains(&id) || st.streams.contains_key(&id) {
                caller.data_mut().effective_context = id;
                s(OK)
            } else {
                s(BAD_ARGUMENT)
            }
        }
        "proxy_get_status" => {
            if !write_u32(caller, arg(a, 0), 0) {
                return s(INVALID_MEMORY_ACCESS);
            }
            copy_to_pointer_size(caller, b"", arg(a, 1), arg(a, 2)).map(Some)
        }
        "proxy_call_foreign_function" => {
            let _ = mem!(arg(a, 0), arg(a, 1));
            let _ = mem!(arg(a, 2), arg(a, 3));
            s(NOT_FOUND)
        }
        // ---- properties
        "proxy_get_property" => {
            let path = mem!(arg(a, 0), arg(a, 1));
            let key = property_path(&path);
            match caller.data().properties.get(&key).cloned() {
                None => s(NOT_FOUND),
                Some(v) => copy_to_pointer_size(caller, &v, arg(a, 2), arg(a, 3)).map(Some),
            }
        }
        "proxy_set_property" => {
            let k = mem!(arg(a, 0), arg(a, 1));
            let v = mem!(arg(a, 2), arg(a, 3));
            match caller.data_mut().streams.get_mut(&ctx) {
                Some(st) => st.properties_set.push((k, v)),
                None => return s(NOT_FOUND),
            }
            s(OK)
        }
        // ---- buffers
        "proxy_get_buffer_bytes" => {
            if arg32(a, 0) > abi::buffer_type::MAX {
                return s(BAD_ARGUMENT);
            }
            let Some(buf) = caller.data().buffer(arg32(a, 0)) else {
                return s(NOT_FOUND);
            };
            let (start, mut len) = (arg(a, 1) as u32 as usize, arg(a, 2) as u32 as usize);
            if start.checked_add(len).is_none() {
                return s(BAD_ARGUMENT);
            }
            if start > buf.len() {
                len = 0;
            } else if start + len > buf.len() {
                len = buf.len() - start;
            }
            let bytes = buf.get(start..start + len).unwrap_or_default().to_vec();
            if bytes.is_empty() {
                if !write_u32(caller, arg(a, 3), 0) || !write_u32(caller, arg(a, 4), 0) {
                    return s(INVALID_MEMORY_ACCESS);
                }
                return s(OK);
            }
            copy_to_pointer_size(caller, &bytes, arg(a, 3), arg(a, 4)).map(Some)
        }
        "proxy_get_buffer_status" => {
            let Some(buf) = caller.data().buffer(arg32(a, 0)) else {
                return s(NOT_FOUND);
            };
            if !write_u32(caller, arg(a, 1), buf.len() as u32) || !write_u32(caller, arg(a, 2), 0) {
                return s(INVALID_MEMORY_ACCESS);
            }
            s(OK)
        }
        "proxy_set_buffer_bytes" => {
            let data = mem!(arg(a, 3), arg(a, 4));
            let kind = arg32(a, 0);
            let st = caller.data_mut();
            let ctx = st.active_context();
            let Some(stream) = st.streams.get_mut(&ctx) else {
                return s(NOT_FOUND);
            };
            let buf = match kind {
                abi::buffer_type::HTTP_REQUEST_BODY => &mut stream.request_body,
                abi::buffer_type::HTTP_RESPONSE_BODY => &mut stream.response_body,
                _ => return s(NOT_FOUND),
            };
            let start = (arg32(a, 1) as usize).min(buf.len());
            let end = start.saturating_add(arg32(a, 2) as usize).min(buf.len());
            buf.splice(start..end, data);
            s(OK)
        }
        // ---- header maps
        "proxy_get_header_map_pairs" => {
            if arg32(a, 0) > abi::map_type::MAX {
                return s(BAD_ARGUMENT);
            }
            let Some(map) = caller.data().map(arg32(a, 0)) else {
                return s(NOT_FOUND);
            };
            let bytes = match map.raw {
                Some(raw) => raw,
                None if map.pairs.is_empty() => Vec::new(),
                None => abi::serialize_pairs(&map.pairs),
            };
            copy_to_pointer_size(caller, &bytes, arg(a, 1), arg(a, 2)).map(Some)
        }
        "proxy_set_header_map_pairs" => {
            let data = mem!(arg(a, 1), arg(a, 2));
            let map = arg32(a, 0);
            let pairs = abi::parse_pairs(&data);
            let st = caller.data_mut();
            let ctx = st.active_context();
            let Some(m) = st.map_mut(map) else {
                return s(BAD_ARGUMENT);
            };
            *m = HeaderMap::from_pairs(pairs.clone().unwrap_or_default());
            if let Some(stream) = st.streams.get_mut(&ctx) {
                stream.header_ops.push(HeaderOp::SetPairs { map, pairs });
            }
            s(OK)
        }
        "proxy_get_header_map_size" => {
            let Some(map) = caller.data().map(arg32(a, 0)) else {
                return s(NOT_FOUND);
            };
            let size = abi::serialize_pairs(&map.pairs).len() as u32;
            s(if write_u32(caller, arg(a, 1), size) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_get_header_map_value" => {
            if arg32(a, 0) > abi::map_type::MAX {
                return s(BAD_ARGUMENT);
            }
            let key = abi::lower(&mem!(arg(a, 1), arg(a, 2)));
            let Some(map) = caller.data().map(arg32(a, 0)) else {
                return s(NOT_FOUND);
            };
            match map.get_first(&key) {
                None => s(NOT_FOUND),
                Some(v) => {
                    let v = v.to_vec();
                    copy_to_pointer_size(caller, &v, arg(a, 3), arg(a, 4)).map(Some)
                }
            }
        }
        "proxy_add_header_map_value"
        | "proxy_replace_header_map_value"
        | "proxy_remove_header_map_value" => {
            let map = arg32(a, 0);
            if map > abi::map_type::MAX {
                return s(BAD_ARGUMENT);
            }
            let key = abi::lower(&mem!(arg(a, 1), arg(a, 2)));
            let value = if name == "proxy_remove_header_map_value" {
                Vec::new()
            } else {
                mem!(arg(a, 3), arg(a, 4))
            };
            let st = caller.data_mut();
            let ctx = st.active_context();
            let Some(m) = st.map_mut(map) else {
                return s(BAD_ARGUMENT);
            };
            let op = match name {
                "proxy_add_header_map_value" => {
                    m.add(key.clone(), value.clone());
                    HeaderOp::Add {
                        map,
                        name: key,
                        value,
                    }
                }
                "proxy_replace_header_map_value" => {
                    // Envoy's setCopy: every existing value goes, one is added
                    m.remove(&key);
                    m.add(key.clone(), value.clone());
                    HeaderOp::Replace {
                        map,
                        name: key,
                        value,
                    }
                }
                _ => {
                    m.remove(&key);
                    HeaderOp::Remove { map, name: key }
                }
            };
            if let Some(stream) = st.streams.get_mut(&ctx) {
                stream.header_ops.push(op);
            }
            s(OK)
        }
        // ---- stream control
        "proxy_continue_stream" | "proxy_close_stream" => {
            let t = arg32(a, 0);
            if t > abi::stream_type::MAX {
                return s(BAD_ARGUMENT);
            }
            let Some(stream) = caller.data_mut().streams.get_mut(&ctx) else {
                return s(NOT_FOUND);
            };
            if name == "proxy_continue_stream" {
                stream.continued.push(t);
            } else {
                stream.closed.push(t);
            }
            s(OK)
        }
        "proxy_continue_request" | "proxy_continue_response" => {
            let t = if name == "proxy_continue_request" {
                abi::stream_type::HTTP_REQUEST
            } else {
                abi::stream_type::HTTP_RESPONSE
            };
            let Some(stream) = caller.data_mut().streams.get_mut(&ctx) else {
                return s(NOT_FOUND);
            };
            stream.continued.push(t);
            s(OK)
        }
        "proxy_clear_route_cache" => {
            if let Some(stream) = caller.data_mut().streams.get_mut(&ctx) {
                stream.route_cache_cleared = true;
            }
            s(OK)
        }
        "proxy_send_local_response" => {
            let details = mem!(arg(a, 1), arg(a, 2));
            let body = mem!(arg(a, 3), arg(a, 4));
            let headers = mem!(arg(a, 5), arg(a, 6));
            let resp = LocalResponse {
                status: arg32(a, 0),
                details,
                body,
                headers: abi::parse_pairs(&headers),
                grpc_status: arg32(a, 7) as i32,
            };
            let Some(stream) = caller.data_mut().streams.get_mut(&ctx) else {
                return s(NOT_FOUND);
            };
            // Envoy sends the first; a second one on the same stream is ignored
            if stream.local_response.is_none() {
                stream.local_response = Some(resp);
            }
            s(OK)
        }
        // ---- callouts
        "proxy_http_call" => {
            let cluster = mem!(arg(a, 0), arg(a, 1));
            let headers = mem!(arg(a, 2), arg(a, 3));
            let body = mem!(arg(a, 4), arg(a, 5));
            let trailers = mem!(arg(a, 6), arg(a, 7));
            if !write_u32(caller, arg(a, 9), 0) {
                return s(INVALID_MEMORY_ACCESS);
            }
            let st = caller.data_mut();
            if st.http_call_status != OK {
                return s(st.http_call_status);
            }
            let token = st.next_token;
            st.next_token += 1;
            st.http_calls.push(HttpCall {
                token,
                context: ctx,
                cluster,
                headers: abi::parse_pairs(&headers),
                body,
                trailers: abi::parse_pairs(&trailers),
                timeout_ms: arg32(a, 8),
            });
            if let Some(stream) = st.streams.get_mut(&ctx) {
                stream.pending_calls.push(token);
            }
            write_u32(caller, arg(a, 9), token);
            s(OK)
        }
        "proxy_grpc_call" | "proxy_grpc_stream" => {
            // No gRPC services here: Envoy refuses an unknown cluster.
            s(BAD_ARGUMENT)
        }
        "proxy_grpc_send" | "proxy_grpc_cancel" | "proxy_grpc_close" => s(NOT_FOUND),
        // ---- shared data and queues
        "proxy_get_shared_data" => {
            let key = mem!(arg(a, 0), arg(a, 1));
            let Some((value, cas)) = caller.data().shared_data.get(&key).cloned() else {
                return s(NOT_FOUND);
            };
            let r = copy_to_pointer_size(caller, &value, arg(a, 2), arg(a, 3))?;
            if r != OK {
                return s(r);
            }
            s(if write_u32(caller, arg(a, 4), cas) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_set_shared_data" => {
            let key = mem!(arg(a, 0), arg(a, 1));
            let value = mem!(arg(a, 2), arg(a, 3));
            let cas = arg32(a, 4);
            let st = caller.data_mut();
            let next = st.next_cas;
            st.next_cas = st.next_cas.wrapping_add(1).max(1);
            match st.shared_data.get_mut(&key) {
                Some(entry) => {
                    if cas != 0 && cas != entry.1 {
                        return s(CAS_MISMATCH);
                    }
                    *entry = (value, next);
                }
                None => {
                    st.shared_data.insert(key, (value, next));
                }
            }
            s(OK)
        }
        "proxy_register_shared_queue" => {
            let qname = mem!(arg(a, 0), arg(a, 1));
            let st = caller.data_mut();
            let token = match st.queues.iter().find(|(_, (n, _))| *n == qname) {
                Some((t, _)) => *t,
                None => {
                    let t = st.queues.len() as u32 + 1;
                    st.queues.insert(t, (qname, Vec::new()));
                    t
                }
            };
            s(if write_u32(caller, arg(a, 2), token) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_resolve_shared_queue" => {
            let _vm = mem!(arg(a, 0), arg(a, 1));
            let qname = mem!(arg(a, 2), arg(a, 3));
            let found = caller
                .data()
                .queues
                .iter()
                .find(|(_, (n, _))| *n == qname)
                .map(|(t, _)| *t);
            match found {
                None => s(NOT_FOUND),
                Some(t) => s(if write_u32(caller, arg(a, 4), t) {
                    OK
                } else {
                    INVALID_MEMORY_ACCESS
                }),
            }
        }
        "proxy_enqueue_shared_queue" => {
            let data = mem!(arg(a, 1), arg(a, 2));
            match caller.data_mut().queues.get_mut(&arg32(a, 0)) {
                None => s(NOT_FOUND),
                Some((_, items)) => {
                    items.push(data);
                    s(OK)
                }
            }
        }
        "proxy_dequeue_shared_queue" => {
            let item = match caller.data_mut().queues.get_mut(&arg32(a, 0)) {
                None => return s(NOT_FOUND),
                Some((_, items)) if items.is_empty() => return s(EMPTY),
                Some((_, items)) => items.remove(0),
            };
            copy_to_pointer_size(caller, &item, arg(a, 1), arg(a, 2)).map(Some)
        }
        // ---- metrics
        "proxy_define_metric" => {
            let kind = arg32(a, 0);
            let mname = mem!(arg(a, 1), arg(a, 2));
            let st = caller.data_mut();
            let Some(next) = st.next_metric_id.get_mut(kind as usize) else {
                return s(BAD_ARGUMENT);
            };
            *next += 4;
            let id = *next;
            let mname = String::from_utf8_lossy(&mname).into_owned();
            st.metric_values.entry(mname.clone()).or_insert(0);
            st.metric_defs.insert(id, Metric { kind, name: mname });
            s(if write_u32(caller, arg(a, 3), id) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_increment_metric" | "proxy_record_metric" => {
            let st = caller.data_mut();
            let Some(m) = st.metric_defs.get(&arg32(a, 0)).cloned() else {
                return s(NOT_FOUND);
            };
            let v = st.metric_values.entry(m.name).or_insert(0);
            let off = arg(a, 1) as i64;
            match (name, m.kind) {
                ("proxy_increment_metric", abi::metric_type::COUNTER) => {
                    if off <= 0 {
                        return s(BAD_ARGUMENT);
                    }
                    *v = v.saturating_add(off as u64);
                }
                ("proxy_increment_metric", abi::metric_type::GAUGE) => {
                    *v = (*v as i64).saturating_add(off) as u64;
                }
                ("proxy_record_metric", abi::metric_type::COUNTER) => return s(BAD_ARGUMENT),
                ("proxy_record_metric", _) => *v = off as u64,
                _ => return s(BAD_ARGUMENT),
            }
            s(OK)
        }
        "proxy_get_metric" => {
            let st = caller.data();
            let Some(m) = st.metric_defs.get(&arg32(a, 0)) else {
                return s(NOT_FOUND);
            };
            let v = st.metric(&m.name);
            s(if write_u64(caller, arg(a, 1), v) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        // ---- WASI
        "fd_write" => {
            let fd = arg32(a, 0);
            if fd != 1 && fd != 2 {
                return s(errno::BADF);
            }
            let mut out = Vec::new();
            for i in 0..arg(a, 2) {
                let iov = wasi_mem!(arg(a, 1) + i * 8, 8);
                let word = |o: usize| {
                    iov.get(o..o + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, u32::from_le_bytes)
                };
                let (ptr, len) = (word(0), word(4));
                if len != 0 {
                    out.extend(wasi_mem!(u64::from(ptr), u64::from(len)));
                }
            }
            let n = out.len() as u32;
            let st = caller.data_mut();
            if fd == 1 {
                st.stdout.extend(out);
            } else {
                st.stderr.extend(out);
            }
            s(if write_u32(caller, arg(a, 3), n) {
                errno::SUCCESS
            } else {
                errno::FAULT
            })
        }
        "fd_read" | "poll_oneoff" | "fd_prestat_dir_name" => s(errno::NOSYS),
        "fd_close" | "fd_seek" | "sched_yield" => s(errno::SUCCESS),
        "fd_prestat_get" => s(errno::BADF),
        "fd_fdstat_get" => {
            let fd = arg32(a, 0);
            if fd != 1 && fd != 2 {
                return s(errno::BADF);
            }
            let mut stat = [0u8; 24];
            if let Some(b) = stat.get_mut(8..16) {
                b.copy_from_slice(&64u64.to_le_bytes());
            }
            write(caller, arg(a, 1), &stat);
            s(errno::SUCCESS)
        }
        "environ_get" | "args_get" => s(errno::SUCCESS),
        "environ_sizes_get" | "args_sizes_get" => s(
            if write_u32(caller, arg(a, 0), 0) && write_u32(caller, arg(a, 1), 0) {
                errno::SUCCESS
            } else {
                errno::FAULT
            },
        ),
        "clock_time_get" => {
            let t = match arg32(a, 0) {
                0 => caller.data().now_nanos,
                1 => caller.data().monotonic_nanos,
                _ => return s(errno::NOTSUP),
            };
            s(if write_u64(caller, arg(a, 2), t) {
                errno::SUCCESS
            } else {
                errno::FAULT
            })
        }
        "clock_res_get" => s(if write_u64(caller, arg(a, 1), 1) {
            errno::SUCCESS
        } else {
            errno::FAULT
        }),
        "random_get" => {
            let len = arg(a, 1);
            if len > 64 * 1024 {
                return s(errno::INVAL);
            }
            let mut buf = Vec::with_capacity(len as usize);
            while (buf.len() as u64) < len {
                let r = caller.data_mut().next_random();
                buf.extend_from_slice(&r.to_le_bytes());
            }
            buf.truncate(len as usize);
            s(if write(caller, arg(a, 0), &buf) {
                errno::SUCCESS
            } else {
                errno::FAULT
            })
        }
        "proc_exit" => Err(wasmi::Error::host(HostAbort(format!(
            "wasi proc_exit({}) (Envoy: the VM fails)",
            arg32(a, 0) as i32
        )))),
        _ => s(UNIMPLEMENTED),
    }
}
