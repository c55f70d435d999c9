//! The streaming check (`replay_wire::stream`): one long-lived gRPC bidirectional stream per
//! proxy worker, `POST /dpop.replay.v1.Replay/Check` over HTTP/2.
//!
//! Framing is gRPC's (each message: a 0 compressed-flag byte, a 4-byte big-endian length, the
//! payload); the payloads are JSON, not protobuf:
//!
//! - request message: `{"id":<u32>,"entries":[{"key":"<key>","ttl":<secs>},...]}`;
//! - answer message: `{"id":<same id>,"results":[201|409|400|503,...]}`, one per request
//!   message, in any order (the id correlates).
//!
//! Each message means what a `POST /v1/replay/batch` body means (the checks are the shared
//! [`check_batch`]): one code per entry, in order; a store failure makes every entry of that
//! message 503 and the stream stays open (the next message is checked as usual); entries of
//! another shape or count than the batch endpoint takes (its whole-body 400) are answered with
//! an empty `results` list.
//!
//! The stream ends with trailers: `grpc-status: 0` once the client has half-closed and every
//! message is answered; `grpc-status: 3` plus `grpc-message` for a malformed frame (compressed
//! flag set, length over [`MAX_MESSAGE`], stream ending inside a message) or a message that is
//! not a JSON object with a u32 `id` (that message gets no answer; messages already started
//! are answered first, no further message is read); `grpc-status: 14` when the server shuts
//! down (started messages answered first, unread ones never).
//!
//! A request whose `content-type` is not `application/grpc` or `application/grpc+<subtype>`
//! gets HTTP 415 without reading its body: what the gRPC over HTTP/2 spec asks of a server,
//! and plainly visible (no trailers) to a misconfigured client.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Buf, BufMut, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use replay_wire::stream::{reply, MAX_MESSAGE};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::ReplayBackend;
use crate::metrics::{Metrics, Outcome};
use crate::server::{check_batch, AppState, BatchEntry, BatchVerdict};

/// The route: `/<replay_wire::stream::SERVICE>/<replay_wire::stream::METHOD>`.
pub const CHECK_PATH: &str = "/dpop.replay.v1.Replay/Check";

/// Messages of one stream being checked at once. When all are busy the stream is not read
/// further (HTTP/2 flow control then holds the client back).
pub const MAX_IN_FLIGHT: usize = 64;

/// Answer frames buffered between the stream's task and the connection.
const ANSWER_BUFFER: usize = 64;

/// The gRPC message prefix: compressed flag and length.
const PREFIX_LEN: usize = 5;

const GRPC: &str = "application/grpc";

/// `application/grpc`, `application/grpc+<subtype>` (or with `;` parameters).
fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (Some(mime), Some(rest)) = (ct.get(..GRPC.len()), ct.get(GRPC.len()..)) else {
        return false;
    };
    mime.eq_ignore_ascii_case(GRPC) && (rest.is_empty() || rest.starts_with(['+', ';']))
}

/// `POST /dpop.replay.v1.Replay/Check`: answers at once with 200 and a streaming body; a task
/// reads the request messages and writes the answers as they are ready.
pub async fn check<B: ReplayBackend>(State(st): State<Arc<AppState<B>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if !is_grpc(&parts.headers) {
        let mut res = Response::new(Body::from("content-type must be application/grpc\n"));
        *res.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let h = res.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return res;
    }
    let (tx, rx) = mpsc::channel(ANSWER_BUFFER);
    tokio::spawn(drive(st, body, tx));
    let mut res = Response::new(Body::new(Answers { rx }));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(GRPC));
    res
}

/// The response body: the frames the stream's task sends, each answer its own DATA frame
/// (hyper writes each as it comes; nothing waits for the end of the stream).
struct Answers {
    rx: mpsc::Receiver<Frame<Bytes>>,
}

