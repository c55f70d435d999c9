//! The gRPC stream `POST /dpop.replay.v1.Replay/Check` (replay_wire::stream) over HTTP/2 prior
//! knowledge, as Envoy's gRPC client opens it: one long-lived stream, JSON batches as gRPC
//! messages, answers by id, the end in trailers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{get, metric, redis_required, RedisServer, Server};
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::HeaderMap;
use hyper_util::rt::{TokioExecutor, TokioIo};
use replay_wire::stream::{self, MAX_MESSAGE};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const PATH: &str = "/dpop.replay.v1.Replay/Check";
const WAIT: Duration = Duration::from_secs(5);

/// A request body the test writes into chunk by chunk: each chunk one DATA frame; dropping
/// the sender half-closes the stream.
struct Outgoing(mpsc::Receiver<Bytes>);

impl Body for Outgoing {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// A body of these bytes, then the end of the request.
fn fixed(bytes: Vec<u8>) -> Outgoing {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(Bytes::from(bytes)).unwrap();
    Outgoing(rx)
}

/// What the server sent next on the stream.
#[derive(Debug, PartialEq)]
enum Event {
    Answer(u32, Vec<u16>),
    /// The trailers: grpc-status and grpc-message (if any).
    End(String, Option<String>),
}

/// One open `Check` stream.
struct GrpcStream {
    tx: Option<mpsc::Sender<Bytes>>,
    body: Incoming,
    buf: Vec<u8>,
    _sender: hyper::client::conn::http2::SendRequest<Outgoing>,
}

/// A gRPC message: flag 0, big-endian length, payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn request(id: u32, entries: &[(&str, i64)]) -> Vec<u8> {
    frame(stream::request(id, entries.iter().copied()).as_bytes())
}

/// A valid key, unique per (tag, n), made like the filter makes them.
fn key(tag: &str, n: u64) -> String {
    replay_wire::replay_key("grpc-jkt", &format!("{tag}-{n}"))
}

async fn h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Outgoing> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

