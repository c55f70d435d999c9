//! Metrics: [`Metric`] definitions (counter ids 4, 8, 12, …, as Envoy numbers them), the
//! define/increment/record/get calls, and [`HostState::metric`] for tests.

use super::memory::{arg, arg32, mem, reply, write_u32, write_u64, HostResult};
use super::state::HostState;
use crate::abi::{
    self,
    status::{BAD_ARGUMENT, INVALID_MEMORY_ACCESS, NOT_FOUND, OK, UNIMPLEMENTED},
};
use wasmi::Caller;

#[derive(Debug, Clone)]
pub struct Metric {
    pub kind: u32,
    pub name: String,
}

impl HostState {
    /// A counter or gauge by name (0 when never incremented).
    pub fn metric(&self, name: &str) -> u64 {
        self.metric_values.get(name).copied().unwrap_or(0)
    }
}

/// The metric calls.
pub(super) fn call(caller: &mut Caller<'_, HostState>, name: &str, a: &[u64]) -> HostResult {
    match name {
        "proxy_define_metric" => {
            let kind = arg32(a, 0);
            let mname = mem!(caller, arg(a, 1), arg(a, 2));
            let st = caller.data_mut();
            let Some(next) = st.next_metric_id.get_mut(kind as usize) else {
                return reply(BAD_ARGUMENT);
            };
            *next += 4;
            let id = *next;
            let mname = String::from_utf8_lossy(&mname).into_owned();
            st.metric_values.entry(mname.clone()).or_insert(0);
            st.metric_defs.insert(id, Metric { kind, name: mname });
            reply(if write_u32(caller, arg(a, 3), id) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_increment_metric" | "proxy_record_metric" => {
            let st = caller.data_mut();
            let Some(m) = st.metric_defs.get(&arg32(a, 0)).cloned() else {
                return reply(NOT_FOUND);
            };
            let v = st.metric_values.entry(m.name).or_insert(0);
            let off = arg(a, 1) as i64;
            match (name, m.kind) {
                ("proxy_increment_metric", abi::metric_type::COUNTER) => {
                    if off <= 0 {
                        return reply(BAD_ARGUMENT);
                    }
                    *v = v.saturating_add(off as u64);
                }
                ("proxy_increment_metric", abi::metric_type::GAUGE) => {
                    *v = (*v as i64).saturating_add(off) as u64;
                }
                ("proxy_record_metric", abi::metric_type::COUNTER) => return reply(BAD_ARGUMENT),
                ("proxy_record_metric", _) => *v = off as u64,
                _ => return reply(BAD_ARGUMENT),
            }
            reply(OK)
        }
        "proxy_get_metric" => {
            let st = caller.data();
            let Some(m) = st.metric_defs.get(&arg32(a, 0)) else {
                return reply(NOT_FOUND);
            };
            let v = st.metric(&m.name);
            reply(if write_u64(caller, arg(a, 1), v) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
