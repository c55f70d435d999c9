//! The closed-loop load run: N threads, one keep-alive connection each (HTTP/1.1 or h2c), a
//! warm-up, then a measured window during which the target process's CPU time is sampled from
//! /proc.

use crate::http::{Client, Proto};
use crate::sys;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What each request sends.
pub enum Requests {
    /// The same bytes every time.
    Same(Vec<u8>),
    /// Each entry once (unique proofs); the run ends early when they run out.
    Pool(Vec<Vec<u8>>),
    /// The entries in turn, again and again (requests the filter refuses before the replay
    /// store, so they may repeat).
    Cycle(Vec<Vec<u8>>),
    /// Request number n (counted over all connections) written by the function, without end.
    Gen(Box<Generator>),
}

/// Writes request number n into the buffer (cleared before the call).
pub type Generator = dyn Fn(usize, &mut Vec<u8>) + Send + Sync;

impl Requests {
    fn get<'a>(&'a self, next: &AtomicUsize, buf: &'a mut Vec<u8>) -> Option<&'a [u8]> {
        match self {
            Requests::Same(r) => Some(r),
            Requests::Gen(f) => {
                buf.clear();
                f(next.fetch_add(1, Ordering::Relaxed), buf);
                Some(buf.as_slice())
            }
            Requests::Pool(p) => p
                .get(next.fetch_add(1, Ordering::Relaxed))
                .map(Vec::as_slice),
            Requests::Cycle(p) => p
                .get(next.fetch_add(1, Ordering::Relaxed) % p.len().max(1))
                .map(Vec::as_slice),
        }
    }
}

pub struct Plan {
    pub addr: SocketAddr,
    pub proto: Proto,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    /// What is sampled at the window edges (Envoy first).
    pub watch: Vec<Watch>,
    /// The answer every request must get; anything else is an error.
    pub expect: Expect,
    /// Bytes sent before each request's own bytes (request line and headers shared by the
    /// whole pool: a pool of big requests that differ only in their proof stays small).
    pub prefix: Vec<u8>,
}

/// The expected answer: a status, and text the body must contain (a refusal's `detail`); or
/// the `also` status (any body).
#[derive(Clone, Debug)]
pub struct Expect {
    pub status: u16,
    pub body_contains: Option<Vec<u8>>,
    pub also: Option<u16>,
}

impl Expect {
    pub fn ok() -> Expect {
        Expect {
            status: 200,
            body_contains: None,
            also: None,
        }
    }

    pub fn matches(&self, resp: &crate::http::Response) -> bool {
        let first = resp.status == self.status
            && self.body_contains.as_deref().is_none_or(|needle| {
                needle.is_empty() || resp.body.windows(needle.len()).any(|w| w == needle)
            });
        first || self.also == Some(resp.status)
    }
}

/// A CPU-time counter sampled at the edges of the measured window.
#[derive(Clone, Copy)]
pub enum Watch {
    /// utime + stime of a process.
    Pid(u32),
    /// Busy time of a whole CPU (all processes).
    Cpu(usize),
}

/// One finished request: when it ended (ns since the run started), how long it took, whether
/// it got the expected answer (a transport error never does), its status (0: none).
#[derive(Clone, Copy)]
struct Sample {
    end_ns: u64,
    latency_ns: u64,
    ok: bool,
    status: u16,
}

#[derive(Default)]
struct WorkerOut {
    samples: Vec<Sample>,
    first_error: Option<String>,
}

pub struct Outcome {
    /// Requests completed inside the measured window.
    pub requests: u64,
    /// Length of the measured window (shorter than planned when the pool ran out).
    pub window: Duration,
    pub pool_exhausted: bool,
    /// Sorted latencies (ns) of the requests completed inside the window.
    pub latencies_ns: Vec<u64>,
    /// Unexpected responses and transport errors: inside the window / anywhere in the run.
    pub window_errors: u64,
    pub total_errors: u64,
    pub total_requests: u64,
    pub first_error: Option<String>,
    /// CPU seconds counted by each of `Plan::watch` during the window.
    pub cpu_secs: Vec<f64>,
    /// Responses per status inside the window (0: transport errors).
    pub statuses: BTreeMap<u16, u64>,
}

fn elapsed_ns(start: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}

