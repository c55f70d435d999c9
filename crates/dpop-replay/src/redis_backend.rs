//! Redis / Redis Cluster backend: one atomic `SET key 1 NX EX ttl` per check.
//!
//! Connections are made lazily, so the service starts (and `/readyz` says 503) while Redis is
//! down. Single node: redis-rs `ConnectionManager` (one multiplexed, pipelined connection that
//! reconnects by itself after an I/O error). Cluster: redis-rs `cluster_async::ClusterConnection`
//! (slot map, MOVED/ASK, per-node reconnects). Every command is bounded by `timeout`; sockets get
//! `TCP_NODELAY`, keep-alive and `TCP_USER_TIMEOUT`, so a black-holed Redis is noticed and the
//! connection replaced even when no RST ever arrives.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{Client, IntoConnectionInfo, Value};

use crate::backend::{ReplayBackend, StoreError};
use crate::key::ReplayKey;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The `redis` backend.
pub struct RedisBackend {
    conn: Conn,
    timeout: Duration,
    description: String,
}

fn tcp_settings(timeout: Duration) -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        // Unacknowledged writes for this long kill the socket -> the connection is replaced.
        .set_user_timeout((timeout * 20).max(Duration::from_secs(2)))
}

/// Hides `user:password@` in a Redis URL for logging.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let (scheme, _) = url.split_at(scheme_end + 3);
            let (_, rest) = url.split_at(at + 1);
            format!("{scheme}***@{rest}")
        }
        _ => url.to_owned(),
    }
}

fn map_err(e: &redis::RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else {
        // The category only: server error texts could in principle quote arguments (keys).
        StoreError::Unavailable(format!("{:?}", e.kind()))
    }
}

impl RedisBackend {
    /// Builds the backend without connecting. `urls`: one `redis://` URL, or for a cluster
    /// (`cluster = true`) a comma-separated list of seed node URLs.
    pub fn new(urls: &str, cluster: bool, timeout: Duration) -> Result<Self, String> {
        let list: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            return Err("redis url is empty".into());
        }
        let redacted: Vec<String> = list.iter().map(|u| redact_url(u)).collect();
        let connect_timeout = timeout.max(Duration::from_secs(1));
        let mut infos = Vec::with_capacity(list.len());
        for (url, shown) in list.iter().zip(&redacted) {
            let info = url
                .into_connection_info()
                .map_err(|e| format!("invalid redis url {shown}: {e}"))?
                .set_tcp_settings(tcp_settings(timeout));
            infos.push(info);
        }
        let conn = if cluster {
            let client = ClusterClientBuilder::new(infos)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100)
                .tcp_settings(tcp_settings(timeout))
                .build()
                .map_err(|e| format!("invalid redis cluster config: {e}"))?;
            let cfg = ClusterConfig::new()
                .set_connection_timeout(connect_timeout)
                .set_response_timeout(timeout);
            Conn::Cluster(client.get_pending_async_connection_with_config(cfg))
        } else {
            let [info] = <[redis::ConnectionInfo; 1]>::try_from(infos).map_err(|_| {
                "several redis urls given: a list of seed nodes needs --redis-cluster".to_owned()
            })?;
            let client =
                Client::open(info).map_err(|e| format!("invalid redis url {redacted:?}: {e}"))?;
            // No retries inside one reconnect: the next command after a failed attempt starts a
            // new one, so recovery is as quick as Redis coming back, and a command never waits
            // on a back-off longer than `timeout`.
            let cfg = ConnectionManagerConfig::new()
                .set_number_of_retries(0)
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(timeout));
            let manager = ConnectionManager::new_lazy_with_config(client, cfg)
                .map_err(|e| format!("redis client: {e}"))?;
            Conn::Single(manager)
        };
        let description = format!(
            "redis{} {} (timeout {} ms)",
            if cluster { " cluster" } else { "" },
            redacted.join(","),
            timeout.as_millis()
        );
        Ok(Self {
            conn,
            timeout,
            description,
        })
    }

    async fn run(&self, cmd: &redis::Cmd) -> Result<Value, StoreError> {
        let fut = async {
            match &self.conn {
                Conn::Single(c) => cmd.query_async::<Value>(&mut c.clone()).await,
                Conn::Cluster(c) => cmd.query_async::<Value>(&mut c.clone()).await,
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_err(&e)),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

fn set_nx(key: &ReplayKey, ttl_secs: u32) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key.as_str())
        .arg(1u8)
        .arg("NX")
        .arg("EX")
        .arg(ttl_secs.max(1));
    cmd
}