impl GrpcStream {
    async fn open(addr: SocketAddr) -> Self {
        let mut sender = h2(addr).await;
        let (tx, rx) = mpsc::channel(16);
        let req = hyper::Request::builder()
            .method("POST")
            .uri(format!("http://dpop-replay{PATH}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Outgoing(rx))
            .unwrap();
        // the response headers come at once, before any message
        let res = tokio::time::timeout(WAIT, sender.send_request(req))
            .await
            .expect("no response headers")
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/grpc");
        Self {
            tx: Some(tx),
            body: res.into_body(),
            buf: Vec::new(),
            _sender: sender,
        }
    }

    /// Writes these bytes as one DATA frame.
    async fn write(&self, bytes: Vec<u8>) {
        self.tx
            .as_ref()
            .expect("half-closed")
            .send(Bytes::from(bytes))
            .await
            .unwrap();
    }

    async fn send(&self, id: u32, entries: &[(&str, i64)]) {
        self.write(request(id, entries)).await;
    }

    fn half_close(&mut self) {
        self.tx = None;
    }

    /// The next answer message or the trailers.
    async fn next(&mut self) -> Event {
        loop {
            if self.buf.len() >= 5 {
                assert_eq!(self.buf[0], 0, "compressed answer");
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() >= 5 + len {
                    let payload: Vec<u8> = self.buf.drain(..5 + len).skip(5).collect();
                    let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                    let id = u32::try_from(v["id"].as_u64().unwrap()).unwrap();
                    let codes: Vec<u16> = v["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| u16::try_from(c.as_u64().unwrap()).unwrap())
                        .collect();
                    // what the filter reads back
                    let (rid, answers) = stream::read_reply(&payload).unwrap();
                    assert_eq!((rid, answers.len()), (id, codes.len()));
                    return Event::Answer(id, codes);
                }
            }
            let f = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("nothing from the server")
                .expect("stream ended without trailers")
                .unwrap();
            match f.into_data() {
                Ok(d) => self.buf.extend_from_slice(&d),
                Err(f) => {
                    let t: HeaderMap = f.into_trailers().unwrap();
                    assert!(self.buf.is_empty(), "trailers inside a message");
                    let get = |n: &str| t.get(n).map(|v| v.to_str().unwrap().to_owned());
                    return Event::End(get("grpc-status").unwrap(), get("grpc-message"));
                }
            }
        }
    }

    /// The next `n` answers, by id (they may come in any order).
    async fn answers(&mut self, n: usize) -> BTreeMap<u32, Vec<u16>> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            match self.next().await {
                Event::Answer(id, codes) => {
                    assert!(out.insert(id, codes).is_none(), "id {id} twice")
                }
                e => panic!("expected an answer, got {e:?}"),
            }
        }
        out
    }

    /// Expects the end of the stream with this status; returns the grpc-message.
    async fn end(&mut self, status: &str) -> Option<String> {
        match self.next().await {
            Event::End(s, m) => {
                assert_eq!(s, status, "grpc-message: {m:?}");
                m
            }
            e => panic!("expected the end, got {e:?}"),
        }
    }
}

fn answer(id: u32, codes: &[u16]) -> Event {
    Event::Answer(id, codes.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_answers_each_message_as_it_comes() {
    let srv = Server::start(&[]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    let (k1, k2) = (key("live", 1), key("live", 2));
    // answered while the request side is still open: each answer is flushed on its own
    s.send(1, &[(&k1, 60), (&k2, 60)]).await;
    assert_eq!(s.next().await, answer(1, &[201, 201]));
    s.send(2, &[(&k1, 60), ("dpop:jti:bad", 60)]).await;
    assert_eq!(s.next().await, answer(2, &[409, 400]));

    // two messages in one DATA frame
    let (k3, k4) = (key("live", 3), key("live", 4));
    let mut two = request(3, &[(&k3, 60)]);
    two.extend(request(4, &[(&k4, 60), (&k2, 60)]));
    s.write(two).await;
    let got = s.answers(2).await;
    assert_eq!(got[&3], vec![201]);
    assert_eq!(got[&4], vec![201, 409]);

    // one message over three DATA frames, cut inside the prefix and inside the JSON
    let k5 = key("live", 5);
    let msg = request(5, &[(&k5, 60), (&k1, 60)]);
    s.write(msg[..3].to_vec()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.write(msg[3..40].to_vec()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.write(msg[40..].to_vec()).await;
    assert_eq!(s.next().await, answer(5, &[201, 409]));

    // the tail of one message and the whole next one in one frame
    let (a, b) = (
        request(6, &[(&k5, 60)]),
        request(7, &[(&key("live", 7), 60)]),
    );
    s.write(a[..10].to_vec()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut rest = a[10..].to_vec();
    rest.extend(b);
    s.write(rest).await;
    let got = s.answers(2).await;
    assert_eq!((&got[&6], &got[&7]), (&vec![409], &vec![201]));

    // ttl rules of the batch endpoint, entry by entry
    let k8 = key("live", 8);
    s.send(8, &[(&k8, 0), (&k8, 86_401), (&k8, 1)]).await;
    assert_eq!(s.next().await, answer(8, &[400, 400, 201]));

    s.half_close();
    assert_eq!(s.end("0").await, None);

    let page = get(srv.addr, "/metrics").await.body;
    assert_eq!(metric(&page, "dpop_replay_grpc_streams_total"), 1.0);
    assert_eq!(metric(&page, "dpop_replay_grpc_streams_open"), 0.0);
    assert_eq!(metric(&page, "dpop_replay_grpc_messages_total"), 8.0);
    assert_eq!(metric(&page, "dpop_replay_batches_total"), 8.0);
    assert_eq!(
        metric(&page, "dpop_replay_checks_total{result=\"fresh\"}"),
        7.0
    );
    assert_eq!(
        metric(&page, "dpop_replay_checks_total{result=\"replay\"}"),
        4.0
    );
    assert_eq!(
        metric(&page, "dpop_replay_checks_total{result=\"bad_request\"}"),
        3.0
    );
    srv.stop().await;
}

/// Messages are checked concurrently and answered by id; a key sent in many concurrent
/// messages is still fresh exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_in_flight_exactly_once() {
    let srv = Server::start(&[]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    let shared = key("many", 0);
    let n = 300u32;
    let writer = {
        let tx = s.tx.clone().unwrap();
        let shared = shared.clone();
        tokio::spawn(async move {
            for id in 0..n {
                let own = key("many", u64::from(id) + 1);
                let msg = request(id, &[(&own, 60), (&shared, 60)]);
                tx.send(Bytes::from(msg)).await.unwrap();
            }
        })
    };
    let got = s.answers(n as usize).await;
    writer.await.unwrap();
    assert_eq!(got.len(), n as usize);
    assert!(got.values().all(|c| c[0] == 201));
    assert_eq!(got.values().filter(|c| c[1] == 201).count(), 1);
    assert_eq!(got.values().filter(|c| c[1] == 409).count(), n as usize - 1);
    s.half_close();
    s.end("0").await;
    srv.stop().await;
}

/// A message the batch endpoint would refuse whole (400) is answered with no results: the
/// filter sees a count mismatch and fails its entries. The stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_answered_empty_and_the_stream_goes_on() {
    let srv = Server::start(&[]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    let k = key("shape", 1);
    let many: Vec<String> = (0..257).map(|n| key("shape-many", n)).collect();
    let over: Vec<(&str, i64)> = many.iter().map(|k| (k.as_str(), 60)).collect();
    let bodies = [
        r#"{"id":1,"entries":[]}"#.to_owned(),
        r#"{"id":2,"entries":{}}"#.to_owned(),
        r#"{"id":3}"#.to_owned(),
        format!(r#"{{"id":4,"entries":[{{"key":"{k}","ttl":60}}],"x":1}}"#),
        format!(r#"{{"id":5,"entries":[{{"key":"{k}","ttl":60}}],"entries":[]}}"#),
        stream::request(6, over.iter().copied()),
        r#"{"id":7,"entries":[{"key":12345,"ttl":60}]}"#.to_owned(),
    ];
    for b in &bodies {
        s.write(frame(b.as_bytes())).await;
    }
    let got = s.answers(bodies.len()).await;
    for id in 1..=7 {
        assert_eq!(got[&id], Vec::<u16>::new(), "id {id}");
    }
    // nothing was recorded by them; the stream still checks
    s.send(70, &[(&k, 60), (&many[0], 60)]).await;
    assert_eq!(s.next().await, answer(70, &[201, 201]));
    // whitespace around tokens and escapes in the key are JSON, so fine
    let escaped = key("shape", 2).replacen("dpop", "\\u0064pop", 1);
    s.write(frame(
        format!(
            " {{ \"entries\" : [ {{ \"ttl\" : 60 , \"key\" : \"{escaped}\" }} ] , \"id\" : 8 }} "
        )
        .as_bytes(),
    ))
    .await;
    assert_eq!(s.next().await, answer(8, &[201]));
    s.half_close();
    s.end("0").await;
    srv.stop().await;
}

async fn expect_invalid(addr: SocketAddr, bytes: Vec<u8>) -> String {
    let mut s = GrpcStream::open(addr).await;
    s.write(bytes).await;
    // the server ends the stream itself: the request side stays open
    let msg = s.end("3").await.expect("no grpc-message");
    assert!(!msg.is_empty());
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_flag_ends_with_status_3() {
    let srv = Server::start(&[]).await;
    let mut msg = request(1, &[(&key("z", 1), 60)]);
    msg[0] = 1;
    let why = expect_invalid(srv.addr, msg).await;
    assert!(why.contains("compress"), "{why}");
    // the flag alone is enough
    expect_invalid(srv.addr, vec![1]).await;
    // nothing was recorded
    let mut s = GrpcStream::open(srv.addr).await;
    s.send(2, &[(&key("z", 1), 60)]).await;
    assert_eq!(s.next().await, answer(2, &[201]));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_ends_with_status_3() {
    let srv = Server::start(&[]).await;
    // the prefix alone is refused: the server does not wait for 64 KiB it will not take
    let len = u32::try_from(MAX_MESSAGE + 1).unwrap().to_be_bytes();
    let why = expect_invalid(srv.addr, vec![0, len[0], len[1], len[2], len[3]]).await;
    assert!(why.contains("larger"), "{why}");
    let why = expect_invalid(srv.addr, vec![0, 0xff, 0xff, 0xff, 0xff, b'{']).await;
    assert!(why.contains("larger"), "{why}");

    // exactly MAX_MESSAGE is taken, in frames of 16 KiB
    let mut s = GrpcStream::open(srv.addr).await;
    let mut payload = stream::request(1, [(key("max", 1).as_str(), 60)]);
    payload.push_str(&" ".repeat(MAX_MESSAGE - payload.len()));
    let msg = frame(payload.as_bytes());
    for chunk in msg.chunks(16 * 1024) {
        s.write(chunk.to_vec()).await;
    }
    assert_eq!(s.next().await, answer(1, &[201]));
    s.half_close();
    s.end("0").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_without_an_id_ends_with_status_3() {
    let srv = Server::start(&[]).await;
    let k = key("noid", 1);
    for payload in [
        format!(r#"{{"entries":[{{"key":"{k}","ttl":60}}]}}"#),
        format!(r#"[1,[{{"key":"{k}","ttl":60}}]]"#),
        format!(r#"{{"id":-1,"entries":[{{"key":"{k}","ttl":60}}]}}"#),
        format!(r#"{{"id":4294967296,"entries":[{{"key":"{k}","ttl":60}}]}}"#),
        format!(r#"{{"id":"1","entries":[{{"key":"{k}","ttl":60}}]}}"#),
        format!(r#"{{"id":1,"entries":[{{"key":"{k}","ttl":60}}]"#),
        "not json".to_owned(),
        String::new(),
    ] {
        let why = expect_invalid(srv.addr, frame(payload.as_bytes())).await;
        assert!(why.contains("id"), "{payload}: {why}");
    }
    // none of them recorded the key
    let mut s = GrpcStream::open(srv.addr).await;
    s.send(1, &[(&k, 60)]).await;
    assert_eq!(s.next().await, answer(1, &[201]));

    // messages started before the bad one are answered before the end
    let mut s = GrpcStream::open(srv.addr).await;
    let mut bytes = request(1, &[(&key("noid", 2), 60)]);
    bytes.extend(frame(b"{}"));
    bytes.extend(request(3, &[(&key("noid", 3), 60)]));
    s.write(bytes).await;
    let mut seen = Vec::new();
    loop {
        match s.next().await {
            Event::Answer(id, codes) => seen.push((id, codes)),
            Event::End(status, _) => {
                assert_eq!(status, "3");
                break;
            }
        }
    }
    assert!(seen.contains(&(1, vec![201])), "{seen:?}");
    assert!(seen.iter().all(|(id, _)| *id != 2));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_inside_a_message_ends_with_status_3() {
    let srv = Server::start(&[]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    s.send(1, &[(&key("cut", 1), 60)]).await;
    assert_eq!(s.next().await, answer(1, &[201]));
    let msg = request(2, &[(&key("cut", 2), 60)]);
    s.write(msg[..20].to_vec()).await;
    s.half_close();
    let why = s.end("3").await.unwrap();
    assert!(why.contains("inside a message"), "{why}");
    srv.stop().await;
}

/// The memory store full is a store failure: every entry of that message is 503, and the same
/// stream answers normally once the store has room again (a ttl ran out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_is_503_for_the_message_and_the_stream_goes_on() {
    let srv = Server::start(&["--memory-capacity", "1"]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    let (k1, k2) = (key("full", 1), key("full", 2));
    s.send(1, &[(&k1, 1)]).await;
    assert_eq!(s.next().await, answer(1, &[201]));
    s.send(2, &[(&k2, 60), ("dpop:jti:bad", 60), (&k1, 1)])
        .await;
    assert_eq!(s.next().await, answer(2, &[503, 503, 503]));
    // a live key is still a replay (no room needed)
    s.send(3, &[(&k1, 1)]).await;
    assert_eq!(s.next().await, answer(3, &[409]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.send(4, &[(&k2, 60)]).await;
    assert_eq!(s.next().await, answer(4, &[201]));
    s.half_close();
    s.end("0").await;
    let page = get(srv.addr, "/metrics").await.body;
    assert_eq!(
        metric(&page, "dpop_replay_checks_total{result=\"error\"}"),
        2.0
    );
    srv.stop().await;
}

/// Redis killed and back: 503s on the open stream, then answers again on the same stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_recovery_on_one_stream() {
    if !redis_required() {
        return;
    }
    let mut redis = RedisServer::start();
    let url = redis.url();
    let srv = Server::start(&["--redis-url", &url, "--redis-timeout-ms", "100"]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    s.send(0, &[(&key("redis", 0), 60)]).await;
    assert_eq!(s.next().await, answer(0, &[201]));
    redis.kill();
    s.send(1, &[(&key("redis", 1), 60), (&key("redis", 2), 60)])
        .await;
    assert_eq!(s.next().await, answer(1, &[503, 503]));
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 10;
    loop {
        id += 1;
        s.send(id, &[(&key("redis", id.into()), 60)]).await;
        match s.next().await {
            Event::Answer(got, codes) if got == id && codes == [201] => break,
            Event::Answer(got, codes) if got == id && codes == [503] => {}
            e => panic!("{e:?}"),
        }
        assert!(Instant::now() < deadline, "no recovery within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.send(1000, &[(&key("redis", id.into()), 60)]).await;
    assert_eq!(s.next().await, answer(1000, &[409]));
    s.half_close();
    s.end("0").await;
    srv.stop().await;
}

/// Graceful shutdown ends an open stream with grpc-status 14 instead of waiting for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_with_status_14() {
    let srv = Server::start(&[]).await;
    let mut s = GrpcStream::open(srv.addr).await;
    s.send(1, &[(&key("bye", 1), 60)]).await;
    assert_eq!(s.next().await, answer(1, &[201]));
    let stopping = tokio::spawn(srv.stop());
    let why = s.end("14").await;
    assert_eq!(why.as_deref(), Some("server shutting down"));
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server did not stop")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_and_method() {
    let srv = Server::start(&[]).await;
    let mut sender = h2(srv.addr).await;
    let full = |method: &str, ct: &str| {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://dpop-replay{PATH}"))
            .header("content-type", ct)
            .body(fixed(request(1, &[(&key("ct", 1), 60)])))
            .unwrap();
        let mut sender = sender.clone();
        async move { sender.send_request(req).await.unwrap().status().as_u16() }
    };
    assert_eq!(full("POST", "application/json").await, 415);
    assert_eq!(full("POST", "application/grpc-web").await, 415);
    assert_eq!(full("GET", "application/grpc").await, 405);
    sender.ready().await.unwrap();
    // application/grpc+<subtype> is taken (the payload is JSON whatever the subtype says)
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://dpop-replay{PATH}"))
        .header("content-type", "application/grpc+proto")
        .body(fixed(request(9, &[(&key("ct", 2), 60)])))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    let bytes = collected.to_bytes();
    assert_eq!(&bytes[5..], stream::reply(9, &[201]).as_bytes());
    srv.stop().await;
}
