//! The import table and the entry point of every import: [`KNOWN`] lists the imports this host
//! implements (module, name, signature, and the group of calls that answers it);
//! [`import_spec`] classifies an import of the module; [`dispatch`] runs one call — fault
//! injection, the emulated call or `Unimplemented`/`ENOSYS`, the [`CallRecord`], the result.

use super::memory::HostResult;
use super::state::HostState;
use super::{buffers, callouts, general, headers, metrics, properties, shared, stream, wasi};
use crate::abi::{errno, status};
use std::sync::Arc;
use wasmi::{Caller, Val};

/// A call the guest made into the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// `env.proxy_log`, `wasi_snapshot_preview1.fd_write`, …
    pub name: Arc<str>,
    /// The context the call was made in (after `proxy_set_effective_context`).
    pub context: u32,
    /// The status/errno returned (None for calls without a result).
    pub status: Option<u32>,
    /// The status was a [`super::Fault`], not the emulated behaviour.
    pub injected: bool,
    /// Not implemented by this host (the guest got `Unimplemented`/`ENOSYS`).
    pub unimplemented: bool,
}

/// The group of calls (one file each) that implements an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    General,
    Buffers,
    Headers,
    Properties,
    Shared,
    Stream,
    Callouts,
    Metrics,
    Wasi,
}

/// One import of the module and how the host answers it.
#[derive(Debug, Clone)]
pub(crate) struct ImportSpec {
    pub full_name: Arc<str>,
    pub name: Arc<str>,
    /// Implemented here with a matching signature: the group that answers it.
    pub group: Option<Group>,
    pub wasi: bool,
    /// The single result type, if any.
    pub result: Option<wasmi::ValType>,
}

impl ImportSpec {
    /// Implemented here with a matching signature.
    pub fn known(&self) -> bool {
        self.group.is_some()
    }
}

use Group as G;

