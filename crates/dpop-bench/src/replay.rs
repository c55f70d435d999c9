//! `dpop-bench replay`: closed-loop load on a running dpop-replay (loopback only).
//!
//! Each connection (one thread each, the same load loop as `dpop-bench run`, src/load.rs) sends
//! `POST /v1/replay {"key": ..., "ttl": ...}` back to back, HTTP/1.1 keep-alive or, with
//! `--h2`, HTTP/2 cleartext with prior knowledge (one request at a time per connection). The
//! keys are unique to the run, so every answer is 201, or 409 for the `--replay-pct` share that
//! resends an earlier key. After one preflight check that must answer 201, it runs
//! `--warmup` + `--seconds` and prints checks/s, the answers by status and latency percentiles
//! (`--json`: one JSON line), plus the service's CPU per check with `--pid`.

use crate::http::{self, Proto};
use crate::{load, sys};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The service: http://HOST:PORT[/PATH] (loopback only; the path defaults to /v1/replay).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up seconds before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// HTTP/2 cleartext (prior knowledge) instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    h2: bool,
    /// Percentage of checks (spread evenly) that resend the latest fresh key: answered 409.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=99))]
    replay_pct: u64,
    /// The `ttl` of every check, seconds (the memory backend holds keys that long).
    #[arg(long, default_value_t = 180)]
    ttl: u64,
    /// Pid of the dpop-replay process: report its CPU time per check.
    #[arg(long)]
    pid: Option<u32>,
    /// Pin the load threads to this CPU.
    #[arg(long)]
    pin_cpu: Option<usize>,
    /// Per-request socket timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print one JSON line instead of the text summary.
    #[arg(long)]
    json: bool,
}

/// (address, Host value, path) of a loopback `http://` URL.
fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = if path.is_empty() || path == "/" {
        DEFAULT_PATH.to_owned()
    } else {
        path.to_owned()
    };
    if path.contains(['\r', '\n', ' ']) || authority.contains(['\r', '\n', ' ', '@']) {
        return Err(format!(
            "--url {url:?}: not a plain http://HOST:PORT[/PATH]"
        ));
    }
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err("load runs only target loopback addresses".into());
    }
    Ok((addr, authority.to_owned(), path))
}

/// The service's path (`replay_wire::PATH`; dpop-bench does not depend on that crate).
const DEFAULT_PATH: &str = "/v1/replay";

/// A replay key (`dpop:jti:` + 43 base64url characters) unique to the run and the index.
fn key(run: &str, i: u64) -> String {
    format!("dpop:jti:{:A>43}", format!("{run}n{i}"))
}

/// Which key request n sends: with P % replays, request n is a replay when
/// floor((n+1)·P/100) > floor(n·P/100) (exactly P % of them, spread evenly); fresh requests
/// take new key indexes in order, a replay resends the latest fresh one. P ≤ 99 keeps request
/// 0 fresh.
fn key_index(n: u64, pct: u64) -> u64 {
    let replays_before = n * pct / 100;
    let fresh_before = n - replays_before;
    if (n + 1) * pct / 100 > replays_before {
        fresh_before.saturating_sub(1)
    } else {
        fresh_before
    }
}

