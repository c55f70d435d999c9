//! The built `dpop-replay` binary: --help, start-up log line, env config, graceful SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{check, get, key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_dpop-replay");
const ENV_VARS: [&str; 8] = [
    "DPOP_REPLAY_LISTEN",
    "DPOP_REPLAY_BACKEND",
    "DPOP_REPLAY_REDIS_URL",
    "DPOP_REPLAY_REDIS_CLUSTER",
    "DPOP_REPLAY_REDIS_TIMEOUT_MS",
    "DPOP_REPLAY_MEMORY_CAPACITY",
    "DPOP_REPLAY_MAX_TTL",
    "DPOP_REPLAY_SKIP_REDIS",
];

fn command() -> Command {
    let mut c = Command::new(BIN);
    for v in ENV_VARS {
        c.env_remove(v);
    }
    c
}

struct Proc {
    child: Child,
    addr: SocketAddr,
    /// stderr lines after the start-up line
    lines: mpsc::Receiver<String>,
    first_line: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// The child is waited for by `Proc`'s Drop (or by the test).
#[allow(clippy::zombie_processes)]
fn spawn(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no start-up line");
        if let Some(rest) = line.split(" listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return Proc {
                child,
                addr,
                lines: rx,
                first_line: line,
            };
        }
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_documents_every_flag_and_env_var() {
    let out = command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--backend",
        "--redis-url",
        "--redis-cluster",
        "--redis-timeout-ms",
        "--memory-capacity",
        "--max-ttl",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    for var in &ENV_VARS[..7] {
        assert!(help.contains(var), "{var} missing from --help");
    }
    for text in [
        "/v1/replay",
        "/healthz",
        "/readyz",
        "/metrics",
        "127.0.0.1:8081",
    ] {
        assert!(help.contains(text), "{text} missing from --help");
    }
}

#[test]
fn bad_flags_fail_with_usage_error() {
    for args in [
        &["--backend", "etcd"][..],
        &["--max-ttl", "0"],
        &["--redis-timeout-ms", "abc"],
        &["--no-such-flag"],
    ] {
        let out = command().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    // several URLs without --redis-cluster
    let out = command()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://a:1,redis://b:2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--redis-cluster"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_config_start_line_and_graceful_sigterm() {
    let mut cmd = command();
    cmd.env("DPOP_REPLAY_LISTEN", "127.0.0.1:0")
        .env("DPOP_REPLAY_MEMORY_CAPACITY", "5")
        .env("DPOP_REPLAY_MAX_TTL", "300");
    let mut p = spawn(cmd);
    assert!(
        p.first_line.contains("backend memory (capacity 5 keys)"),
        "{}",
        p.first_line
    );

    let k = key("bin", 1);
    assert_eq!(check(p.addr, &k, 300).await.status, 201);
    assert_eq!(check(p.addr, &k, 300).await.status, 409);
    assert_eq!(check(p.addr, &key("bin", 2), 301).await.status, 400);
    assert_eq!(get(p.addr, "/healthz").await.status, 200);

    // A request in flight when SIGTERM arrives is still answered.
    let body = format!(r#"{{"key":"{}","ttl":60}}"#, key("bin", 3));
    let (head, tail) = body.split_at(10);
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let req = format!(
        "POST /v1/replay HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{head}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&p.child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(tail.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .expect("no response to the in-flight request")
        .unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");

    let status = wait_exit(&mut p.child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = p.lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    // keys are never logged
    let all = format!("{}\n{}", p.first_line, rest.join("\n"));
    assert!(!all.contains("dpop:jti:"), "{all}");
}

#[test]
fn sigint_with_idle_keep_alive_connection_exits_promptly() {
    let mut cmd = command();
    cmd.args(["--listen", "127.0.0.1:0"]);
    let mut p = spawn(cmd);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // open an idle keep-alive connection and leave it open
    let conn = rt.block_on(async {
        let mut c = common::Conn::open(p.addr).await;
        assert_eq!(c.check(&key("idle", 1), 60).await.status, 201);
        c
    });
    let ok = Command::new("kill")
        .args(["-INT", &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_exit(&mut p.child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    drop(conn);
}
