//! Shared test helpers: the real server in-process, a tiny HTTP client, a real redis-server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dpop_replay::{build_state, serve, AnyBackend, AppState, Cli};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The service running in this process on an ephemeral port.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<AppState<AnyBackend>>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts the server with these CLI arguments (plus `--listen 127.0.0.1:0`).
    pub async fn start(args: &[&str]) -> Self {
        let mut argv = vec!["dpop-replay", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let settings = Cli::try_parse_from(argv).unwrap().into_settings().unwrap();
        let state = build_state(&settings).unwrap();
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            state,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("server did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

/// A replay key of the documented shape, unique per (tag, n).
pub fn key(tag: &str, n: u64) -> String {
    let k = format!("dpop:jti:{:A>43}", format!("{tag}{n}"));
    assert_eq!(k.len(), 52, "tag too long");
    k
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "dpop-replay");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

async fn read_reply(res: hyper::Response<hyper::body::Incoming>) -> Reply {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type,
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        self.sender.ready().await.unwrap();
        let res = self
            .sender
            .send_request(request(method, path, headers, body))
            .await
            .unwrap();
        read_reply(res).await
    }

    pub async fn check(&mut self, key: &str, ttl: i64) -> Reply {
        let body = format!(r#"{{"key":"{key}","ttl":{ttl}}}"#);
        self.send(
            "POST",
            "/v1/replay",
            &[("content-type", "application/json")],
            body.into_bytes(),
        )
        .await
    }
}

/// One request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    Conn::open(addr)
        .await
        .send(method, path, headers, body)
        .await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], Vec::new()).await
}

pub async fn check(addr: SocketAddr, key: &str, ttl: i64) -> Reply {
    Conn::open(addr).await.check(key, ttl).await
}

/// One request over HTTP/2 prior knowledge (h2c), as an Envoy cluster with
/// `http2_protocol_options` would send it.
pub async fn check_h2(addr: SocketAddr, key: &str, ttl: i64) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let body = format!(r#"{{"key":"{key}","ttl":{ttl}}}"#);
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://dpop-replay{}", "/v1/replay"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    read_reply(sender.send_request(req).await.unwrap()).await
}

/// Value of an unlabelled or labelled sample in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{page}"))
}

// ---------------------------------------------------------------------------------------------
// redis-server

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when redis tests should run; false (with a loud message) only when the operator set
/// DPOP_REPLAY_SKIP_REDIS=1. Without redis-server and without that variable the test fails.
pub fn redis_required() -> bool {
    let available = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if available {
        return true;
    }
    if std::env::var("DPOP_REPLAY_SKIP_REDIS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: redis-server not on PATH and DPOP_REPLAY_SKIP_REDIS=1");
        return false;
    }
    panic!(
        "redis-server is not on PATH: install it (Debian/Ubuntu: `apt-get install -y redis-server`) \
         or set DPOP_REPLAY_SKIP_REDIS=1 to skip the Redis backend tests"
    );
}

/// A throw-away redis-server (no persistence) on a loopback port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    cluster: bool,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port(), false)
    }

    /// A one-node Redis Cluster owning all 16384 slots.
    pub fn start_cluster() -> Self {
        let s = Self::start_on(free_port(), true);
        assert_eq!(s.cmd("CLUSTER ADDSLOTSRANGE 0 16383"), "+OK");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.cmd("CLUSTER INFO").contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn start_on(port: u16, cluster: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("dpop-replay-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Self {
            port,
            cluster,
            dir,
            child: None,
        };
        s.restart();
        s
    }

    /// (Re)starts redis-server on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.join("nodes.conf"));
        }
        self.child = Some(cmd.spawn().expect("spawn redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = StdStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = s.read(&mut buf) {
                        if buf[..n].starts_with(b"+PONG") {
                            return;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, like a crashed or OOM-killed Redis.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command, returns the raw reply (first line, or the whole bulk string).
    pub fn cmd(&self, line: &str) -> String {
        let mut s = StdStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "redis closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            let Some(end) = text.find("\r\n") else {
                continue;
            };
            let first = &text[..end];
            if let Some(len) = first.strip_prefix('$') {
                let len: i64 = len.parse().unwrap();
                if len < 0 {
                    return "(nil)".into();
                }
                let need = end + 2 + len as usize + 2;
                if buf.len() >= need {
                    return text[end + 2..end + 2 + len as usize].to_owned();
                }
                continue;
            }
            return first.to_owned();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `POST /v1/replay/batch` with `(key, ttl)` entries; returns the reply and, on 200, the
/// per-entry results.
pub async fn batch(addr: SocketAddr, entries: &[(&str, i64)]) -> (Reply, Vec<u16>) {
    let list: Vec<String> = entries
        .iter()
        .map(|(k, t)| format!(r#"{{"key":"{k}","ttl":{t}}}"#))
        .collect();
    let body = format!(r#"{{"entries":[{}]}}"#, list.join(","));
    let r = send(
        addr,
        "POST",
        "/v1/replay/batch",
        &[("content-type", "application/json")],
        body.into_bytes(),
    )
    .await;
    let results = if r.status == 200 {
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u16)
            .collect()
    } else {
        Vec::new()
    };
    (r, results)
}