/// A `SET .. NX` reply: stored (fresh) or not (replay).
fn set_nx_verdict(v: Value) -> Result<bool, StoreError> {
    match v {
        Value::Okay => Ok(true),
        Value::SimpleString(s) if s == "OK" => Ok(true),
        Value::Nil => Ok(false),
        Value::ServerError(e) => Err(StoreError::Unavailable(format!("{:?}", e.kind()))),
        _ => Err(StoreError::UnexpectedReply),
    }
}

impl ReplayBackend for RedisBackend {
    async fn check_and_set(&self, key: &ReplayKey, ttl_secs: u32) -> Result<bool, StoreError> {
        set_nx_verdict(self.run(&set_nx(key, ttl_secs)).await?)
    }

    /// Single node: one pipeline (no `MULTI`: each `SET NX` is atomic on its own, and a
    /// transaction would only add a round of queuing). Cluster: the commands are sent
    /// concurrently on the multiplexed cluster connection, which routes each by its slot and
    /// pipelines per node.
    async fn check_and_set_many(
        &self,
        entries: &[(ReplayKey, u32)],
    ) -> Result<Vec<bool>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let fut = async {
            match &self.conn {
                Conn::Single(c) => {
                    let mut pipe = redis::pipe();
                    for (key, ttl) in entries {
                        pipe.add_command(set_nx(key, *ttl));
                    }
                    let values: Vec<Value> = pipe
                        .query_async(&mut c.clone())
                        .await
                        .map_err(|e| map_err(&e))?;
                    Ok(values)
                }
                Conn::Cluster(c) => {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (i, (key, ttl)) in entries.iter().enumerate() {
                        let cmd = set_nx(key, *ttl);
                        let mut conn = c.clone();
                        tasks.spawn(async move { (i, cmd.query_async::<Value>(&mut conn).await) });
                    }
                    let mut values = vec![Value::Nil; entries.len()];
                    while let Some(done) = tasks.join_next().await {
                        let (i, v) = done.map_err(|_| StoreError::UnexpectedReply)?;
                        let v = v.map_err(|e| map_err(&e))?;
                        if let Some(slot) = values.get_mut(i) {
                            *slot = v;
                        }
                    }
                    Ok(values)
                }
            }
        };
        let values = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r?,
            Err(_) => return Err(StoreError::Timeout),
        };
        if values.len() != entries.len() {
            return Err(StoreError::UnexpectedReply);
        }
        values.into_iter().map(set_nx_verdict).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self.run(&redis::cmd("PING")).await? {
            Value::SimpleString(_) | Value::Okay | Value::BulkString(_) => Ok(()),
            Value::ServerError(e) => Err(StoreError::Unavailable(format!("{:?}", e.kind()))),
            _ => Err(StoreError::UnexpectedReply),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://user:p@ss@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact_url("rediss://:secret@h"), "rediss://***@h");
    }

    #[tokio::test]
    async fn rejects_bad_urls_and_lists_without_cluster() {
        let t = Duration::from_millis(100);
        assert!(RedisBackend::new("", false, t).is_err());
        assert!(RedisBackend::new("http://x", false, t).is_err());
        assert!(RedisBackend::new("redis://a:1,redis://b:2", false, t).is_err());
        assert!(RedisBackend::new("redis://a:1,redis://b:2", true, t).is_ok());
        let b = RedisBackend::new("redis://u:secret@127.0.0.1:1", false, t).unwrap();
        assert!(!b.describe().contains("secret"));
    }

    #[tokio::test]
    async fn unreachable_redis_fails_fast() {
        // Port 1 on loopback: connection refused.
        let t = Duration::from_millis(100);
        let b = RedisBackend::new("redis://127.0.0.1:1", false, t).unwrap();
        let k = ReplayKey::parse("dpop:jti:abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_9").unwrap();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            assert!(b.check_and_set(&k, 10).await.is_err());
            assert!(b.ping().await.is_err());
            assert!(start.elapsed() < Duration::from_secs(1));
        }
    }
}
