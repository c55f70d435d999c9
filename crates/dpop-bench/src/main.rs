//! `dpop-bench`: the load client behind `make bench` (scripts/bench.sh, scripts/bench.py).
//!
//! `dpop-bench run` drives one scenario against an already running Envoy: it pre-generates one
//! request per expected call (each with a unique DPoP proof when `--alg` is given), sends one
//! preflight request that must answer 200, pins itself to a CPU, then runs `--concurrency`
//! closed-loop keep-alive connections for `--warmup` + `--duration` seconds and prints one JSON
//! line: req/s, latency percentiles, CPU per request of the watched processes, errors.
//!
//! `dpop-bench run --worst ID` drives one worst-case input class instead (src/worst/): a
//! pool of the class's requests, each used once when it carries a valid proof, else replayed
//! in turn; every response must be the class's expected answer (a refusal with its reason, or
//! 200).
//!
//! `dpop-bench worst-classes` prints the classes as JSON (ids, labels, plugin configuration
//! overrides, expected answer) for scripts/bench.py; `dpop-bench worst-native` times each
//! class natively through the filter's pure pipeline (no Envoy).
//!
//! `dpop-bench issuer` prints an ES256 JWKS and a one-hour token signed by it (jwt_authn).
//!
//! `dpop-bench client-key` prints a key seed and its thumbprint: `run --key-seed` then signs
//! with that key, so a fixed introspection answer can carry its `cnf.jkt`; `run --dpop-token`
//! adds `Authorization: DPoP <token>` (one token for the run, or a new one per request) and
//! the proofs' `ath`.
//!
//! `dpop-bench replay` loads a running dpop-replay service instead of Envoy (src/replay.rs):
//! `POST /v1/replay` checks with keys unique to the run, HTTP/1.1 or h2c (src/h2c.rs).

mod h2c;
mod hpack;
mod http;
mod load;
mod proofs;
mod replay;
mod sys;
mod worst;

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
    /// Print {"seed": "...", "jkt": "..."}: a fresh client key's seed (for `run --key-seed`)
    /// and its JWK thumbprint.
    ClientKey {
        #[arg(long, default_value = "EdDSA")]
        alg: String,
    },
    /// Print the worst-case input classes as a JSON array.
    WorstClasses,
    /// Time worst-case classes natively (the filter's pure pipeline, no Envoy); one JSON line
    /// per class on stdout.
    WorstNative(NativeArgs),
    /// Closed-loop load on a running dpop-replay service (loopback only): checks/s, answers,
    /// latency percentiles.
    Replay(replay::ReplayArgs),
}

