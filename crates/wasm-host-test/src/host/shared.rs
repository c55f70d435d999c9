//! Shared data (get/set with Envoy's CAS: ignored for a missing key) and shared queues
//! (register, resolve, enqueue, dequeue).

use super::memory::{arg, arg32, copy_to_pointer_size, mem, reply, write_u32, HostResult};
use super::state::HostState;
use crate::abi::status::{
    CAS_MISMATCH, EMPTY, INVALID_MEMORY_ACCESS, NOT_FOUND, OK, UNIMPLEMENTED,
};
use wasmi::Caller;

/// The shared-data and queue calls.
pub(super) fn call(caller: &mut Caller<'_, HostState>, name: &str, a: &[u64]) -> HostResult {
    match name {
        "proxy_get_shared_data" => {
            let key = mem!(caller, arg(a, 0), arg(a, 1));
            let Some((value, cas)) = caller.data().shared_data.get(&key).cloned() else {
                return reply(NOT_FOUND);
            };
            let r = copy_to_pointer_size(caller, &value, arg(a, 2), arg(a, 3))?;
            if r != OK {
                return reply(r);
            }
            reply(if write_u32(caller, arg(a, 4), cas) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_set_shared_data" => {
            let key = mem!(caller, arg(a, 0), arg(a, 1));
            let value = mem!(caller, arg(a, 2), arg(a, 3));
            let cas = arg32(a, 4);
            let st = caller.data_mut();
            let next = st.next_cas;
            st.next_cas = st.next_cas.wrapping_add(1).max(1);
            match st.shared_data.get_mut(&key) {
                Some(entry) => {
                    if cas != 0 && cas != entry.1 {
                        return reply(CAS_MISMATCH);
                    }
                    *entry = (value, next);
                }
                None => {
                    st.shared_data.insert(key, (value, next));
                }
            }
            reply(OK)
        }
        "proxy_register_shared_queue" => {
            let qname = mem!(caller, arg(a, 0), arg(a, 1));
            let st = caller.data_mut();
            let owner = st.active_context();
            let token = match st.queues.iter().find(|(_, (n, _))| *n == qname) {
                Some((t, _)) => *t,
                None => {
                    let t = st.queues.len() as u32 + 1;
                    st.queues.insert(t, (qname, Vec::new()));
                    t
                }
            };
            // Envoy: the last registrant is the one woken
            st.queue_owners.insert(token, owner);
            reply(if write_u32(caller, arg(a, 2), token) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_resolve_shared_queue" => {
            let _vm = mem!(caller, arg(a, 0), arg(a, 1));
            let qname = mem!(caller, arg(a, 2), arg(a, 3));
            let found = caller
                .data()
                .queues
                .iter()
                .find(|(_, (n, _))| *n == qname)
                .map(|(t, _)| *t);
            match found {
                None => reply(NOT_FOUND),
                Some(t) => reply(if write_u32(caller, arg(a, 4), t) {
                    OK
                } else {
                    INVALID_MEMORY_ACCESS
                }),
            }
        }
        "proxy_enqueue_shared_queue" => {
            let data = mem!(caller, arg(a, 1), arg(a, 2));
            match caller.data_mut().queues.get_mut(&arg32(a, 0)) {
                None => reply(NOT_FOUND),
                Some((_, items)) => {
                    items.push(data);
                    let token = arg32(a, 0);
                    caller.data_mut().queue_ready.push(token);
                    reply(OK)
                }
            }
        }
        "proxy_dequeue_shared_queue" => {
            let item = match caller.data_mut().queues.get_mut(&arg32(a, 0)) {
                None => return reply(NOT_FOUND),
                Some((_, items)) if items.is_empty() => return reply(EMPTY),
                Some((_, items)) => items.remove(0),
            };
            copy_to_pointer_size(caller, &item, arg(a, 1), arg(a, 2)).map(Some)
        }
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
