//! HTTP-level tests of the real server (memory backend), in-process on an ephemeral port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::{check, check_h2, get, key, metric, send, Conn, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_then_replay() {
    let srv = Server::start(&[]).await;
    let k = key("fr", 1);
    let r = check(srv.addr, &k, 180).await;
    assert_eq!((r.status, r.body.as_str()), (201, r#"{"result":"fresh"}"#));
    assert_eq!(r.content_type, "application/json");
    let r = check(srv.addr, &k, 180).await;
    assert_eq!((r.status, r.body.as_str()), (409, r#"{"result":"replay"}"#));
    // another key is unaffected
    assert_eq!(check(srv.addr, &key("fr", 2), 180).await.status, 201);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connection_serves_many_checks() {
    let srv = Server::start(&[]).await;
    let mut c = Conn::open(srv.addr).await;
    for n in 0..50 {
        assert_eq!(c.check(&key("ka", n), 60).await.status, 201);
        assert_eq!(c.check(&key("ka", n), 60).await.status, 409);
        // a 400 does not break the connection either
        let r = c.send("POST", "/v1/replay", JSON, b"{".to_vec()).await;
        assert_eq!(r.status, 400);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge() {
    let srv = Server::start(&[]).await;
    let k = key("h2", 1);
    assert_eq!(check_h2(srv.addr, &k, 60).await.status, 201);
    assert_eq!(check_h2(srv.addr, &k, 60).await.status, 409);
    assert_eq!(check(srv.addr, &k, 60).await.status, 409);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ttl_expires() {
    let srv = Server::start(&[]).await;
    let k = key("ttl", 1);
    assert_eq!(check(srv.addr, &k, 1).await.status, 201);
    assert_eq!(check(srv.addr, &k, 1).await.status, 409);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(check(srv.addr, &k, 1).await.status, 201);
    srv.stop().await;
}

/// Every bad request is a 400 with a JSON error, and stores nothing: the key it carried (if
/// any) is still fresh afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_and_store_nothing() {
    let srv = Server::start(&["--max-ttl", "86400"]).await;
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        key("bad", n)
    };
    struct Case {
        name: &'static str,
        headers: Vec<(&'static str, &'static str)>,
        body: Vec<u8>,
        key: Option<String>,
    }
    let mut cases = Vec::new();
    let mut json_case = |name: &'static str, f: &dyn Fn(&str) -> String, k: String| {
        cases.push(Case {
            name,
            headers: JSON.to_vec(),
            body: f(&k).into_bytes(),
            key: Some(k),
        });
    };
    json_case("ttl 0", &|k| format!(r#"{{"key":"{k}","ttl":0}}"#), next());
    json_case(
        "negative ttl",
        &|k| format!(r#"{{"key":"{k}","ttl":-180}}"#),
        next(),
    );
    json_case(
        "ttl above max",
        &|k| format!(r#"{{"key":"{k}","ttl":86401}}"#),
        next(),
    );
    json_case(
        "ttl huge",
        &|k| format!(r#"{{"key":"{k}","ttl":1e40}}"#),
        next(),
    );
    json_case(
        "ttl float",
        &|k| format!(r#"{{"key":"{k}","ttl":180.5}}"#),
        next(),
    );
    json_case(
        "ttl string",
        &|k| format!(r#"{{"key":"{k}","ttl":"180"}}"#),
        next(),
    );
    json_case(
        "ttl null",
        &|k| format!(r#"{{"key":"{k}","ttl":null}}"#),
        next(),
    );
    json_case("ttl missing", &|k| format!(r#"{{"key":"{k}"}}"#), next());
    json_case(
        "unknown field",
        &|k| format!(r#"{{"key":"{k}","ttl":180,"x":1}}"#),
        next(),
    );
    json_case(
        "duplicate field",
        &|k| format!(r#"{{"key":"{k}","ttl":180,"ttl":5}}"#),
        next(),
    );
    json_case(
        "trailing garbage",
        &|k| format!(r#"{{"key":"{k}","ttl":180}} x"#),
        next(),
    );
    json_case(
        "two documents",
        &|k| format!(r#"{{"key":"{k}","ttl":180}}{{}}"#),
        next(),
    );
    json_case("array", &|k| format!(r#"["{k}",180]"#), next());
    json_case(
        "oversized key",
        &|k| format!(r#"{{"key":"{k}{}","ttl":180}}"#, "A".repeat(200)),
        next(),
    );
    json_case(
        "key one char longer",
        &|k| format!(r#"{{"key":"{k}A","ttl":180}}"#),
        next(),
    );
    json_case(
        "key one char shorter",
        &|k| format!(r#"{{"key":"{}","ttl":180}}"#, &k[..51]),
        next(),
    );
    json_case(
        "key with padding",
        &|k| format!(r#"{{"key":"{}=","ttl":180}}"#, &k[..51]),
        next(),
    );
    json_case(
        "key with '+'",
        &|k| format!(r#"{{"key":"{}+","ttl":180}}"#, &k[..51]),
        next(),
    );
    json_case(
        "wrong prefix",
        &|k| format!(r#"{{"key":"dpop:jtx:{}","ttl":180}}"#, &k[9..]),
        next(),
    );
    json_case(
        "no prefix",
        &|k| format!(r#"{{"key":"{}","ttl":180}}"#, &k[9..]),
        next(),
    );
    json_case(
        "key not a string",
        &|_| r#"{"key":12345,"ttl":180}"#.to_owned(),
        next(),
    );
    // content-type other than JSON, with an otherwise valid body
    let k = next();
    cases.push(Case {
        name: "text/plain",
        headers: vec![("content-type", "text/plain")],
        body: format!(r#"{{"key":"{k}","ttl":180}}"#).into_bytes(),
        key: Some(k),
    });
    let k = next();
    cases.push(Case {
        name: "form",
        headers: vec![("content-type", "application/x-www-form-urlencoded")],
        body: format!(r#"{{"key":"{k}","ttl":180}}"#).into_bytes(),
        key: Some(k),
    });
    // valid JSON padded with whitespace past 1 KiB
    let k = next();
    cases.push(Case {
        name: "body over 1 KiB",
        headers: JSON.to_vec(),
        body: format!(r#"{{"key":"{k}","ttl":180}}{}"#, " ".repeat(1100)).into_bytes(),
        key: Some(k),
    });
    // 1 MiB body
    let k = next();
    cases.push(Case {
        name: "1 MiB body",
        headers: JSON.to_vec(),
        body: format!(
            r#"{{"key":"{k}","ttl":180,"pad":"{}"}}"#,
            "A".repeat(1 << 20)
        )
        .into_bytes(),
        key: Some(k),
    });
    for (name, body) in [
        ("garbage", b"\x00\xffnot json at all".to_vec()),
        ("empty body", Vec::new()),
        ("truncated", br#"{"key":"dpop:jti:"#.to_vec()),
        ("empty object", b"{}".to_vec()),
        ("null", b"null".to_vec()),
    ] {
        cases.push(Case {
            name,
            headers: JSON.to_vec(),
            body,
            key: None,
        });
    }

    let total = cases.len();
    for c in cases {
        let r = send(srv.addr, "POST", "/v1/replay", &c.headers, c.body).await;
        assert_eq!(r.status, 400, "{}: {}", c.name, r.body);
        assert_eq!(r.content_type, "application/json", "{}", c.name);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["error"].is_string(), "{}: {}", c.name, r.body);
        if let Some(k) = c.key {
            let ok = check(srv.addr, &k, 180).await;
            assert_eq!(ok.status, 201, "{}: key was stored by a 400", c.name);
        }
    }
    let page = get(srv.addr, "/metrics").await.body;
    assert_eq!(
        metric(&page, "dpop_replay_checks_total{result=\"bad_request\"}"),
        total as f64
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_variants_and_absent_are_accepted() {
    let srv = Server::start(&[]).await;
    let r = send(
        srv.addr,
        "POST",
        "/v1/replay",
        &[("content-type", "application/json; charset=utf-8")],
        format!(r#"{{"key":"{}","ttl":60}}"#, key("ct", 1)).into_bytes(),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = send(
        srv.addr,
        "POST",
        "/v1/replay",
        &[],
        format!(r#"{{"key":"{}","ttl":60}}"#, key("ct", 2)).into_bytes(),
    )
    .await;
    assert_eq!(r.status, 201);
    // JSON escapes in the key are decoded before validation
    let escaped = key("ct", 3).replacen("dpop", "\\u0064pop", 1);
    let r = send(
        srv.addr,
        "POST",
        "/v1/replay",
        JSON,
        format!(r#"{{ "ttl" : 60 , "key" : "{escaped}" }}"#).into_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(check(srv.addr, &key("ct", 3), 60).await.status, 409);
    srv.stop().await;
}

/// A chunked body (no content-length) over the limit is cut off at 1 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_oversized_body_is_400() {
    let srv = Server::start(&[]).await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut req = b"POST /v1/replay HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        .to_vec();
    for _ in 0..8 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b' '; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    srv.stop().await;
}

/// A valid body split over several chunks is reassembled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_valid_body_is_accepted() {
    let srv = Server::start(&[]).await;
    let k = key("chunk", 1);
    let body = format!(r#"{{"key":"{k}","ttl":60}}"#);
    let mut req = b"POST /v1/replay HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        .to_vec();
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&req).await.unwrap();
    for part in body.as_bytes().chunks(7) {
        req = format!("{:x}\r\n", part.len()).into_bytes();
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    assert_eq!(check(srv.addr, &k, 60).await.status, 409);
    srv.stop().await;
}

/// A declared length far over the limit is refused at once, without waiting for the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declared_length_is_400_without_reading() {
    let srv = Server::start(&[]).await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /v1/replay HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 104857600\r\n\r\n{\"key\":",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .expect("server waited for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_methods() {
    let srv = Server::start(&[]).await;
    let r = get(srv.addr, "/healthz").await;
    assert_eq!(r.status, 200);
    let r = get(srv.addr, "/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(get(srv.addr, "/v1/replay").await.status, 405);
    assert_eq!(get(srv.addr, "/nope").await.status, 404);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_page() {
    let srv = Server::start(&["--memory-capacity", "3"]).await;
    for n in 0..3 {
        assert_eq!(check(srv.addr, &key("m", n), 60).await.status, 201);
    }
    assert_eq!(check(srv.addr, &key("m", 0), 60).await.status, 409);
    assert_eq!(check(srv.addr, &key("m", 0), 0).await.status, 400);
    let full = check(srv.addr, &key("m", 9), 60).await;
    assert_eq!(
        (full.status, full.body.as_str()),
        (503, r#"{"error":"replay store full"}"#)
    );
    let r = get(srv.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
    let p = &r.body;
    assert_eq!(metric(p, "dpop_replay_checks_total{result=\"fresh\"}"), 3.0);
    assert_eq!(
        metric(p, "dpop_replay_checks_total{result=\"replay\"}"),
        1.0
    );
    assert_eq!(
        metric(p, "dpop_replay_checks_total{result=\"bad_request\"}"),
        1.0
    );
    assert_eq!(metric(p, "dpop_replay_checks_total{result=\"error\"}"), 1.0);
    assert_eq!(metric(p, "dpop_replay_store_errors_total"), 1.0);
    assert_eq!(metric(p, "dpop_replay_check_duration_seconds_count"), 5.0);
    assert_eq!(
        metric(p, "dpop_replay_check_duration_seconds_bucket{le=\"+Inf\"}"),
        5.0
    );
    assert!(
        metric(
            p,
            "dpop_replay_check_duration_seconds_bucket{le=\"0.0001\"}"
        ) >= 0.0
    );
    assert_eq!(
        metric(p, "dpop_replay_check_duration_seconds_bucket{le=\"1\"}"),
        5.0
    );
    assert!(metric(p, "dpop_replay_check_duration_seconds_sum") > 0.0);
    for line in [
        "# TYPE dpop_replay_checks_total counter",
        "# TYPE dpop_replay_store_errors_total counter",
        "# TYPE dpop_replay_check_duration_seconds histogram",
    ] {
        assert!(p.contains(line), "{line}");
    }
    // a full memory store still reports ready: the store answers, it just has no room
    assert_eq!(get(srv.addr, "/readyz").await.status, 200);
    srv.stop().await;
}

/// 200 concurrent requests on separate connections for one key: exactly one 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_with_200_concurrent_requests() {
    let srv = Server::start(&[]).await;
    for round in 0..3 {
        let k = Arc::new(key("conc", round));
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
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 199);
    }
    srv.stop().await;
}

/// The wire contract from the filter's side: the body and key the filter builds (with the same
/// `replay-wire` functions it calls) are accepted here, and the statuses this service answers
/// are the ones the filter reads as fresh and replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filters_request_parses_and_its_answers_read_back() {
    let srv = Server::start(&[]).await;
    let key = replay_wire::replay_key("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "jti-1");
    let body = replay_wire::request_body(&key, 121);
    let mut c = Conn::open(srv.addr).await;
    let first = c
        .send("POST", replay_wire::PATH, JSON, body.clone().into_bytes())
        .await;
    assert_eq!(first.status, replay_wire::status::FRESH);
    let again = c
        .send("POST", replay_wire::PATH, JSON, body.into_bytes())
        .await;
    assert_eq!(again.status, replay_wire::status::REPLAYED);
    for (reply, want) in [
        (&first, replay_wire::Answer::Fresh),
        (&again, replay_wire::Answer::Replayed),
    ] {
        let code = reply.status.to_string();
        assert_eq!(replay_wire::answer(Some(code.as_bytes())), want);
    }
    // what the service refuses, the filter reads as an error (never as fresh)
    let bad = c
        .send(
            "POST",
            replay_wire::PATH,
            JSON,
            b"{\"key\":\"x\",\"ttl\":1}".to_vec(),
        )
        .await;
    assert_eq!(bad.status, replay_wire::status::BAD_REQUEST);
    let code = bad.status.to_string();
    assert_eq!(
        replay_wire::answer(Some(code.as_bytes())),
        replay_wire::Answer::Error
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_each_entry_in_order() {
    let srv = Server::start(&[]).await;
    let (a, b) = (key("ba", 1), key("ba", 2));
    assert_eq!(check(srv.addr, &a, 60).await.status, 201);
    let (r, results) = common::batch(
        srv.addr,
        &[
            (&a, 60),
            (&b, 60),
            ("dpop:jti:short", 60),
            (&b, 60),
            (&key("ba", 3), 0),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // a seen before; b fresh once, then a replay within the same batch; bad key; bad ttl
    assert_eq!(results, vec![409, 201, 400, 409, 400]);
    assert_eq!(check(srv.addr, &b, 60).await.status, 409);
    let m = get(srv.addr, "/metrics").await.body;
    assert_eq!(metric(&m, "dpop_replay_batches_total"), 1.0);
    assert_eq!(metric(&m, "dpop_replay_batch_entries_total"), 3.0);
    // malformed batches are refused whole
    for body in [
        &b"[]"[..],
        br#"{"entries":[]}"#,
        br#"{"entries":{}}"#,
        br#"{"entries":[],"x":1}"#,
        b"{",
    ] {
        let r = send(srv.addr, "POST", "/v1/replay/batch", JSON, body.to_vec()).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
    }
    let many: Vec<String> = (0..257).map(|n| key("bm", n)).collect();
    let entries: Vec<(&str, i64)> = many.iter().map(|k| (k.as_str(), 60)).collect();
    assert_eq!(common::batch(srv.addr, &entries).await.0.status, 400);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_exactly_once_against_concurrent_single_checks() {
    let srv = Arc::new(Server::start(&[]).await);
    let k = key("bx", 1);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (addr, k) = (srv.addr, k.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                u16::from(check(addr, &k, 60).await.status == 201)
            } else {
                let (_, r) = common::batch(addr, &[(&k, 60), (&k, 60)]).await;
                r.iter().filter(|s| **s == 201).count() as u16
            }
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        fresh += t.await.unwrap();
    }
    assert_eq!(fresh, 1);
    Arc::try_unwrap(srv).ok().unwrap().stop().await;
}