fn request(authority: &str, path: &str, key: &str, ttl: u64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // the body as replay_wire::request_body writes it
    let body = format!("{{\"key\":\"{key}\",\"ttl\":{ttl}}}");
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

fn secs(what: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{what} {v}: not a duration"))
}

pub fn run(a: ReplayArgs) -> Result<bool, String> {
    if a.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let (addr, authority, path) = parse_url(&a.url)?;
    let proto = if a.h2 { Proto::H2c } else { Proto::H1 };
    let timeout = secs("timeout", a.timeout)?;
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis()
        % 1_000_000_000;
    let run_id = run_id.to_string();

    // Preflight: one fresh key must answer 201.
    let mut pre = Vec::new();
    request(&authority, &path, &key(&run_id, u64::MAX), a.ttl, &mut pre);
    let mut conn = http::Client::connect(addr, timeout, proto)
        .map_err(|e| format!("preflight: connect {addr}: {e}"))?;
    let resp = conn
        .round_trip(&pre)
        .map_err(|e| format!("preflight: {e}"))?;
    if resp.status != 201 {
        return Err(format!(
            "preflight answered {} (expected 201): {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        ));
    }
    drop(conn);

    if let Some(cpu) = a.pin_cpu {
        sys::pin_current_thread(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    let (pct, ttl) = (a.replay_pct, a.ttl);
    let gen = move |n: usize, out: &mut Vec<u8>| {
        let k = key(&run_id, key_index(n as u64, pct));
        request(&authority, &path, &k, ttl, out);
    };
    let plan = load::Plan {
        addr,
        proto,
        concurrency: a.connections,
        warmup: secs("warmup", a.warmup)?,
        duration: secs("seconds", a.seconds)?,
        timeout,
        watch: a.pid.map(load::Watch::Pid).into_iter().collect(),
        expect: load::Expect {
            status: 201,
            body_contains: None,
            also: (pct > 0).then_some(409),
        },
        prefix: Vec::new(),
    };
    let o = load::run(&plan, &load::Requests::Gen(Box::new(gen)))?;

    let window = o.window.as_secs_f64();
    let rate = if window > 0.0 {
        o.requests as f64 / window
    } else {
        0.0
    };
    let count = |s: u16| o.statuses.get(&s).copied().unwrap_or(0);
    let other = o.requests - count(201) - count(409);
    let ms = |p: f64| load::percentile(&o.latencies_ns, p) as f64 / 1e6;
    let cpu_us = o
        .cpu_secs
        .first()
        .map(|c| c * 1e6 / o.requests.max(1) as f64);
    let busy = o.cpu_secs.first().map(|c| {
        if window > 0.0 {
            c / window * 100.0
        } else {
            0.0
        }
    });
    let name = if a.h2 { "h2c" } else { "http/1.1" };
    if a.json {
        let statuses: serde_json::Map<String, serde_json::Value> = o
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), (*n).into()))
            .collect();
        let result = serde_json::json!({
            "protocol": name,
            "connections": a.connections,
            "seconds": window,
            "checks": o.requests,
            "checks_per_sec": rate,
            "statuses": statuses,
            "p50_ms": ms(50.0), "p90_ms": ms(90.0), "p99_ms": ms(99.0), "p999_ms": ms(99.9),
            "max_ms": ms(100.0),
            "service_cpu_us_per_check": cpu_us,
            "service_busy_pct": busy,
            "errors": o.total_errors,
            "total_requests": o.total_requests,
            "first_error": o.first_error,
        });
        println!("{result}");
    } else {
        println!(
            "{name} {} conns {window:.1}s: {} checks, {rate:.0} checks/s (201: {}, 409: {}, other: {other})",
            a.connections,
            o.requests,
            count(201),
            count(409),
        );
        println!(
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            ms(50.0),
            ms(90.0),
            ms(99.0),
            ms(99.9),
            ms(100.0)
        );
        if let (Some(us), Some(b)) = (cpu_us, busy) {
            println!("dpop-replay CPU: {us:.1} µs per check ({b:.0}% of one core)");
        }
    }
    if o.total_errors > 0 {
        eprintln!(
            "dpop-bench: {} ERRORS out of {} requests; first: {}",
            o.total_errors,
            o.total_requests,
            o.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(o.total_errors == 0 && o.requests > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_indexes() {
        let seq = |pct| (0..10).map(|n| key_index(n, pct)).collect::<Vec<_>>();
        assert_eq!(seq(0), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        // every 4th request (n = 3, 7) resends the latest fresh key
        assert_eq!(seq(25), [0, 1, 2, 2, 3, 4, 5, 5, 6, 7]);
        assert_eq!(seq(99)[..3], [0, 0, 0]);
        let replays = (0..1000)
            .filter(|&n| key_index(n, 10) == key_index(n + 1, 10))
            .count();
        assert_eq!(replays, 100);
        assert_eq!(key("123", 7).len(), 52);
    }

    #[test]
    fn urls() {
        let (addr, host, path) = parse_url("http://127.0.0.1:8081").unwrap();
        assert_eq!(
            (addr.port(), host.as_str(), path.as_str()),
            (8081, "127.0.0.1:8081", "/v1/replay")
        );
        assert_eq!(parse_url("127.0.0.1:9/x").unwrap().2, "/x");
        assert!(parse_url("http://192.0.2.1:8081").is_err());
    }
}
