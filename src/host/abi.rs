//! The proxy-wasm ABI calls the filter makes, declared here so that no host answer can panic.
//!
//! Why not the SDK's `hostcalls`: every one of them panics on a status it does not expect, and
//! its header-map readers `unwrap()` a UTF-8 conversion of host data — one request with a
//! non-UTF-8 header byte aborted the VM (issue 11). These wrappers return the raw status as an
//! error, read maps as bytes and parse them with the pure [`crate::headers::parse_map`]. The
//! return type is `u32`, not an enum: a status outside the SDK's enum must not be undefined
//! behaviour.
//!
//! Still from the SDK: the context dispatcher (its panics are host contract violations:
//! unknown context or callout ids), `dispatch_http_call` (the dispatcher must register the
//! callout token; Envoy answers it with Ok, BadArgument or InternalFailure only) and
//! `open_grpc_stream` (the same; Envoy answers Ok, ParseFailure or InternalFailure only, and
//! [`grpc_streams_supported`] checks the host does before `replay.transport = "grpc"` is used).
#![allow(unsafe_code)]

use std::ptr::null_mut;

pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const CAS_MISMATCH: u32 = 8;
pub const EMPTY: u32 = 7;

const MAP_REQUEST_HEADERS: u32 = 0;
const MAP_RESPONSE_HEADERS: u32 = 2;
const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
const BUFFER_GRPC_RECEIVE: u32 = 5;
const STREAM_HTTP_REQUEST: u32 = 0;
const METRIC_COUNTER: u32 = 0;
const METRIC_GAUGE: u32 = 1;

pub type Status = u32;

