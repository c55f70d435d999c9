//! Closed-loop load generator for a running dpop-replay (loopback only).
//!
//! cargo run --release -p dpop-replay --example load -- [ADDR] [CONNECTIONS] [SECONDS] [h1|h2] [REPLAY%]
//! defaults: 127.0.0.1:8081 32 10 h1 0
//!
//! Each connection sends `POST /v1/replay` back to back with keys unique to this run (so every
//! answer is 201, or 409 for the REPLAY% share that resends the previous key), and reports
//! checks/s and latency percentiles. Bounded by SECONDS; it stops by itself.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Default)]
struct Stats {
    lat_us: Vec<u32>,
    fresh: u64,
    replay: u64,
    other: u64,
}

fn key(run: &str, conn: usize, n: u64) -> String {
    format!("dpop:jti:{:A>43}", format!("{run}c{conn}n{n}"))
}

fn request(k: &str, h2: bool) -> Res<hyper::Request<Full<Bytes>>> {
    let body = format!(r#"{{"key":"{k}","ttl":180}}"#);
    let uri = if h2 {
        "http://dpop-replay/v1/replay"
    } else {
        "/v1/replay"
    };
    let mut b = hyper::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json");
    if !h2 {
        b = b.header("host", "dpop-replay");
    }
    Ok(b.body(Full::new(Bytes::from(body)))?)
}

async fn worker(
    addr: SocketAddr,
    conn: usize,
    run: String,
    until: Instant,
    h2: bool,
    replay_pct: u64,
) -> Res<Stats> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let io = TokioIo::new(stream);
    let mut st = Stats {
        lat_us: Vec::with_capacity(1 << 16),
        ..Stats::default()
    };
    enum Sender {
        H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
        H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    }
    let mut sender = if h2 {
        let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(c);
        Sender::H2(s)
    } else {
        let (s, c) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(c);
        Sender::H1(s)
    };
    let mut n = 0u64;
    while Instant::now() < until {
        // every (100/replay_pct)-th request resends the previous key
        let k = if replay_pct > 0 && n > 0 && (n * replay_pct) % 100 < replay_pct {
            key(&run, conn, n - 1)
        } else {
            key(&run, conn, n)
        };
        n += 1;
        let req = request(&k, h2)?;
        let t = Instant::now();
        let res = match &mut sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = res.status().as_u16();
        res.into_body().collect().await?;
        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        st.lat_us.push(us);
        match status {
            201 => st.fresh += 1,
            409 => st.replay += 1,
            _ => st.other += 1,
        }
    }
    Ok(st)
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_owned());
    let addr: SocketAddr = arg(0, "127.0.0.1:8081").parse()?;
    let conns: usize = arg(1, "32").parse()?;
    let secs: u64 = arg(2, "10").parse()?;
    let h2 = arg(3, "h1") == "h2";
    let replay_pct: u64 = arg(4, "0").parse::<u64>()?.min(100);
    if !addr.ip().is_loopback() {
        return Err("load tests only target loopback addresses".into());
    }
    let run = format!(
        "{}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() % 1_000_000_000
    );
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|c| tokio::spawn(worker(addr, c, run.clone(), until, h2, replay_pct)))
        .collect();
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await??;
        all.lat_us.extend_from_slice(&s.lat_us);
        all.fresh += s.fresh;
        all.replay += s.replay;
        all.other += s.other;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.lat_us.sort_unstable();
    let total = all.lat_us.len();
    let pct = |p: f64| -> f64 {
        let idx = ((total as f64 * p).ceil() as usize).saturating_sub(1);
        f64::from(all.lat_us.get(idx).copied().unwrap_or(0)) / 1000.0
    };
    println!(
        "{} {} conns {:.1}s: {} checks, {:.0} checks/s (201: {}, 409: {}, other: {})",
        if h2 { "h2c" } else { "http/1.1" },
        conns,
        elapsed,
        total,
        total as f64 / elapsed,
        all.fresh,
        all.replay,
        all.other
    );
    println!(
        "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    Ok(())
}