fn worker(
    plan: &Plan,
    requests: &Requests,
    next: &AtomicUsize,
    stop: &AtomicBool,
    exhausted: &mpsc::Sender<Instant>,
    start: Instant,
) -> WorkerOut {
    let mut out = WorkerOut {
        samples: Vec::with_capacity(1 << 16),
        first_error: None,
    };
    let mut conn: Option<Client> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut generated: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(req) = requests.get(next, &mut generated) else {
            let _ = exhausted.send(Instant::now());
            break;
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Client::connect(plan.addr, plan.timeout, plan.proto) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    let now = Instant::now();
                    out.samples.push(Sample {
                        end_ns: elapsed_ns(start, now),
                        latency_ns: 0,
                        ok: false,
                        status: 0,
                    });
                    out.first_error
                        .get_or_insert_with(|| format!("connect {}: {e}", plan.addr));
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        let req = if plan.prefix.is_empty() {
            req
        } else {
            buf.clear();
            buf.extend_from_slice(&plan.prefix);
            buf.extend_from_slice(req);
            buf.as_slice()
        };
        let t0 = Instant::now();
        let res = c.round_trip(req);
        let t1 = Instant::now();
        let latency_ns = elapsed_ns(t0, t1);
        let end_ns = elapsed_ns(start, t1);
        match res {
            Ok(resp) => {
                let ok = plan.expect.matches(&resp);
                if !ok && out.first_error.is_none() {
                    let body = String::from_utf8_lossy(&resp.body);
                    let body: String = body.chars().take(400).collect();
                    out.first_error = Some(format!(
                        "HTTP {} (expected {}): {body}",
                        resp.status, plan.expect.status
                    ));
                }
                out.samples.push(Sample {
                    end_ns,
                    latency_ns,
                    ok,
                    status: resp.status,
                });
                if resp.close {
                    conn = None;
                }
            }
            Err(e) => {
                out.samples.push(Sample {
                    end_ns,
                    latency_ns,
                    ok: false,
                    status: 0,
                });
                out.first_error.get_or_insert_with(|| format!("I/O: {e}"));
                conn = None;
            }
        }
    }
    out
}

fn cpu_now(watch: &[Watch]) -> Result<Vec<u64>, String> {
    watch
        .iter()
        .map(|w| match *w {
            Watch::Pid(p) => {
                sys::cpu_ticks(p).map_err(|e| format!("reading CPU time of pid {p}: {e}"))
            }
            Watch::Cpu(c) => {
                sys::cpu_busy_ticks(c).map_err(|e| format!("reading busy time of CPU {c}: {e}"))
            }
        })
        .collect()
}

/// Runs the plan. Errors only for setup problems; request failures are counted in `Outcome`.
pub fn run(plan: &Plan, requests: &Requests) -> Result<Outcome, String> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Instant>();
    let start = Instant::now();
    let window_start = start + plan.warmup;
    let planned_end = window_start + plan.duration;

    let (outs, edges) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.concurrency)
            .map(|_| {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                s.spawn(move || worker(plan, requests, next, stop, &tx, start))
            })
            .collect();
        drop(tx);
        let edges = coordinate(plan, &rx, window_start, planned_end);
        stop.store(true, Ordering::Relaxed);
        let outs: Vec<WorkerOut> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (outs, edges)
    });
    let (ws, we, cpu0, cpu1, exhausted) = edges?;

    let tck = sys::clock_ticks_per_sec() as f64;
    let cpu_secs = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| b.saturating_sub(*a) as f64 / tck)
        .collect();
    let (ws_ns, we_ns) = (elapsed_ns(start, ws), elapsed_ns(start, we));
    let mut latencies_ns = Vec::new();
    let (mut window_errors, mut total_errors, mut total_requests) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut statuses = BTreeMap::new();
    for o in outs {
        if first_error.is_none() {
            first_error = o.first_error;
        }
        for smp in o.samples {
            total_requests += 1;
            let in_window = smp.end_ns >= ws_ns && smp.end_ns <= we_ns;
            if !smp.ok {
                total_errors += 1;
                if in_window {
                    window_errors += 1;
                }
            }
            if in_window {
                latencies_ns.push(smp.latency_ns);
                *statuses.entry(smp.status).or_insert(0) += 1;
            }
        }
    }
    latencies_ns.sort_unstable();
    Ok(Outcome {
        requests: latencies_ns.len() as u64,
        window: we.saturating_duration_since(ws),
        pool_exhausted: exhausted,
        latencies_ns,
        window_errors,
        total_errors,
        total_requests,
        first_error,
        cpu_secs,
        statuses,
    })
}

type Edges = (Instant, Instant, Vec<u64>, Vec<u64>, bool);

/// Waits out the warm-up, samples CPU, waits for the planned end or pool exhaustion, samples
/// again. Returns the window edges and both samples.
fn coordinate(
    plan: &Plan,
    rx: &mpsc::Receiver<Instant>,
    window_start: Instant,
    planned_end: Instant,
) -> Result<Edges, String> {
    let wait = |until: Instant| -> Option<Instant> {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(t) => Some(t),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Instant::now()),
        }
    };
    if wait(window_start).is_some() {
        return Err("the proof pool ran out during the warm-up; raise BENCH_MAX_PROOFS or the expected rate".into());
    }
    let cpu0 = cpu_now(&plan.watch)?;
    let ws = Instant::now();
    let (we, exhausted) = match wait(planned_end) {
        Some(t) => (t, true),
        None => (Instant::now(), false),
    };
    let cpu1 = cpu_now(&plan.watch)?;
    Ok((ws, we, cpu0, cpu1, exhausted))
}

/// The p-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }
}