impl HttpBody for Answers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().rx.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// Reassembles gRPC messages from DATA frames of any size.
#[derive(Default)]
struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next complete message's payload, `None` until one is complete, or why the stream
    /// is malformed.
    fn next_message(&mut self) -> Result<Option<Bytes>, &'static str> {
        if self.buf.first().is_some_and(|flag| *flag != 0) {
            return Err("compressed messages are not supported");
        }
        let mut prefix = [0u8; PREFIX_LEN];
        match self.buf.get(..PREFIX_LEN) {
            Some(p) => prefix.copy_from_slice(p),
            None => return Ok(None),
        }
        let [_, len @ ..] = prefix;
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_MESSAGE {
            return Err("message larger than 65536 bytes");
        }
        if self.buf.len() - PREFIX_LEN < len {
            return Ok(None);
        }
        self.buf.advance(PREFIX_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// One gRPC message: prefix and payload.
fn message(payload: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_LEN + payload.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(payload.as_bytes());
    out.freeze()
}

fn trailers(status: &'static str, message: Option<&'static str>) -> Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static(status));
    if let Some(m) = message {
        // fixed ASCII texts without '%': nothing to percent-encode
        t.insert("grpc-message", HeaderValue::from_static(m));
    }
    Frame::trailers(t)
}

/// Why a stream stops taking messages before the client half-closes.
#[derive(Clone, Copy)]
enum Stop {
    /// Malformed frame or message: `grpc-status: 3`.
    Invalid(&'static str),
    /// Graceful shutdown: `grpc-status: 14`.
    Shutdown,
    /// A check task died (cannot happen without a panic): `grpc-status: 13`.
    Internal,
}

impl Stop {
    fn trailers(self) -> Frame<Bytes> {
        match self {
            Self::Invalid(why) => trailers("3", Some(why)),
            Self::Shutdown => trailers("14", Some("server shutting down")),
            Self::Internal => trailers("13", Some("internal error")),
        }
    }
}

/// Counts the stream open for as long as its task runs.
struct OpenStream<'a>(&'a Metrics);

impl<'a> OpenStream<'a> {
    fn new(m: &'a Metrics) -> Self {
        m.grpc_stream_opened();
        Self(m)
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.grpc_stream_closed();
    }
}

/// The stream's task: reads frames as they arrive, checks up to [`MAX_IN_FLIGHT`] messages at
/// once, sends each answer when it is ready, ends with trailers (see the module comment).
/// Returns early, sending nothing more, when the client is gone (request body error or
/// response body dropped: a reset stream or a closed connection).
async fn drive<B: ReplayBackend>(
    st: Arc<AppState<B>>,
    mut body: Body,
    tx: mpsc::Sender<Frame<Bytes>>,
) {
    let open = OpenStream::new(&st.metrics);
    let mut closing = st.closing();
    let mut frames = Deframer::default();
    let mut in_flight: JoinSet<Result<Bytes, &'static str>> = JoinSet::new();
    // the client has not half-closed yet
    let mut reading = true;
    let mut stop: Option<Stop> = None;
    if *closing.borrow_and_update() {
        stop = Some(Stop::Shutdown);
    }
    loop {
        while stop.is_none() && in_flight.len() < MAX_IN_FLIGHT {
            match frames.next_message() {
                Ok(Some(payload)) => {
                    st.metrics.grpc_message();
                    in_flight.spawn(answer(st.clone(), payload));
                }
                Ok(None) => {
                    if !reading && !frames.is_empty() {
                        stop = Some(Stop::Invalid("stream ended inside a message"));
                    }
                    break;
                }
                Err(why) => stop = Some(Stop::Invalid(why)),
            }
        }
        if in_flight.is_empty() {
            let end = match stop {
                Some(s) => Some(s.trailers()),
                None if !reading => Some(trailers("0", None)),
                None => None,
            };
            if let Some(end) = end {
                drop(open); // not open any more once the client can see the end
                let _ = tx.send(end).await;
                return;
            }
        }
        // Read only with a free slot: then every complete message is already started.
        let read = reading && stop.is_none() && in_flight.len() < MAX_IN_FLIGHT;
        tokio::select! {
            biased;
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => match done {
                Ok(Ok(answer)) => {
                    if tx.send(Frame::data(answer)).await.is_err() {
                        return;
                    }
                }
                Ok(Err(why)) => {
                    stop.get_or_insert(Stop::Invalid(why));
                }
                Err(_) => {
                    stop.get_or_insert(Stop::Internal);
                }
            },
            frame = body.frame(), if read => match frame {
                None => reading = false,
                Some(Ok(f)) => {
                    if let Some(data) = f.data_ref() {
                        frames.push(data);
                    } // request trailers: nothing in them for us
                }
                Some(Err(_)) => return,
            },
            _ = closing.changed(), if stop.is_none() => stop = Some(Stop::Shutdown),
            () = tx.closed() => return,
        }
    }
}

