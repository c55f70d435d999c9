//! Prometheus text exposition, hand-written over relaxed atomics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket upper bounds in nanoseconds (100 µs .. 1 s) and their `le` labels.
const BUCKETS: [(u64, &str); 13] = [
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
];

/// Outcome of one `POST /v1/replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 201
    Fresh,
    /// 409
    Replay,
    /// 400
    BadRequest,
    /// 503
    Error,
}

/// All counters of the service.
#[derive(Default)]
pub struct Metrics {
    fresh: AtomicU64,
    replay: AtomicU64,
    bad_request: AtomicU64,
    error: AtomicU64,
    store_errors: AtomicU64,
    /// Non-cumulative per-bucket counts; the last slot is (1 s, +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
    batches: AtomicU64,
    batch_entries: AtomicU64,
    grpc_streams: AtomicU64,
    grpc_streams_open: AtomicU64,
    grpc_messages: AtomicU64,
}

impl Metrics {
    /// Counts one check outcome.
    pub fn count(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Fresh => &self.fresh,
            Outcome::Replay => &self.replay,
            Outcome::BadRequest => &self.bad_request,
            Outcome::Error => &self.error,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one checked batch (a `/v1/replay/batch` request or a gRPC stream message) with
    /// `entries` valid entries.
    pub fn batch(&self, entries: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_entries.fetch_add(
            u64::try_from(entries).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts one gRPC `Check` stream opened (and open until [`Metrics::grpc_stream_closed`]).
    pub fn grpc_stream_opened(&self) {
        self.grpc_streams.fetch_add(1, Ordering::Relaxed);
        self.grpc_streams_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one gRPC `Check` stream ended (one call per [`Metrics::grpc_stream_opened`]).
    pub fn grpc_stream_closed(&self) {
        self.grpc_streams_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts one message received on a gRPC `Check` stream (well-formed or not).
    pub fn grpc_message(&self) {
        self.grpc_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed store operation (a check or a readiness ping).
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the duration of one store check.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let idx = BUCKETS
            .iter()
            .position(|(bound, _)| ns <= *bound)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(idx) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of checks with this outcome so far.
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Fresh => &self.fresh,
            Outcome::Replay => &self.replay,
            Outcome::BadRequest => &self.bad_request,
            Outcome::Error => &self.error,
        }
        .load(Ordering::Relaxed)
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP dpop_replay_checks_total Replay checks by result \
             (fresh=201, replay=409, bad_request=400, error=503)."
        );
        let _ = writeln!(out, "# TYPE dpop_replay_checks_total counter");
        for (label, v) in [
            ("fresh", &self.fresh),
            ("replay", &self.replay),
            ("bad_request", &self.bad_request),
            ("error", &self.error),
        ] {
            let _ = writeln!(
                out,
                "dpop_replay_checks_total{{result=\"{label}\"}} {}",
                ld(v)
            );
        }
        let _ = writeln!(
            out,
            "# HELP dpop_replay_store_errors_total Failed store operations (checks and readiness pings)."
        );
        let _ = writeln!(out, "# TYPE dpop_replay_store_errors_total counter");
        let _ = writeln!(
            out,
            "dpop_replay_store_errors_total {}",
            ld(&self.store_errors)
        );
        let _ = writeln!(
            out,
            "# HELP dpop_replay_check_duration_seconds Time to answer a check from the store (fresh, replay, error)."
        );
        let _ = writeln!(out, "# TYPE dpop_replay_check_duration_seconds histogram");
        let mut cumulative = 0u64;
        for ((_, le), b) in BUCKETS.iter().zip(self.buckets.iter()) {
            cumulative += ld(b);
            let _ = writeln!(
                out,
                "dpop_replay_check_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        // +Inf is the total count, read once so buckets stay monotonic even under writes.
        let count = ld(&self.count).max(cumulative);
        let _ = writeln!(
            out,
            "dpop_replay_check_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum_ns = ld(&self.sum_ns);
        let _ = writeln!(
            out,
            "dpop_replay_check_duration_seconds_sum {}.{:09}",
            sum_ns / 1_000_000_000,
            sum_ns % 1_000_000_000
        );
        let _ = writeln!(out, "dpop_replay_check_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP dpop_replay_batches_total Batches checked: /v1/replay/batch requests and gRPC stream messages (their entries are also in dpop_replay_checks_total)."
        );
        let _ = writeln!(out, "# TYPE dpop_replay_batches_total counter");
        let _ = writeln!(out, "dpop_replay_batches_total {}", ld(&self.batches));
        let _ = writeln!(
            out,
            "# HELP dpop_replay_batch_entries_total Valid entries received in batches (entries / batches = mean batch size)."
        );
        let _ = writeln!(out, "# TYPE dpop_replay_batch_entries_total counter");
        let _ = writeln!(
            out,
            "dpop_replay_batch_entries_total {}",
            ld(&self.batch_entries)
        );
        for (name, kind, help, v) in [
            (
                "dpop_replay_grpc_streams_total",
                "counter",
                "gRPC Check streams opened.",
                &self.grpc_streams,
            ),
            (
                "dpop_replay_grpc_streams_open",
                "gauge",
                "gRPC Check streams open now.",
                &self.grpc_streams_open,
            ),
            (
                "dpop_replay_grpc_messages_total",
                "counter",
                "Messages received on gRPC Check streams (checked ones are also in dpop_replay_batches_total).",
                &self.grpc_messages,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", ld(v));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram() {
        let m = Metrics::default();
        m.count(Outcome::Fresh);
        m.count(Outcome::Fresh);
        m.count(Outcome::Replay);
        m.count(Outcome::BadRequest);
        m.store_error();
        m.observe(Duration::from_micros(50));
        m.observe(Duration::from_micros(100));
        m.observe(Duration::from_millis(3));
        m.observe(Duration::from_secs(2));
        let t = m.render();
        assert!(t.contains("dpop_replay_checks_total{result=\"fresh\"} 2\n"));
        assert!(t.contains("dpop_replay_checks_total{result=\"replay\"} 1\n"));
        assert!(t.contains("dpop_replay_checks_total{result=\"bad_request\"} 1\n"));
        assert!(t.contains("dpop_replay_checks_total{result=\"error\"} 0\n"));
        assert!(t.contains("dpop_replay_store_errors_total 1\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_bucket{le=\"0.0001\"} 2\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_bucket{le=\"0.005\"} 3\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_bucket{le=\"1\"} 3\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_count 4\n"));
        assert!(t.contains("dpop_replay_check_duration_seconds_sum 2.003150000\n"));
        assert!(t.contains("# TYPE dpop_replay_check_duration_seconds histogram\n"));
    }
}
