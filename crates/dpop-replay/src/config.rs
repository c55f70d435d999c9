//! Command line and environment configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Default Redis URL when `--backend redis` is given without `--redis-url`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Which store backs the replay check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// In-process, bounded, TTL-expiring table: one instance only (local use, tests).
    Memory,
    /// Redis or Redis Cluster: `SET key 1 NX EX ttl`, shared by every replica.
    Redis,
}

#[derive(Debug, Parser)]
#[command(
    name = "dpop-replay",
    version,
    about = "DPoP jti replay-check service for the dpop-guard Envoy filter",
    long_about = "DPoP jti replay-check service for the dpop-guard Envoy filter.\n\n\
        POST /v1/replay {\"key\": \"dpop:jti:<43 base64url chars>\", \"ttl\": <seconds>}\n  \
        201 {\"result\":\"fresh\"}   first use (the key is now recorded for ttl seconds)\n  \
        409 {\"result\":\"replay\"}  seen before within its ttl\n  \
        400 {\"error\":\"...\"}      bad input (nothing is recorded)\n  \
        503 {\"error\":\"...\"}      store unavailable, timed out, or (memory) full\n\
        GET /healthz  200 while the process runs\n\
        GET /readyz   200 when the store answers a PING, else 503\n\
        GET /metrics  Prometheus text\n\n\
        Serves HTTP/1.1 (keep-alive) and HTTP/2 cleartext (prior knowledge) on the same port.\n\
        Every flag can also be set by the environment variable shown with it.\n\
        SIGTERM/SIGINT: stop accepting, finish in-flight requests (at most 10 s), exit 0."
)]
pub struct Cli {
    /// Address (IP:port) to listen on.
    #[arg(long, env = "DPOP_REPLAY_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Store backend. Default: `redis` when a Redis URL is given (flag or env), else `memory`.
    #[arg(long, env = "DPOP_REPLAY_BACKEND", value_enum)]
    pub backend: Option<BackendKind>,

    /// Redis URL (redis://[user:password@]host:port[/db]); with --redis-cluster a
    /// comma-separated list of seed nodes. Giving it selects the redis backend unless
    /// --backend says otherwise. [default with --backend redis: redis://127.0.0.1:6379]
    #[arg(long, env = "DPOP_REPLAY_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Talk Redis Cluster protocol (slot routing, MOVED/ASK) to the --redis-url seed nodes.
    /// Env values 1/true/yes/on enable it, 0/false/no/off disable it.
    #[arg(
        long,
        env = "DPOP_REPLAY_REDIS_CLUSTER",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub redis_cluster: bool,

    /// Per-command Redis timeout in milliseconds: a slower or dead Redis answers 503 after this.
    #[arg(
        long,
        env = "DPOP_REPLAY_REDIS_TIMEOUT_MS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub redis_timeout_ms: u64,

    /// Memory backend: maximum number of live keys. When full of unexpired keys, new keys get
    /// 503 (a live key is never dropped to make room).
    #[arg(
        long,
        env = "DPOP_REPLAY_MEMORY_CAPACITY",
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000_000)
    )]
    pub memory_capacity: u64,

    /// Largest accepted "ttl" in seconds; a larger one is a 400.
    #[arg(
        long,
        env = "DPOP_REPLAY_MAX_TTL",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u32).range(1..=2_592_000)
    )]
    pub max_ttl: u32,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Chosen backend.
    pub backend: BackendKind,
    /// Redis URL(s) (only used by the redis backend).
    pub redis_url: String,
    /// Redis Cluster mode.
    pub redis_cluster: bool,
    /// Per-command Redis timeout.
    pub redis_timeout: Duration,
    /// Memory backend capacity.
    pub memory_capacity: usize,
    /// Largest accepted ttl (seconds).
    pub max_ttl: u32,
    /// Start-up warnings to log (configuration that is ignored).
    pub warnings: Vec<String>,
}

impl Cli {
    /// Applies the defaulting rules.
    pub fn into_settings(self) -> Result<Settings, String> {
        let url_given = self
            .redis_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty());
        let backend = self.backend.unwrap_or(if url_given {
            BackendKind::Redis
        } else {
            BackendKind::Memory
        });
        let mut warnings = Vec::new();
        if backend == BackendKind::Memory && (url_given || self.redis_cluster) {
            warnings.push(
                "--backend memory: --redis-url/--redis-cluster are ignored (replay state is \
                 per-process, not shared)"
                    .to_owned(),
            );
        }
        let redis_url = match self.redis_url {
            Some(u) if !u.trim().is_empty() => u,
            _ => DEFAULT_REDIS_URL.to_owned(),
        };
        Ok(Settings {
            listen: self.listen,
            backend,
            redis_url,
            redis_cluster: self.redis_cluster,
            redis_timeout: Duration::from_millis(self.redis_timeout_ms),
            memory_capacity: usize::try_from(self.memory_capacity)
                .map_err(|_| "--memory-capacity too large for this platform".to_owned())?,
            max_ttl: self.max_ttl,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Settings {
        let mut v = vec!["dpop-replay"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().into_settings().unwrap()
    }

    #[test]
    fn defaults() {
        let s = parse(&[]);
        assert_eq!(s.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(s.backend, BackendKind::Memory);
        assert_eq!(s.redis_url, DEFAULT_REDIS_URL);
        assert!(!s.redis_cluster);
        assert_eq!(s.redis_timeout, Duration::from_millis(100));
        assert_eq!(s.memory_capacity, 1_000_000);
        assert_eq!(s.max_ttl, 86_400);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn redis_url_implies_redis_backend() {
        let s = parse(&["--redis-url", "redis://r:6379"]);
        assert_eq!(s.backend, BackendKind::Redis);
        assert_eq!(s.redis_url, "redis://r:6379");
        let s = parse(&["--backend", "redis"]);
        assert_eq!(s.backend, BackendKind::Redis);
        assert_eq!(s.redis_url, DEFAULT_REDIS_URL);
        let s = parse(&["--backend", "memory", "--redis-url", "redis://r:6379"]);
        assert_eq!(s.backend, BackendKind::Memory);
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn rejects_out_of_range_values() {
        for args in [
            &["dpop-replay", "--redis-timeout-ms", "0"][..],
            &["dpop-replay", "--memory-capacity", "0"],
            &["dpop-replay", "--max-ttl", "0"],
            &["dpop-replay", "--max-ttl", "-5"],
            &["dpop-replay", "--backend", "etcd"],
            &["dpop-replay", "--listen", "nowhere"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
