//! gRPC streams as Envoy (`source/extensions/common/wasm/context.cc`) offers them:
//! `proxy_grpc_stream` opens a [`GrpcStream`] owned by the calling (effective) context,
//! `proxy_grpc_send` records a message on it, `proxy_grpc_close` half-closes it and
//! `proxy_grpc_cancel` resets it (no close callback follows). The test plays the service:
//! [`crate::Vm::grpc_receive`] and [`crate::Vm::grpc_close`] deliver its messages and the end of
//! the stream.
//!
//! The target is a serialized `envoy.config.core.v3.GrpcService` or, when the bytes do not
//! parse as one, a cluster name. Like Envoy: a name that is no cluster (without
//! [`HostState::grpc_clusters`], every non-empty name without control bytes is one) is
//! ParseFailure — the answer to dpop_guard's
//! configure-time probe (`\x7f…`, an invalid wire type) — and a GrpcService naming a cluster
//! that does not exist is InternalFailure (the stream resets as it starts); nothing is opened.

use super::memory::{arg, arg32, mem, reply, write_u32, HostResult};
use super::state::HostState;
use crate::abi::status::{
    BAD_ARGUMENT, INTERNAL_FAILURE, INVALID_MEMORY_ACCESS, NOT_FOUND, OK, PARSE_FAILURE,
    UNIMPLEMENTED,
};
use wasmi::Caller;

/// Where a gRPC stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcStreamState {
    Open,
    /// The guest half-closed it (`proxy_grpc_close`, or a send with `end_stream`): the service
    /// may still answer.
    HalfClosed,
    /// The guest reset it (`proxy_grpc_cancel`).
    Cancelled,
    /// The service ended it ([`crate::Vm::grpc_close`]) with this gRPC status.
    Closed(u32),
}

/// A stream the guest opened with `proxy_grpc_stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStream {
    pub token: u32,
    /// The context that owns it (the effective context of the call): only it may send on,
    /// close or cancel the stream, and its callbacks go to it.
    pub context: u32,
    /// The target bytes as the guest passed them.
    pub target: Vec<u8>,
    /// The cluster it goes to (from the GrpcService, else the target itself).
    pub cluster: Vec<u8>,
    /// `envoy_grpc.authority` of a GrpcService target.
    pub authority: Option<Vec<u8>>,
    pub service: Vec<u8>,
    pub method: Vec<u8>,
    pub initial_metadata: Vec<u8>,
    /// Messages sent on it, in order (without the gRPC frame Envoy adds).
    pub messages: Vec<Vec<u8>>,
    pub state: GrpcStreamState,
}

impl GrpcStream {
    /// Message `i` as text (for assertions).
    pub fn message_text(&self, i: usize) -> Option<String> {
        self.messages
            .get(i)
            .map(|m| String::from_utf8_lossy(m).into_owned())
    }
}

impl HostState {
    /// The stream with this token, if the guest ever opened it.
    pub fn grpc_stream(&self, token: u32) -> Option<&GrpcStream> {
        self.grpc_streams.iter().find(|s| s.token == token)
    }

    /// The streams not cancelled, closed by the service or half-closed.
    pub fn open_grpc_streams(&self) -> Vec<&GrpcStream> {
        self.grpc_streams
            .iter()
            .filter(|s| s.state == GrpcStreamState::Open)
            .collect()
    }

    fn grpc_stream_mut(&mut self, token: u32, ctx: u32) -> Option<&mut GrpcStream> {
        self.grpc_streams
            .iter_mut()
            .find(|s| s.token == token && s.context == ctx)
    }

    /// Without [`HostState::grpc_clusters`], any name is a cluster but an empty one or one
    /// with control bytes (no configuration declares those; dpop_guard's probe starts with 0x7f).
    fn known_cluster(&self, name: &[u8]) -> bool {
        match &self.grpc_clusters {
            Some(known) => known.iter().any(|c| c == name),
            None => !name.is_empty() && !name.iter().any(|b| b.is_ascii_control()),
        }
    }
}

/// One protobuf field: its number, and its payload when it is length-delimited.
struct Field {
    number: u64,
    bytes: Option<Vec<u8>>,
}

/// The next field of `b`: `None` at the end of the input, `Some(Err)` for bytes that are not
/// protobuf wire format.
fn field(b: &mut &[u8]) -> Option<Result<Field, ()>> {
    fn varint(b: &mut &[u8]) -> Result<u64, ()> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or(())?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(())
    }
    fn take(b: &mut &[u8], n: usize) -> Result<Vec<u8>, ()> {
        let taken = b.get(..n).ok_or(())?.to_vec();
        *b = b.get(n..).ok_or(())?;
        Ok(taken)
    }
    if b.is_empty() {
        return None;
    }
    Some((|| {
        let key = varint(b)?;
        let number = key >> 3;
        if number == 0 {
            return Err(());
        }
        let bytes = match key & 7 {
            0 => varint(b).map(|_| None)?,
            1 => take(b, 8).map(|_| None)?,
            2 => {
                let n = usize::try_from(varint(b)?).map_err(|_| ())?;
                Some(take(b, n)?)
            }
            5 => take(b, 4).map(|_| None)?,
            // groups (3, 4) are not in GrpcService; 6 and 7 are no wire type
            _ => return Err(()),
        };
        Ok(Field { number, bytes })
    })())
}

