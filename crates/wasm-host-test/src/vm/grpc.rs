//! The service side of the gRPC streams the guest opened ([`crate::GrpcStream`]): a message
//! (`proxy_on_grpc_receive`, the payload readable as the GrpcReceiveBuffer during the call) and
//! the end of a stream (`proxy_on_grpc_close`), each delivered to the stream's owner context as
//! Envoy does.

use super::{Trap, Vm};
use crate::host::{CallRecord, GrpcStreamState};

impl Vm {
    /// The context stream `token` belongs to (the root when the token is unknown).
    fn grpc_owner(&self, token: u32) -> u32 {
        self.host()
            .grpc_stream(token)
            .map_or(self.root, |s| s.context)
    }

    fn calls_since(&self, mark: usize) -> Vec<CallRecord> {
        self.host().calls.get(mark..).unwrap_or_default().to_vec()
    }

    /// The service sends `message` on stream `token`: `proxy_on_grpc_receive(owner, token,
    /// size)`. Returns the host calls the guest made meanwhile. Delivered whatever the stream's
    /// state (Envoy delivers nothing on a stream reset or over; tests may check the guest copes).
    pub fn grpc_receive(&mut self, token: u32, message: &[u8]) -> Result<Vec<CallRecord>, Trap> {
        let owner = self.grpc_owner(token);
        let mark = self.host().calls.len();
        self.host_mut().grpc_receive = Some(message.to_vec());
        let r = self.call_in(
            owner,
            "proxy_on_grpc_receive",
            &[owner as i32, token as i32, message.len() as i32],
        );
        self.host_mut().grpc_receive = None;
        r?;
        Ok(self.calls_since(mark))
    }

    /// The service (or the connection) ends stream `token` with gRPC status `status` (0 OK,
    /// 14 UNAVAILABLE, …): `proxy_on_grpc_close(owner, token, status)`. Returns the host calls
    /// the guest made meanwhile.
    pub fn grpc_close(&mut self, token: u32, status: u32) -> Result<Vec<CallRecord>, Trap> {
        let owner = self.grpc_owner(token);
        let mark = self.host().calls.len();
        if let Some(s) = self
            .host_mut()
            .grpc_streams
            .iter_mut()
            .find(|s| s.token == token)
        {
            s.state = GrpcStreamState::Closed(status);
        }
        self.call_in(
            owner,
            "proxy_on_grpc_close",
            &[owner as i32, token as i32, status as i32],
        )?;
        Ok(self.calls_since(mark))
    }
}
