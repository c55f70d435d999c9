//! Redis backend against a real `redis-server` started by the tests themselves.
//!
//! Needs `redis-server` on PATH (Debian package `redis-server`). Without it these tests FAIL,
//! unless DPOP_REPLAY_SKIP_REDIS=1 is set (then they print SKIPPED and pass).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check, check_h2, get, key, metric, redis_required, Conn, RedisServer, Server};
use dpop_replay::ReplayBackend;

async fn service_for(redis: &RedisServer, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis-url", url.as_str(), "--redis-timeout-ms", "100"];
    args.extend_from_slice(extra);
    Server::start(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fresh_replay_and_ttl() {
    if !redis_required() {
        return;
    }
    let redis = RedisServer::start();
    // --redis-url alone selects the redis backend
    let srv = service_for(&redis, &[]).await;
    assert!(srv.state.backend.describe().starts_with("redis "));
    assert_eq!(get(srv.addr, "/readyz").await.status, 200);

    let k = key("r", 1);
    let r = check(srv.addr, &k, 180).await;
    assert_eq!((r.status, r.body.as_str()), (201, r#"{"result":"fresh"}"#));
    let r = check(srv.addr, &k, 180).await;
    assert_eq!((r.status, r.body.as_str()), (409, r#"{"result":"replay"}"#));
    assert_eq!(check_h2(srv.addr, &k, 180).await.status, 409);

    // the key is really in Redis, with value 1 and the requested TTL (EX)
    assert_eq!(redis.cmd(&format!("GET {k}")), "1");
    let ttl: i64 = redis.cmd(&format!("TTL {k}"))[1..].parse().unwrap();
    assert!((178..=180).contains(&ttl), "ttl {ttl}");
    // a replay does not extend the TTL
    let k2 = key("r", 2);
    assert_eq!(check(srv.addr, &k2, 1).await.status, 201);
    assert_eq!(check(srv.addr, &k2, 3600).await.status, 409);
    let ttl: i64 = redis.cmd(&format!("TTL {k2}"))[1..].parse().unwrap();
    assert!(ttl <= 1, "ttl {ttl}");
    // and it expires: fresh again
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(redis.cmd(&format!("EXISTS {k2}")), ":0");
    assert_eq!(check(srv.addr, &k2, 1).await.status, 201);

    // a 400 writes nothing to Redis
    let k3 = key("r", 3);
    assert_eq!(check(srv.addr, &k3, 0).await.status, 400);
    assert_eq!(redis.cmd(&format!("EXISTS {k3}")), ":0");
    assert_eq!(check(srv.addr, &k3, 60).await.status, 201);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_exactly_once_with_200_concurrent_requests() {
    if !redis_required() {
        return;
    }
    let redis = RedisServer::start();
    let srv = service_for(&redis, &["--backend", "redis"]).await;
    for round in 0..3 {
        let k = Arc::new(key("rc", round));
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let k = k.clone();
                let b = barrier.clone();
                let addr = srv.addr;
                tokio::spawn(async move {
                    let mut c = Conn::open(addr).await;
                    b.wait().await;
                    c.check(&k, 60).await.status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            199,
            "{statuses:?}"
        );
    }
    srv.stop().await;
}

/// Redis killed: 503 within about the timeout, /readyz 503. Redis back on the same port: the
/// same service process answers 201 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_gives_503_and_recovers_without_restart() {
    if !redis_required() {
        return;
    }
    let mut redis = RedisServer::start();
    let srv = service_for(&redis, &[]).await;
    let mut c = Conn::open(srv.addr).await;
    assert_eq!(c.check(&key("o", 0), 60).await.status, 201);

    redis.kill();
    for n in 1..=5 {
        let start = Instant::now();
        let r = c.check(&key("o", n), 60).await;
        let took = start.elapsed();
        assert_eq!(r.status, 503, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["error"].is_string());
        // timeout is 100 ms; allow scheduling slack on a busy 2-core box
        assert!(took < Duration::from_millis(600), "503 took {took:?}");
    }
    let start = Instant::now();
    assert_eq!(get(srv.addr, "/readyz").await.status, 503);
    assert!(start.elapsed() < Duration::from_millis(600));
    assert_eq!(get(srv.addr, "/healthz").await.status, 200);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 100;
    loop {
        n += 1;
        let r = c.check(&key("o", n), 60).await;
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "no recovery within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.check(&key("o", n), 60).await.status, 409);
    assert_eq!(get(srv.addr, "/readyz").await.status, 200);

    let page = get(srv.addr, "/metrics").await.body;
    assert!(metric(&page, "dpop_replay_checks_total{result=\"error\"}") >= 5.0);
    assert!(metric(&page, "dpop_replay_store_errors_total") >= 6.0);
    srv.stop().await;
}

/// The service starts while Redis is down (lazy connect), is not ready, then works once Redis
/// comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_then_up() {
    if !redis_required() {
        return;
    }
    let port = common::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let srv = Server::start(&["--redis-url", &url, "--redis-timeout-ms", "100"]).await;
    assert_eq!(get(srv.addr, "/readyz").await.status, 503);
    assert_eq!(check(srv.addr, &key("d", 0), 60).await.status, 503);
    let _redis = RedisServer::start_on(port, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while check(srv.addr, &key("d", n), 60).await.status != 201 {
        assert!(Instant::now() < deadline, "no recovery within 10 s");
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(srv.addr, "/readyz").await.status, 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_mode() {
    if !redis_required() {
        return;
    }
    let redis = RedisServer::start_cluster();
    let url = redis.url();
    let srv = Server::start(&[
        "--backend",
        "redis",
        "--redis-cluster",
        "--redis-url",
        &url,
        "--redis-timeout-ms",
        "500",
    ])
    .await;
    assert!(srv.state.backend.describe().starts_with("redis cluster "));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(srv.addr, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "cluster never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 0..20 {
        let k = key("cl", n);
        assert_eq!(check(srv.addr, &k, 120).await.status, 201);
        assert_eq!(check(srv.addr, &k, 120).await.status, 409);
        let ttl: i64 = redis.cmd(&format!("TTL {k}"))[1..].parse().unwrap();
        assert!((118..=120).contains(&ttl), "ttl {ttl}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_batch_is_one_pipeline_with_per_entry_verdicts() {
    if !redis_required() {
        return;
    }
    let redis = RedisServer::start();
    let srv = service_for(&redis, &[]).await;
    let keys: Vec<String> = (0..64).map(|n| key("rb", n)).collect();
    assert_eq!(check(srv.addr, &keys[5], 120).await.status, 201);
    let entries: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), 120)).collect();
    let (r, results) = common::batch(srv.addr, &entries).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, s) in results.iter().enumerate() {
        assert_eq!(*s, if i == 5 { 409 } else { 201 }, "entry {i}");
    }
    let ttl: i64 = redis.cmd(&format!("TTL {}", keys[10]))[1..]
        .parse()
        .unwrap();
    assert!((118..=120).contains(&ttl), "ttl {ttl}");
    let (_, again) = common::batch(srv.addr, &entries).await;
    assert!(again.iter().all(|s| *s == 409));
    // Redis down: the whole batch is 503 (the filter applies on_error to every member)
    let mut redis = redis;
    redis.kill();
    let fresh: Vec<String> = (100..104).map(|n| key("rb", n)).collect();
    let entries: Vec<(&str, i64)> = fresh.iter().map(|k| (k.as_str(), 120)).collect();
    assert_eq!(common::batch(srv.addr, &entries).await.0.status, 503);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_batch() {
    if !redis_required() {
        return;
    }
    let redis = RedisServer::start_cluster();
    let url = redis.url();
    let srv = Server::start(&[
        "--backend",
        "redis",
        "--redis-cluster",
        "--redis-url",
        &url,
        "--redis-timeout-ms",
        "500",
    ])
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(srv.addr, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "cluster never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys: Vec<String> = (0..40).map(|n| key("cb", n)).collect();
    let entries: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), 120)).collect();
    let (r, results) = common::batch(srv.addr, &entries).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(results.iter().all(|s| *s == 201), "{results:?}");
    let (_, again) = common::batch(srv.addr, &entries).await;
    assert!(again.iter().all(|s| *s == 409), "{again:?}");
    srv.stop().await;
}
