//! Logging and the VM-wide calls: `proxy_log`, the log level, the clock, the tick period,
//! `proxy_done`, `proxy_set_effective_context`, `proxy_get_status` and foreign functions
//! (answered in `foreign.rs`).

use super::foreign;
use super::memory::{
    arg, arg32, copy_to_pointer_size, mem, reply, write_u32, write_u64, HostResult,
};
use super::state::HostState;
use crate::abi::status::{BAD_ARGUMENT, INVALID_MEMORY_ACCESS, OK, UNIMPLEMENTED};
use wasmi::Caller;

/// A `proxy_log` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: u32,
    pub message: String,
    pub context: u32,
}

/// The general calls; `ctx`: the context the call acts on.
pub(super) fn call(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    a: &[u64],
    ctx: u32,
) -> HostResult {
    match name {
        "proxy_log" => {
            let msg = mem!(caller, arg(a, 1), arg(a, 2));
            caller.data_mut().logs.push(LogEntry {
                level: arg32(a, 0),
                message: String::from_utf8_lossy(&msg).into_owned(),
                context: ctx,
            });
            reply(OK)
        }
        "proxy_get_log_level" => {
            let lvl = caller.data().log_level;
            reply(if write_u32(caller, arg(a, 0), lvl) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_get_current_time_nanoseconds" => {
            let now = caller.data().now_nanos;
            reply(if write_u64(caller, arg(a, 0), now) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_set_tick_period_milliseconds" => {
            caller.data_mut().tick_period_ms = Some(arg32(a, 0));
            reply(OK)
        }
        "proxy_done" => {
            caller.data_mut().done_called += 1;
            reply(OK)
        }
        "proxy_set_effective_context" => {
            let id = arg32(a, 0);
            let st = caller.data();
            if st.root_contexts.contains(&id) || st.streams.contains_key(&id) {
                caller.data_mut().effective_context = id;
                reply(OK)
            } else {
                reply(BAD_ARGUMENT)
            }
        }
        "proxy_get_status" => {
            if !write_u32(caller, arg(a, 0), 0) {
                return reply(INVALID_MEMORY_ACCESS);
            }
            copy_to_pointer_size(caller, b"", arg(a, 1), arg(a, 2)).map(Some)
        }
        "proxy_call_foreign_function" => foreign::call(caller, a),
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
