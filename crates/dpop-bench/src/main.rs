//! `dpop-bench`: the load client behind `make bench` (scripts/bench.sh, scripts/bench.py).
//!
//! `dpop-bench run` drives one scenario against an already running Envoy: it pre-generates one
//! request per expected call (each with a unique DPoP proof when `--alg` is given), sends one
//! preflight request that must answer 200, pins itself to a CPU, then runs `--concurrency`
//! closed-loop keep-alive connections for `--warmup` + `--duration` seconds and prints one JSON
//! line: req/s, latency percentiles, CPU per request of the watched processes, errors.
//!
//! `dpop-bench issuer` prints an ES256 JWKS and a one-hour token signed by it (jwt_authn).

mod http;
mod load;
mod proofs;
mod sys;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "dpop-bench", about = "Load client for `make bench`")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario and print one JSON result line on stdout.
    Run(RunArgs),
    /// Print {"jwks": "...", "token": "..."}: an ES256 issuer key and a 1-hour token.
    Issuer {
        #[arg(long, default_value = "https://issuer.bench.local")]
        iss: String,
        #[arg(long, default_value = "bench-issuer")]
        kid: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Envoy listener address.
    #[arg(long)]
    addr: SocketAddr,
    /// Request path.
    #[arg(long, default_value = "/bench")]
    path: String,
    /// Sign a unique DPoP proof per request with this algorithm (EdDSA, ES256, RS256).
    #[arg(long)]
    alg: Option<String>,
    /// Client keys per algorithm (proofs go round-robin over them).
    #[arg(long, default_value_t = 4)]
    keys: usize,
    /// Number of pre-generated requests (with --alg). The run stops early when they run out.
    #[arg(long, default_value_t = 50_000)]
    pool: usize,
    /// Send `Authorization: Bearer <TOKEN>` with every request.
    #[arg(long)]
    bearer: Option<String>,
    /// Concurrent keep-alive connections (one thread each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Pid of the Envoy process (CPU per request is measured on it).
    #[arg(long)]
    envoy_pid: u32,
    /// Another process whose CPU per request is reported too (e.g. dpop-replay).
    #[arg(long)]
    extra_pid: Option<u32>,
    /// Also report how busy this CPU was (all processes): Envoy's CPU, to see other load.
    #[arg(long)]
    watch_cpu: Option<usize>,
    /// Pin the load threads to this CPU (after the proofs are generated on all CPUs).
    #[arg(long)]
    pin_cpu: Option<usize>,
    /// Per-request socket timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

fn secs(what: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{what} {v}: not a duration"))
}

fn run(a: RunArgs) -> Result<bool, String> {
    if a.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if !a.path.starts_with('/') || a.path.contains(['\r', '\n', ' ']) {
        return Err("--path must be an origin-form path".into());
    }
    let authority = a.addr.to_string();
    let htu = format!(
        "http://{authority}{}",
        a.path.split('?').next().unwrap_or("/")
    );
    let mut fixed = format!("GET {} HTTP/1.1\r\nHost: {authority}\r\n", a.path);
    if let Some(t) = &a.bearer {
        fixed.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let build = |proof: &str| -> Vec<u8> {
        let mut r = String::with_capacity(fixed.len() + proof.len() + 16);
        r.push_str(&fixed);
        if !proof.is_empty() {
            r.push_str("DPoP: ");
            r.push_str(proof);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.into_bytes()
    };

    let gen_started = std::time::Instant::now();
    let requests = match &a.alg {
        None => load::Requests::Same(build("")),
        Some(name) => {
            let alg = proofs::parse_alg(name)?;
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let keys = std::thread::scope(|s| {
                let hs: Vec<_> = (0..a.keys.max(1))
                    .map(|_| s.spawn(move || proofs::ClientKey::generate(alg)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("keygen panicked".into())))
                    .collect::<Result<Vec<_>, String>>()
            })?;
            // +1 for the preflight request.
            let pool = proofs::make_pool(&keys, a.pool + 1, "GET", &htu, threads, &build)?;
            load::Requests::Pool(pool)
        }
    };
    let gen_secs = gen_started.elapsed().as_secs_f64();
    let timeout = secs("timeout", a.timeout)?;

    // Preflight: one request must pass, else show what came back and stop.
    let (preflight, requests) = match requests {
        load::Requests::Pool(mut p) => {
            let first = if p.is_empty() {
                return Err("empty proof pool".into());
            } else {
                p.remove(0)
            };
            (first, load::Requests::Pool(p))
        }
        load::Requests::Same(r) => (r.clone(), load::Requests::Same(r)),
    };
    let mut conn = http::Conn::connect(a.addr, timeout)
        .map_err(|e| format!("preflight: connect {}: {e}", a.addr))?;
    let resp = conn
        .round_trip(&preflight)
        .map_err(|e| format!("preflight: {e}"))?;
    if resp.status != 200 {
        return Err(format!(
            "preflight answered {} (expected 200): {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        ));
    }
    drop(conn);

    if let Some(cpu) = a.pin_cpu {
        sys::pin_current_thread(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    let mut watch = vec![load::Watch::Pid(a.envoy_pid)];
    watch.extend(a.extra_pid.map(load::Watch::Pid));
    let cpu_index = watch.len();
    watch.extend(a.watch_cpu.map(load::Watch::Cpu));
    let plan = load::Plan {
        addr: a.addr,
        concurrency: a.concurrency,
        warmup: secs("warmup", a.warmup)?,
        duration: secs("duration", a.duration)?,
        timeout,
        watch,
    };
    let pool_size = match &requests {
        load::Requests::Pool(p) => Some(p.len()),
        load::Requests::Same(_) => None,
    };
    let o = load::run(&plan, &requests)?;
    let window = o.window.as_secs_f64();
    let n = o.requests.max(1) as f64;
    let us = |ns: u64| ns as f64 / 1000.0;
    let extra = usize::from(a.extra_pid.is_some());
    let cpu_us_per_req = |i: usize| o.cpu_secs.get(i).map(|c| c * 1e6 / n);
    let busy = |i: usize| {
        o.cpu_secs.get(i).map(|c| {
            if window > 0.0 {
                c / window * 100.0
            } else {
                0.0
            }
        })
    };
    let mean = if o.latencies_ns.is_empty() {
        0.0
    } else {
        o.latencies_ns.iter().map(|&v| v as f64).sum::<f64>() / n / 1000.0
    };
    let result = serde_json::json!({
        "requests": o.requests,
        "seconds": window,
        "rps": if window > 0.0 { o.requests as f64 / window } else { 0.0 },
        "p50_us": us(load::percentile(&o.latencies_ns, 50.0)),
        "p99_us": us(load::percentile(&o.latencies_ns, 99.0)),
        "p999_us": us(load::percentile(&o.latencies_ns, 99.9)),
        "max_us": us(o.latencies_ns.last().copied().unwrap_or(0)),
        "mean_us": mean,
        "envoy_cpu_us_per_req": cpu_us_per_req(0),
        "envoy_busy_pct": busy(0),
        "extra_cpu_us_per_req": if extra == 1 { cpu_us_per_req(1) } else { None },
        "extra_busy_pct": if extra == 1 { busy(1) } else { None },
        "watched_cpu": a.watch_cpu,
        "watched_cpu_busy_pct": if a.watch_cpu.is_some() { busy(cpu_index) } else { None },
        "window_errors": o.window_errors,
        "errors": o.total_errors,
        "total_requests": o.total_requests,
        "first_error": o.first_error,
        "pool": pool_size,
        "pool_exhausted": o.pool_exhausted,
        "gen_seconds": gen_secs,
        "concurrency": a.concurrency,
        "planned_seconds": a.duration,
        "warmup_seconds": a.warmup,
    });
    println!("{result}");
    if o.pool_exhausted {
        eprintln!(
            "dpop-bench: proof pool ran out: measured {window:.2} s instead of {} s",
            a.duration
        );
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Run(a) => run(a),
        Command::Issuer { iss, kid } => proofs::issuer(&iss, &kid).map(|(jwks, token)| {
            println!("{}", serde_json::json!({"jwks": jwks, "token": token}));
            true
        }),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dpop-bench: {e}");
            ExitCode::from(2)
        }
    }
}