/// `envoy_grpc` of a GrpcService.
#[derive(Debug, Default, PartialEq, Eq)]
struct EnvoyGrpc {
    cluster: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
}

/// `envoy_grpc` when `bytes` parse as a GrpcService (`None`: they do not, so Envoy takes them
/// as a cluster name).
fn parse_grpc_service(bytes: &[u8]) -> Option<EnvoyGrpc> {
    let mut out = EnvoyGrpc::default();
    let mut b = bytes;
    while let Some(f) = field(&mut b) {
        let f = f.ok()?;
        if f.number != 1 {
            continue;
        }
        // envoy_grpc: a message
        let inner = f.bytes?;
        let mut i = inner.as_slice();
        while let Some(f) = field(&mut i) {
            let f = f.ok()?;
            if f.number == 1 || f.number == 2 {
                // strings: length-delimited UTF-8
                let s = f.bytes?;
                std::str::from_utf8(&s).ok()?;
                if f.number == 1 {
                    out.cluster = Some(s);
                } else {
                    out.authority = Some(s);
                }
            }
        }
    }
    Some(out)
}

/// The gRPC stream calls (`proxy_grpc_call`: no unary calls here); `ctx`: the context the call
/// acts on (the effective context).
pub(super) fn call(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    a: &[u64],
    ctx: u32,
) -> HostResult {
    match name {
        "proxy_grpc_call" => reply(BAD_ARGUMENT),
        "proxy_grpc_stream" => {
            let target = mem!(caller, arg(a, 0), arg(a, 1));
            let service = mem!(caller, arg(a, 2), arg(a, 3));
            let method = mem!(caller, arg(a, 4), arg(a, 5));
            let initial_metadata = mem!(caller, arg(a, 6), arg(a, 7));
            if !write_u32(caller, arg(a, 8), 0) {
                return reply(INVALID_MEMORY_ACCESS);
            }
            let st = caller.data_mut();
            if let Some(status) = st.grpc_stream_status {
                return reply(status);
            }
            let (cluster, authority) = match parse_grpc_service(&target) {
                Some(EnvoyGrpc {
                    cluster: Some(cluster),
                    authority,
                }) => {
                    if !st.known_cluster(&cluster) {
                        return reply(INTERNAL_FAILURE);
                    }
                    (cluster, authority)
                }
                // a GrpcService without a cluster: no client can be made for it
                Some(EnvoyGrpc { cluster: None, .. }) => return reply(PARSE_FAILURE),
                None if st.known_cluster(&target) => (target.clone(), None),
                None => return reply(PARSE_FAILURE),
            };
            let token = st.next_token;
            st.next_token += 1;
            st.grpc_streams.push(GrpcStream {
                token,
                context: ctx,
                target,
                cluster,
                authority,
                service,
                method,
                initial_metadata,
                messages: Vec::new(),
                state: GrpcStreamState::Open,
            });
            if !write_u32(caller, arg(a, 8), token) {
                return reply(INVALID_MEMORY_ACCESS);
            }
            reply(OK)
        }
        "proxy_grpc_send" => {
            let message = mem!(caller, arg(a, 1), arg(a, 2));
            let end_stream = arg32(a, 3) != 0;
            let st = caller.data_mut();
            match st.grpc_stream_mut(arg32(a, 0), ctx) {
                Some(s) if s.state == GrpcStreamState::Open => {
                    s.messages.push(message);
                    if end_stream {
                        s.state = GrpcStreamState::HalfClosed;
                    }
                    reply(OK)
                }
                _ => reply(NOT_FOUND),
            }
        }
        "proxy_grpc_close" | "proxy_grpc_cancel" => {
            let st = caller.data_mut();
            let Some(s) = st.grpc_stream_mut(arg32(a, 0), ctx) else {
                return reply(NOT_FOUND);
            };
            match (s.state, name) {
                (GrpcStreamState::Open | GrpcStreamState::HalfClosed, "proxy_grpc_close") => {
                    s.state = GrpcStreamState::HalfClosed;
                    reply(OK)
                }
                (GrpcStreamState::Open | GrpcStreamState::HalfClosed, _) => {
                    s.state = GrpcStreamState::Cancelled;
                    reply(OK)
                }
                // Envoy forgets a stream once it is reset or over
                _ => reply(NOT_FOUND),
            }
        }
        // not reached: `callouts` routes only these names here
        _ => reply(UNIMPLEMENTED),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_grpc_service, EnvoyGrpc};

    #[test]
    fn targets() {
        // envoy_grpc { cluster_name: "replay" authority: "dpop-replay" }
        let t = b"\x0a\x15\x0a\x06replay\x12\x0bdpop-replay";
        assert_eq!(
            parse_grpc_service(t),
            Some(EnvoyGrpc {
                cluster: Some(b"replay".to_vec()),
                authority: Some(b"dpop-replay".to_vec())
            })
        );
        // dpop_guard's probe: wire type 7
        assert_eq!(parse_grpc_service(b"\x7fdpop_guard.no_such_cluster"), None);
        // bare cluster names
        for name in [
            &b"dpop_replay"[..],
            b"replay",
            b"outbound|9000||dpop-replay",
        ] {
            assert_eq!(parse_grpc_service(name), None, "{name:?}");
        }
        // a truncated GrpcService
        assert_eq!(parse_grpc_service(&t[..10]), None);
        // an empty one parses (without a cluster)
        assert_eq!(parse_grpc_service(b""), Some(EnvoyGrpc::default()));
    }
}