/// A request message. Unknown fields are refused like in a batch body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckMessage<'a> {
    id: u32,
    #[serde(borrow)]
    entries: Vec<BatchEntry<'a>>,
}

/// Just the id, when the whole message does not parse: is it still answerable?
#[derive(Deserialize)]
struct MessageId {
    id: u32,
}

const NOT_A_MESSAGE: &str = "message is not a JSON object with a u32 id";

/// Checks one message; its answer as a framed gRPC message, or why the stream must end.
async fn answer<B: ReplayBackend>(
    st: Arc<AppState<B>>,
    payload: Bytes,
) -> Result<Bytes, &'static str> {
    // serde's derive would also take a JSON array as the struct: demand an object.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(NOT_A_MESSAGE);
    }
    let (id, codes) = match serde_json::from_slice::<CheckMessage<'_>>(&payload) {
        Ok(m) => {
            let codes = match check_batch(&st, &m.entries).await {
                BatchVerdict::Results(codes) => codes,
                BatchVerdict::Refused => Vec::new(),
                BatchVerdict::Unavailable => {
                    vec![replay_wire::status::UNAVAILABLE; m.entries.len()]
                }
            };
            (m.id, codes)
        }
        Err(_) => {
            // Answerable, but not a batch: what the batch endpoint refuses whole with a 400.
            let m: MessageId = serde_json::from_slice(&payload).map_err(|_| NOT_A_MESSAGE)?;
            st.metrics.count(Outcome::BadRequest);
            (m.id, Vec::new())
        }
    };
    Ok(message(&reply(id, &codes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn path_is_the_wire_contracts() {
        use replay_wire::stream::{METHOD, SERVICE};
        assert_eq!(CHECK_PATH, format!("/{SERVICE}/{METHOD}"));
    }

    #[test]
    fn content_types() {
        let ct = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            is_grpc(&h)
        };
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
        ] {
            assert!(ct(ok), "{ok}");
        }
        for bad in [
            "application/json",
            "application/grpcx",
            "application/grpc-web",
            "application/gr",
            "",
        ] {
            assert!(!ct(bad), "{bad}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn deframes_across_and_within_frames() {
        let (a, b) = (message("{\"a\":1}"), message("{\"b\":22}"));
        let mut all = a.to_vec();
        all.extend_from_slice(&b);
        // byte by byte
        let mut d = Deframer::default();
        let mut got = Vec::new();
        for byte in &all {
            d.push(&[*byte]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![&a[5..], &b[5..]]);
        assert!(d.is_empty());
        // both in one frame
        d.push(&all);
        assert_eq!(d.next_message().unwrap().unwrap(), &a[5..]);
        assert_eq!(d.next_message().unwrap().unwrap(), &b[5..]);
        assert_eq!(d.next_message().unwrap(), None);
        // an empty message is a message
        d.push(&[0, 0, 0, 0, 0]);
        assert_eq!(d.next_message().unwrap().unwrap(), Bytes::new());
    }

    #[test]
    fn refuses_compressed_and_oversized() {
        let mut d = Deframer::default();
        d.push(&[1]);
        assert!(d.next_message().is_err());
        let mut d = Deframer::default();
        let len = u32::try_from(MAX_MESSAGE + 1).unwrap().to_be_bytes();
        d.push(&[0, len[0], len[1], len[2], len[3]]);
        assert!(d.next_message().is_err());
        let mut d = Deframer::default();
        let len = u32::try_from(MAX_MESSAGE).unwrap().to_be_bytes();
        d.push(&[0, len[0], len[1], len[2], len[3]]);
        assert_eq!(d.next_message().unwrap(), None);
    }
}