#[derive(clap::Args)]
struct NativeArgs {
    /// Class id (repeatable); all classes when omitted.
    #[arg(long = "class")]
    classes: Vec<String>,
    /// Plugin configuration (JSON file) the class overrides are merged into; default: the
    /// shipped envoy/envoy.yaml settings that matter here (required, upstream tokens).
    #[arg(long)]
    plugin_config: Option<std::path::PathBuf>,
    /// The file already holds the class's overrides (as bench.py writes it): do not merge.
    #[arg(long)]
    merged: bool,
    /// Seconds per class.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    #[arg(long, default_value = "127.0.0.1:10000")]
    authority: String,
    #[arg(long, default_value = "/bench")]
    path: String,
    /// Pin to this CPU.
    #[arg(long)]
    pin_cpu: Option<usize>,
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
    #[arg(long, conflicts_with = "worst")]
    alg: Option<String>,
    /// Send the requests of this worst-case class (`dpop-bench worst-classes`) instead.
    #[arg(long)]
    worst: Option<String>,
    /// Client keys per algorithm (proofs go round-robin over them).
    #[arg(long, default_value_t = 4)]
    keys: usize,
    /// Number of pre-generated requests (with --alg, or a --worst class of valid proofs). The
    /// run stops early when they run out.
    #[arg(long, default_value_t = 50_000)]
    pool: usize,
    /// Send `Authorization: Bearer <TOKEN>` with every request.
    #[arg(long)]
    bearer: Option<String>,
    /// With --alg: send `Authorization: DPoP <token>` bound to the proof's key (`cnf.jkt`,
    /// proof `ath`): `shared` — one token per key for the whole run; `unique` — a new token
    /// on every request.
    #[arg(long, value_enum, default_value_t = TokenMode::None, requires = "alg", conflicts_with = "bearer")]
    dpop_token: TokenMode,
    /// With --alg: sign with the key of this seed (base64url, from `dpop-bench client-key`)
    /// instead of fresh keys; needs --keys 1. (A base64url seed may start with '-'.)
    #[arg(long, requires = "alg", allow_hyphen_values = true)]
    key_seed: Option<String>,
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TokenMode {
    None,
    Shared,
    Unique,
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
    let with_headers = |headers: &[(String, String)]| -> Vec<u8> {
        let extra: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut r = String::with_capacity(fixed.len() + extra + 2);
        r.push_str(&fixed);
        for (k, v) in headers {
            r.push_str(k);
            r.push_str(": ");
            r.push_str(v);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.into_bytes()
    };
    let build = |proof: &str, token: Option<&str>| -> Vec<u8> {
        let mut h = Vec::with_capacity(2);
        if let Some(t) = token {
            h.push(("Authorization".to_owned(), format!("DPoP {t}")));
        }
        if !proof.is_empty() {
            h.push(("DPoP".to_owned(), proof.to_owned()));
        }
        with_headers(&h)
    };

    let gen_started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut expect = load::Expect::ok();
    let mut prefix: Vec<u8> = Vec::new();
    let requests = match (&a.alg, &a.worst) {
        (None, None) => load::Requests::Same(build("", None)),
        (Some(name), _) => {
            let alg = proofs::parse_alg(name)?;
            let keys = match &a.key_seed {
                Some(seed) => {
                    if a.keys != 1 {
                        return Err("--key-seed signs with one key: use --keys 1".into());
                    }
                    let seed = dpop_guard::b64::decode(seed).ok_or("--key-seed: not base64url")?;
                    vec![proofs::ClientKey::from_seed(alg, &seed)?]
                }
                None => std::thread::scope(|s| {
                    let hs: Vec<_> = (0..a.keys.max(1))
                        .map(|_| s.spawn(move || proofs::ClientKey::generate(alg)))
                        .collect();
                    hs.into_iter()
                        .map(|h| h.join().unwrap_or_else(|_| Err("keygen panicked".into())))
                        .collect::<Result<Vec<_>, String>>()
                })?,
            };
            let tokens = match a.dpop_token {
                TokenMode::None => proofs::Tokens::None,
                TokenMode::Shared => proofs::Tokens::Shared(
                    keys.iter()
                        .map(|k| proofs::access_token(&k.public.thumbprint()))
                        .collect::<Result<_, _>>()?,
                ),
                TokenMode::Unique => proofs::Tokens::Unique,
            };
            // +1 for the preflight request.
            let pool = proofs::make_pool(&keys, &tokens, a.pool + 1, "GET", &htu, threads, &build)?;
            load::Requests::Pool(pool)
        }
        (None, Some(id)) => {
            let class = worst::find(id)?;
            expect = load::Expect {
                status: class.expect.status(),
                body_contains: class.expect.body_contains().map(|s| s.as_bytes().to_vec()),
                also: None,
            };
            let target = worst::Target { htu: htu.clone() };
            // Valid proofs: one per request (+1 for the preflight); refused ones: a cycle.
            let n = if class.unique {
                a.pool + 1
            } else {
                worst::CYCLE
            };
            let pool = worst::generate(&class, &target, n, threads)?;
            // request line, Host and the headers every request shares; then each one's own
            let mut head = with_headers(&pool.common);
            head.truncate(head.len().saturating_sub(2));
            prefix = head;
            let items: Vec<Vec<u8>> = pool
                .items
                .iter()
                .map(|h| {
                    let mut r = Vec::new();
                    for (k, v) in h {
                        r.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                    }
                    r.extend_from_slice(b"\r\n");
                    r
                })
                .collect();
            if class.unique {
                load::Requests::Pool(items)
            } else {
                load::Requests::Cycle(items)
            }
        }
    };
    let gen_secs = gen_started.elapsed().as_secs_f64();
    let timeout = secs("timeout", a.timeout)?;

    // Preflight: one request must get the expected answer, else show what came back and stop.
    let (preflight, requests) = match requests {
        load::Requests::Pool(mut p) => {
            let first = if p.is_empty() {
                return Err("empty proof pool".into());
            } else {
                p.remove(0)
            };
            (first, load::Requests::Pool(p))
        }
        load::Requests::Cycle(p) => match p.first() {
            Some(first) => (first.clone(), load::Requests::Cycle(p)),
            None => return Err("empty request pool".into()),
        },
        load::Requests::Same(r) => (r.clone(), load::Requests::Same(r)),
        load::Requests::Gen(_) => return Err("generated requests are for `replay`".into()),
    };
    let mut conn = http::Conn::connect(a.addr, timeout)
        .map_err(|e| format!("preflight: connect {}: {e}", a.addr))?;
    let preflight = [prefix.as_slice(), preflight.as_slice()].concat();
    let resp = conn
        .round_trip(&preflight)
        .map_err(|e| format!("preflight: {e}"))?;
    if !expect.matches(&resp) {
        let want = expect
            .body_contains
            .as_deref()
            .map(|b| format!(" with {:?}", String::from_utf8_lossy(b)))
            .unwrap_or_default();
        return Err(format!(
            "preflight answered {} (expected {}{want}): {}",
            resp.status,
            expect.status,
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
        proto: http::Proto::H1,
        concurrency: a.concurrency,
        warmup: secs("warmup", a.warmup)?,
        duration: secs("duration", a.duration)?,
        timeout,
        watch,
        expect,
        prefix,
    };
    let pool_size = match &requests {
        load::Requests::Pool(p) | load::Requests::Cycle(p) => Some(p.len()),
        load::Requests::Same(_) | load::Requests::Gen(_) => None,
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
        "worst": a.worst,
        "request_bytes": preflight.len(),
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

fn worst_native(a: NativeArgs) -> Result<bool, String> {
    use serde_json::{json, Value};
    let base: Value = match &a.plugin_config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => json!({"required": true, "access_token": {"verify": "upstream"}}),
    };
    let all = worst::classes()?;
    let chosen: Vec<&worst::Class> = if a.classes.is_empty() {
        all.iter().filter(|c| c.filter).collect()
    } else {
        a.classes
            .iter()
            .map(|id| {
                all.iter()
                    .find(|c| c.id == id)
                    .ok_or_else(|| format!("unknown class {id:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    let target = worst::Target {
        htu: format!("http://{}{}", a.authority, a.path),
    };
    if let Some(cpu) = a.pin_cpu {
        sys::pin_current_thread(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    sys::keep_freed_memory();
    for class in chosen {
        if !class.filter {
            return Err(format!(
                "{}: a plain-Envoy baseline has no native cost",
                class.id
            ));
        }
        let mut cfg = base.clone();
        if !a.merged {
            worst::merge(&mut cfg, &class.config);
        }
        let parsed = dpop_guard::config::Config::parse(cfg.to_string().as_bytes())
            .map_err(|e| format!("{}: plugin configuration refused: {e:?}", class.id))?;
        let r = worst::native(class, &parsed, &a.authority, &a.path, &target, a.seconds)?;
        eprintln!(
            "dpop-bench: {:<22} {:>9.1} µs per call natively ({} calls) — {}",
            class.id,
            r.us_per_call,
            r.calls,
            class.expect_text()
        );
        println!(
            "{}",
            json!({"id": class.id, "native_us_per_call": r.us_per_call, "calls": r.calls})
        );
    }
    Ok(true)
}

fn client_key(alg: &str) -> Result<bool, String> {
    let alg = proofs::parse_alg(alg)?;
    let seed = dpop_guard::b64::encode(&proofs::random_bytes(32)?);
    let seed_bytes = dpop_guard::b64::decode(&seed).ok_or("seed encoding")?;
    let key = proofs::ClientKey::from_seed(alg, &seed_bytes)?;
    println!(
        "{}",
        serde_json::json!({"alg": alg.name(), "seed": seed, "jkt": key.public.thumbprint()})
    );
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Run(a) => run(a),
        Command::WorstClasses => worst::classes().map(|cs| {
            let list: Vec<serde_json::Value> = cs.iter().map(worst::Class::to_json).collect();
            println!("{}", serde_json::Value::Array(list));
            true
        }),
        Command::WorstNative(a) => worst_native(a),
        Command::Replay(a) => replay::run(a),
        Command::ClientKey { alg } => client_key(&alg),
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
