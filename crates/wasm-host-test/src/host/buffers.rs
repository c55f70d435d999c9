//! Buffers: the VM and plugin configurations, the stream bodies, the callout response body and
//! the gRPC message being delivered
//! (`proxy_get_buffer_bytes`, `proxy_get_buffer_status`, `proxy_set_buffer_bytes`).

use super::memory::{arg, arg32, copy_to_pointer_size, mem, reply, write_u32, HostResult};
use super::state::HostState;
use crate::abi::{
    self,
    status::{BAD_ARGUMENT, INVALID_MEMORY_ACCESS, NOT_FOUND, OK, UNIMPLEMENTED},
};
use wasmi::Caller;

impl HostState {
    /// The buffer of type `kind` for reading, if it exists now.
    fn buffer(&self, kind: u32) -> Option<Vec<u8>> {
        use abi::buffer_type as B;
        match kind {
            B::VM_CONFIGURATION => Some(self.vm_configuration.clone()),
            B::PLUGIN_CONFIGURATION => Some(self.plugin_configuration.clone()),
            B::HTTP_CALL_RESPONSE_BODY => self.callout_response.as_ref().map(|r| r.body.clone()),
            B::GRPC_RECEIVE_BUFFER => self.grpc_receive.clone(),
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

/// The buffer calls.
pub(super) fn call(caller: &mut Caller<'_, HostState>, name: &str, a: &[u64]) -> HostResult {
    match name {
        "proxy_get_buffer_bytes" => {
            if arg32(a, 0) > abi::buffer_type::MAX {
                return reply(BAD_ARGUMENT);
            }
            let Some(buf) = caller.data().buffer(arg32(a, 0)) else {
                return reply(NOT_FOUND);
            };
            let (start, mut len) = (arg(a, 1) as u32 as usize, arg(a, 2) as u32 as usize);
            if start.checked_add(len).is_none() {
                return reply(BAD_ARGUMENT);
            }
            if start > buf.len() {
                len = 0;
            } else if start + len > buf.len() {
                len = buf.len() - start;
            }
            let bytes = buf.get(start..start + len).unwrap_or_default().to_vec();
            if bytes.is_empty() {
                if !write_u32(caller, arg(a, 3), 0) || !write_u32(caller, arg(a, 4), 0) {
                    return reply(INVALID_MEMORY_ACCESS);
                }
                return reply(OK);
            }
            copy_to_pointer_size(caller, &bytes, arg(a, 3), arg(a, 4)).map(Some)
        }
        "proxy_get_buffer_status" => {
            let Some(buf) = caller.data().buffer(arg32(a, 0)) else {
                return reply(NOT_FOUND);
            };
            if !write_u32(caller, arg(a, 1), buf.len() as u32) || !write_u32(caller, arg(a, 2), 0) {
                return reply(INVALID_MEMORY_ACCESS);
            }
            reply(OK)
        }
        "proxy_set_buffer_bytes" => {
            let data = mem!(caller, arg(a, 3), arg(a, 4));
            let kind = arg32(a, 0);
            let st = caller.data_mut();
            let ctx = st.active_context();
            let Some(stream) = st.streams.get_mut(&ctx) else {
                return reply(NOT_FOUND);
            };
            let buf = match kind {
                abi::buffer_type::HTTP_REQUEST_BODY => &mut stream.request_body,
                abi::buffer_type::HTTP_RESPONSE_BODY => &mut stream.response_body,
                _ => return reply(NOT_FOUND),
            };
            let start = (arg32(a, 1) as usize).min(buf.len());
            let end = start.saturating_add(arg32(a, 2) as usize).min(buf.len());
            buf.splice(start..end, data);
            reply(OK)
        }
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