#[link(wasm_import_module = "env")]
#[allow(clashing_extern_declarations)]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_register_shared_queue(
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_grpc_send(token: u32, message: *const u8, message_size: usize, end_stream: u32)
        -> u32;
    fn proxy_grpc_stream(
        service: *const u8,
        service_size: usize,
        service_name: *const u8,
        service_name_size: usize,
        method_name: *const u8,
        method_name_size: usize,
        initial_metadata: *const u8,
        initial_metadata_size: usize,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_grpc_cancel(token: u32) -> u32;
    fn proxy_grpc_close(token: u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_call_foreign_function(
        function_name: *const u8,
        function_name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

/// Takes ownership of a buffer the host allocated in our memory (through the SDK's
/// `proxy_on_memory_allocate` export), as the SDK does.
///
/// # Safety
/// `data`/`size` must come from a host call that returned Ok.
unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

pub fn log(level: u32, message: &str) {
    unsafe {
        let _ = proxy_log(level, message.as_ptr(), message.len());
    }
}

/// Seconds since the Unix epoch; 0 if the host cannot say (every proof then looks too new or
/// too old: fails closed).
/// Nanoseconds since the epoch (0 if the host refuses).
pub fn now_nanos() -> u64 {
    let mut t: u64 = 0;
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => t,
        _ => 0,
    }
}

/// Makes `context_id` the context later host calls act on (its stream: headers, local reply,
/// continue). Used to finish requests from another context's callback.
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    match unsafe { proxy_set_effective_context(context_id) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// Registers (or finds) this VM's shared queue `name`; its token.
pub fn register_shared_queue(name: &str) -> Result<u32, Status> {
    let mut token = 0u32;
    match unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut token) } {
        OK => Ok(token),
        s => Err(s),
    }
}

pub fn enqueue_shared_queue(token: u32, value: &[u8]) -> Result<(), Status> {
    match unsafe { proxy_enqueue_shared_queue(token, value.as_ptr(), value.len()) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// One item off the queue; `Ok(None)` when it is empty.
pub fn dequeue_shared_queue(token: u32) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe { proxy_dequeue_shared_queue(token, &mut data, &mut size) } {
        OK => Ok(Some(unsafe { owned(data, size) })),
        EMPTY | NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn now_secs() -> i64 {
    let mut t: u64 = 0;
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => (t / 1_000_000_000) as i64,
        _ => 0,
    }
}

/// The plugin configuration; `expected` is the size `on_configure` was told. "Not found" is an empty
/// configuration only when the host said there is none: otherwise the defaults (`required:
/// false`) would replace a configuration the host has and failed to hand over.
pub fn plugin_configuration(expected: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe {
        proxy_get_buffer_bytes(
            BUFFER_PLUGIN_CONFIGURATION,
            0,
            usize::MAX,
            &mut data,
            &mut size,
        )
    } {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND if expected == 0 => Ok(Vec::new()),
        s => Err(s),
    }
}

/// The body of the HTTP callout response being delivered (at most `max` bytes). `Ok(empty)`
/// when there is none.
pub fn http_call_response_body(max: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe {
        proxy_get_buffer_bytes(BUFFER_HTTP_CALL_RESPONSE_BODY, 0, max, &mut data, &mut size)
    } {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND => Ok(Vec::new()),
        s => Err(s),
    }
}

/// The gRPC message being delivered (`proxy_on_grpc_receive`), at most `max` bytes.
pub fn grpc_message(max: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe { proxy_get_buffer_bytes(BUFFER_GRPC_RECEIVE, 0, max, &mut data, &mut size) } {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND => Ok(Vec::new()),
        s => Err(s),
    }
}

/// Sends one message on gRPC stream `token` (Envoy adds the gRPC frame). The stream must
/// belong to the effective context.
pub fn grpc_send(token: u32, message: &[u8]) -> Result<(), Status> {
    match unsafe { proxy_grpc_send(token, message.as_ptr(), message.len(), 0) } {
        OK => Ok(()),
        s => Err(s),
    }
}

const PARSE_FAILURE: u32 = 4;
const INTERNAL_FAILURE: u32 = 10;

/// Whether opening a gRPC stream can only answer what the SDK's `open_grpc_stream` expects (Ok,
/// ParseFailure, InternalFailure: it panics on anything else, and the SDK must open the stream
/// so that its dispatcher routes the stream's callbacks). Probed with a target that is neither
/// a GrpcService nor a cluster name (an invalid protobuf wire type, then no such cluster):
/// Envoy answers ParseFailure and opens nothing; a host without gRPC answers Unimplemented.
pub fn grpc_streams_supported() -> bool {
    let target = b"\x7fdpop_guard.no_such_cluster";
    let (service, method, metadata) = (b"probe", b"Probe", [0u8; 4]);
    let mut token = 0u32;
    let status = unsafe {
        proxy_grpc_stream(
            target.as_ptr(),
            target.len(),
            service.as_ptr(),
            service.len(),
            method.as_ptr(),
            method.len(),
            metadata.as_ptr(),
            metadata.len(),
            &mut token,
        )
    };
    match status {
        PARSE_FAILURE | INTERNAL_FAILURE => true,
        OK => {
            // a host that opened something anyway: not ours to keep
            let _ = grpc_cancel(token);
            true
        }
        _ => false,
    }
}

/// Resets gRPC stream `token` (no close callback follows).
pub fn grpc_cancel(token: u32) -> Result<(), Status> {
    match unsafe { proxy_grpc_cancel(token) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// Half-closes gRPC stream `token`: the service answers what it has, then ends the stream.
pub fn grpc_close(token: u32) -> Result<(), Status> {
    match unsafe { proxy_grpc_close(token) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// Asks for `proxy_on_tick` every `ms` milliseconds (0 stops it).
pub fn set_tick_period(ms: u32) -> Result<(), Status> {
    match unsafe { proxy_set_tick_period_milliseconds(ms) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// The serialized request header map (parse with [`crate::headers::parse_map`]).
pub fn request_header_map() -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe { proxy_get_header_map_pairs(MAP_REQUEST_HEADERS, &mut data, &mut size) } {
        OK => Ok(unsafe { owned(data, size) }),
        s => Err(s),
    }
}

/// One header of the HTTP callout's response, as bytes.
pub fn http_call_response_header(name: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe {
        proxy_get_header_map_value(
            MAP_HTTP_CALL_RESPONSE_HEADERS,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        )
    } {
        OK => Ok(Some(unsafe { owned(data, size) })),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn remove_request_header(name: &str) -> Result<(), Status> {
    match unsafe { proxy_remove_header_map_value(MAP_REQUEST_HEADERS, name.as_ptr(), name.len()) } {
        OK => Ok(()),
        s => Err(s),
    }
}

pub fn replace_request_header(name: &str, value: &str) -> Result<(), Status> {
    replace_header(MAP_REQUEST_HEADERS, name, value)
}

pub fn replace_response_header(name: &str, value: &str) -> Result<(), Status> {
    replace_header(MAP_RESPONSE_HEADERS, name, value)
}

fn replace_header(map: u32, name: &str, value: &str) -> Result<(), Status> {
    match unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// A property (path segments joined with NUL), `Ok(None)` when the host has none.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let mut serialized = Vec::new();
    for segment in path {
        serialized.extend_from_slice(segment.as_bytes());
        serialized.push(0);
    }
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size) }
    {
        OK => Ok(Some(unsafe { owned(data, size) })),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// Sets a one-segment property. Envoy keeps it as filter state `wasm.<name>` (bytes) for the
/// filters after this one and the access log. No NUL in `name`: Envoy takes the serialized
/// path as the key, so a trailing separator would become part of it.
pub fn set_property(name: &str, value: &[u8]) -> Result<(), Status> {
    match unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// Shared data: `Ok(None)` when the key does not exist, else (value, cas).
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) }
    {
        OK => Ok(Some((unsafe { owned(data, size) }, cas))),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// Sets shared data if `cas` still matches (0: unconditional). `Ok(false)` on a CAS mismatch.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<bool, Status> {
    match unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    } {
        OK => Ok(true),
        CAS_MISMATCH => Ok(false),
        s => Err(s),
    }
}

pub fn resume_request() -> Result<(), Status> {
    match unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// A local reply. With `grpc_status`, Envoy answers a gRPC request trailers-only (HTTP 200,
/// that `grpc-status`, `body` as `grpc-message`).
pub fn send_local_response(
    status: u32,
    headers: &[(&str, &str)],
    body: &[u8],
    grpc_status: Option<u32>,
) -> Result<(), Status> {
    let pairs: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let map = crate::headers::serialize_map(&pairs);
    let details = "dpop_guard";
    match unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            grpc_status
                .and_then(|g| i32::try_from(g).ok())
                .unwrap_or(-1),
        )
    } {
        OK => Ok(()),
        s => Err(s),
    }
}

/// A counter id; 0 (never a valid id in Envoy) when the host refuses.
pub fn define_counter(name: &str) -> u32 {
    let mut id = 0u32;
    match unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) } {
        OK => id,
        _ => 0,
    }
}

/// A gauge set to `value` (e.g. which crypto path is in use); failures are ignored (a
/// missing gauge changes no decision).
pub fn set_gauge(name: &str, value: u64) {
    let mut id = 0u32;
    if unsafe { proxy_define_metric(METRIC_GAUGE, name.as_ptr(), name.len(), &mut id) } == OK {
        unsafe {
            let _ = proxy_record_metric(id, value);
        }
    }
}

/// A host foreign function (Envoy: `verify_signature`, …): its serialized result.
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    match unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    } {
        OK => Ok(unsafe { owned(data, size) }),
        s => Err(s),
    }
}

pub fn increment(id: u32) {
    increment_by(id, 1);
}

pub fn increment_by(id: u32, n: i64) {
    if id != 0 {
        unsafe {
            let _ = proxy_increment_metric(id, n);
        }
    }
}

/// The host's log level (proxy-wasm: 0 trace … 5 critical); `info` if it cannot say.
pub fn host_log_level() -> u32 {
    let mut level = 2u32;
    match unsafe { proxy_get_log_level(&mut level) } {
        OK => level,
        _ => 2,
    }
}

/// The `log` facade's logger: every line goes to the host through [`log`], which never panics
/// (the SDK's logger unwraps the host's answer). The max level follows the host's, so a
/// `log::debug!` costs nothing — not even formatting — when Envoy would drop it.
pub struct HostLogger;

pub static LOGGER: HostLogger = HostLogger;

impl ::log::Log for HostLogger {
    fn enabled(&self, metadata: &::log::Metadata) -> bool {
        metadata.level() <= ::log::max_level()
    }

    fn log(&self, record: &::log::Record) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                ::log::Level::Trace => 0,
                ::log::Level::Debug => 1,
                ::log::Level::Info => 2,
                ::log::Level::Warn => 3,
                ::log::Level::Error => 4,
            };
            log(level, &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Installs [`LOGGER`] (at `info` until [`sync_log_level`]: no host call is allowed while the
/// module initialises) and a panic hook that reports through the host log (a panic aborts the
/// VM; the line says where).
pub fn init_logging() {
    let _ = ::log::set_logger(&LOGGER);
    ::log::set_max_level(::log::LevelFilter::Info);
    std::panic::set_hook(Box::new(|info| log(5, &info.to_string())));
}

/// Re-reads the host's level (VM start and each configuration).
pub fn sync_log_level() {
    ::log::set_max_level(match host_log_level() {
        0 => ::log::LevelFilter::Trace,
        1 => ::log::LevelFilter::Debug,
        2 => ::log::LevelFilter::Info,
        3 => ::log::LevelFilter::Warn,
        4 => ::log::LevelFilter::Error,
        _ => ::log::LevelFilter::Off,
    });
}
