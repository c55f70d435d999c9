//! Callouts: `proxy_http_call` ([`HttpCall`], recorded and left pending until the test
//! answers it with a [`CalloutResponse`]) and the gRPC calls (streams: `grpc.rs`).

use super::grpc;
use super::memory::{arg, arg32, mem, reply, write_u32, HostResult};
use super::state::HostState;
use crate::abi::{
    self,
    status::{INVALID_MEMORY_ACCESS, OK, UNIMPLEMENTED},
    Pairs,
};
use wasmi::Caller;

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

/// The response to an HTTP callout, while `proxy_on_http_call_response` runs.
#[derive(Debug, Clone, Default)]
pub struct CalloutResponse {
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
}

/// The callout calls; `ctx`: the context that dispatches.
pub(super) fn call(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    a: &[u64],
    ctx: u32,
) -> HostResult {
    match name {
        "proxy_http_call" => {
            let cluster = mem!(caller, arg(a, 0), arg(a, 1));
            let headers = mem!(caller, arg(a, 2), arg(a, 3));
            let body = mem!(caller, arg(a, 4), arg(a, 5));
            let trailers = mem!(caller, arg(a, 6), arg(a, 7));
            if !write_u32(caller, arg(a, 9), 0) {
                return reply(INVALID_MEMORY_ACCESS);
            }
            let st = caller.data_mut();
            if st.http_call_status != OK {
                return reply(st.http_call_status);
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
            reply(OK)
        }
        "proxy_grpc_call" | "proxy_grpc_stream" | "proxy_grpc_send" | "proxy_grpc_cancel"
        | "proxy_grpc_close" => grpc::call(caller, name, a, ctx),
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