/// Signatures this host implements: `i` = i32, `I` = i64; params `:` results; the group of
/// calls (one file each) that answers the import.
#[rustfmt::skip]
const KNOWN: &[(&str, &str, &str, Group)] = &[
    ("env", "proxy_log", "iii:i", G::General),
    ("env", "proxy_get_log_level", "i:i", G::General),
    ("env", "proxy_get_current_time_nanoseconds", "i:i", G::General),
    ("env", "proxy_set_tick_period_milliseconds", "i:i", G::General),
    ("env", "proxy_get_buffer_bytes", "iiiii:i", G::Buffers),
    ("env", "proxy_get_buffer_status", "iii:i", G::Buffers),
    ("env", "proxy_set_buffer_bytes", "iiiii:i", G::Buffers),
    ("env", "proxy_get_header_map_pairs", "iii:i", G::Headers),
    ("env", "proxy_set_header_map_pairs", "iii:i", G::Headers),
    ("env", "proxy_get_header_map_size", "ii:i", G::Headers),
    ("env", "proxy_get_header_map_value", "iiiii:i", G::Headers),
    ("env", "proxy_add_header_map_value", "iiiii:i", G::Headers),
    ("env", "proxy_replace_header_map_value", "iiiii:i", G::Headers),
    ("env", "proxy_remove_header_map_value", "iii:i", G::Headers),
    ("env", "proxy_get_property", "iiii:i", G::Properties),
    ("env", "proxy_set_property", "iiii:i", G::Properties),
    ("env", "proxy_get_shared_data", "iiiii:i", G::Shared),
    ("env", "proxy_set_shared_data", "iiiii:i", G::Shared),
    ("env", "proxy_register_shared_queue", "iii:i", G::Shared),
    ("env", "proxy_resolve_shared_queue", "iiiii:i", G::Shared),
    ("env", "proxy_dequeue_shared_queue", "iii:i", G::Shared),
    ("env", "proxy_enqueue_shared_queue", "iii:i", G::Shared),
    ("env", "proxy_continue_stream", "i:i", G::Stream),
    ("env", "proxy_close_stream", "i:i", G::Stream),
    ("env", "proxy_continue_request", ":i", G::Stream),
    ("env", "proxy_continue_response", ":i", G::Stream),
    ("env", "proxy_clear_route_cache", ":i", G::Stream),
    ("env", "proxy_send_local_response", "iiiiiiii:i", G::Stream),
    ("env", "proxy_http_call", "iiiiiiiiii:i", G::Callouts),
    ("env", "proxy_grpc_call", "iiiiiiiiiiii:i", G::Callouts),
    ("env", "proxy_grpc_stream", "iiiiiiiii:i", G::Callouts),
    ("env", "proxy_grpc_send", "iiii:i", G::Callouts),
    ("env", "proxy_grpc_cancel", "i:i", G::Callouts),
    ("env", "proxy_grpc_close", "i:i", G::Callouts),
    ("env", "proxy_get_status", "iii:i", G::General),
    ("env", "proxy_set_effective_context", "i:i", G::General),
    ("env", "proxy_done", ":i", G::General),
    ("env", "proxy_call_foreign_function", "iiiiii:i", G::General),
    ("env", "proxy_define_metric", "iiii:i", G::Metrics),
    ("env", "proxy_increment_metric", "iI:i", G::Metrics),
    ("env", "proxy_record_metric", "iI:i", G::Metrics),
    ("env", "proxy_get_metric", "ii:i", G::Metrics),
    ("wasi_snapshot_preview1", "fd_write", "iiii:i", G::Wasi),
    ("wasi_snapshot_preview1", "fd_read", "iiii:i", G::Wasi),
    ("wasi_snapshot_preview1", "fd_close", "i:i", G::Wasi),
    ("wasi_snapshot_preview1", "fd_seek", "iIii:i", G::Wasi),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "fd_prestat_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "fd_prestat_dir_name", "iii:i", G::Wasi),
    ("wasi_snapshot_preview1", "environ_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "environ_sizes_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "args_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "args_sizes_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "clock_time_get", "iIi:i", G::Wasi),
    ("wasi_snapshot_preview1", "clock_res_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "random_get", "ii:i", G::Wasi),
    ("wasi_snapshot_preview1", "proc_exit", "i:", G::Wasi),
    ("wasi_snapshot_preview1", "sched_yield", ":i", G::Wasi),
    ("wasi_snapshot_preview1", "poll_oneoff", "iiii:i", G::Wasi),
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
    let group = KNOWN
        .iter()
        .find(|(m, n, s, _)| *m == module && *n == name && *s == sig)
        .map(|(_, _, _, g)| *g);
    ImportSpec {
        full_name: format!("{module}.{name}").into(),
        name: name.into(),
        group,
        wasi: module.starts_with("wasi"),
        result: ty.results().first().copied(),
    }
}

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
    let (ret, unimplemented) = match (injected, spec.group) {
        (Some(s), _) => (Some(s), false),
        (None, Some(group)) => (call_known(&mut caller, group, &spec.name, &a)?, false),
        (None, None) => match spec.result {
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

/// An implemented import, handed to its group's `call` (`a`: the arguments widened to u64).
fn call_known(
    caller: &mut Caller<'_, HostState>,
    group: Group,
    name: &str,
    a: &[u64],
) -> HostResult {
    let ctx = caller.data().active_context();
    match group {
        Group::General => general::call(caller, name, a, ctx),
        Group::Buffers => buffers::call(caller, name, a),
        Group::Headers => headers::call(caller, name, a),
        Group::Properties => properties::call(caller, name, a, ctx),
        Group::Shared => shared::call(caller, name, a),
        Group::Stream => stream::call(caller, name, a, ctx),
        Group::Callouts => callouts::call(caller, name, a, ctx),
        Group::Metrics => metrics::call(caller, name, a),
        Group::Wasi => wasi::call(caller, name, a),
    }
}
