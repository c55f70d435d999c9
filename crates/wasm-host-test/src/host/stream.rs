//! Stream control: continuing and closing streams, clearing the route cache, and
//! `proxy_send_local_response` ([`LocalResponse`], the reply the guest sends itself).

use super::memory::{arg, arg32, mem, reply, HostResult};
use super::state::HostState;
use crate::abi::{
    self,
    status::{BAD_ARGUMENT, NOT_FOUND, OK, UNIMPLEMENTED},
    Pairs,
};
use wasmi::Caller;

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

/// The stream-control calls; `ctx`: the context the call acts on.
pub(super) fn call(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    a: &[u64],
    ctx: u32,
) -> HostResult {
    match name {
        "proxy_continue_stream" | "proxy_close_stream" => {
            let t = arg32(a, 0);
            if t > abi::stream_type::MAX {
                return reply(BAD_ARGUMENT);
            }
            let Some(stream) = caller.data_mut().streams.get_mut(&ctx) else {
                return reply(NOT_FOUND);
            };
            if name == "proxy_continue_stream" {
                stream.continued.push(t);
            } else {
                stream.closed.push(t);
            }
            reply(OK)
        }
        "proxy_continue_request" | "proxy_continue_response" => {
            let t = if name == "proxy_continue_request" {
                abi::stream_type::HTTP_REQUEST
            } else {
                abi::stream_type::HTTP_RESPONSE
            };
            let Some(stream) = caller.data_mut().streams.get_mut(&ctx) else {
                return reply(NOT_FOUND);
            };
            stream.continued.push(t);
            reply(OK)
        }
        "proxy_clear_route_cache" => {
            if let Some(stream) = caller.data_mut().streams.get_mut(&ctx) {
                stream.route_cache_cleared = true;
            }
            reply(OK)
        }
        "proxy_send_local_response" => {
            let details = mem!(caller, arg(a, 1), arg(a, 2));
            let body = mem!(caller, arg(a, 3), arg(a, 4));
            let headers = mem!(caller, arg(a, 5), arg(a, 6));
            let resp = LocalResponse {
                status: arg32(a, 0),
                details,
                body,
                headers: abi::parse_pairs(&headers),
                grpc_status: arg32(a, 7) as i32,
            };
            let Some(stream) = caller.data_mut().streams.get_mut(&ctx) else {
                return reply(NOT_FOUND);
            };
            // Envoy sends the first; a second one on the same stream is ignored
            if stream.local_response.is_none() {
                stream.local_response = Some(resp);
            }
            reply(OK)
        }
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
