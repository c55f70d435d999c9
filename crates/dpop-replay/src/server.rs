//! HTTP front: routes, the replay handler, graceful serving.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::watch;

use crate::backend::{ReplayBackend, StoreError};
use crate::key::ReplayKey;
use crate::metrics::{Metrics, Outcome};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024;
/// Largest accepted batch body (`/v1/replay/batch`).
pub const MAX_BATCH_BODY_BYTES: usize = 64 * 1024;
/// Most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 256;
/// An over-long body is still read and discarded up to this many bytes (within
/// [`DRAIN_TIME`]) so the client reliably sees the 400 instead of a connection reset.
const DRAIN_MAX_BYTES: u64 = 2 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Shared state of the HTTP handlers.
pub struct AppState<B> {
    /// The store.
    pub backend: B,
    /// Counters.
    pub metrics: Metrics,
    /// Largest accepted ttl.
    pub max_ttl: u32,
    store_ok: AtomicBool,
    /// Set once graceful shutdown begins: the gRPC streams (`crate::grpc`) then finish.
    closing: watch::Sender<bool>,
}

impl<B: ReplayBackend> AppState<B> {
    /// State around a backend.
    pub fn new(backend: B, max_ttl: u32) -> Self {
        Self {
            backend,
            metrics: Metrics::default(),
            max_ttl,
            store_ok: AtomicBool::new(true),
            closing: watch::Sender::new(false),
        }
    }

    /// Asks the open gRPC streams to finish: each stops reading, answers the messages it has
    /// started, and ends with `grpc-status: 14` ([`serve`] calls this when its shutdown
    /// future resolves; a long-lived stream would otherwise hold the shutdown open).
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Watches for [`AppState::begin_shutdown`].
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    fn store_failed(&self, e: &StoreError) {
        self.metrics.store_error();
        // Log transitions only (an outage must not flood the log), never the key.
        if self.store_ok.swap(false, Ordering::Relaxed) {
            eprintln!("dpop-replay: store error, answering 503: {e}");
        }
    }

    fn store_answered(&self) {
        if !self.store_ok.load(Ordering::Relaxed) && !self.store_ok.swap(true, Ordering::Relaxed) {
            eprintln!("dpop-replay: store answering again");
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    ttl: u64,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn json(status: StatusCode, body: &'static str) -> Response {
    respond(status, JSON, body)
}

/// `application/json`, optionally with parameters (`; charset=utf-8`).
fn is_json(v: &HeaderValue) -> bool {
    let Ok(s) = v.to_str() else { return false };
    let mime = s.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

enum BodyError {
    TooLarge,
    Read,
}

/// Reads and throws away the rest of a body, bounded in bytes and time.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                seen += d.len() as u64;
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

/// Collects at most `limit` bytes; one-frame bodies are not copied.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
            drain(body).await;
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            Some(f) => {
                rest.reserve(limit.min(MAX_BATCH_BODY_BYTES));
                rest.extend_from_slice(&f);
                rest.extend_from_slice(&data);
            }
            None => rest.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(rest)))
}

/// A wire-contract status code (all valid HTTP codes; the fallback is unreachable).
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn replay<B: ReplayBackend>(State(st): State<Arc<AppState<B>>>, req: Request) -> Response {
    let bad = |msg: &'static str| {
        st.metrics.count(Outcome::BadRequest);
        json(status(replay_wire::status::BAD_REQUEST), msg)
    };
    let (parts, body) = req.into_parts();
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        if !is_json(ct) {
            drain(body).await;
            return bad(r#"{"error":"content-type must be application/json"}"#);
        }
    }
    if let Some(n) = declared_length(&parts.headers).filter(|n| *n > MAX_BODY_BYTES as u64) {
        if n <= DRAIN_MAX_BYTES {
            drain(body).await;
        } // else: not worth reading; hyper closes the connection after the 400
        return bad(r#"{"error":"body larger than 1024 bytes"}"#);
    }
    let bytes = match read_body(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return bad(r#"{"error":"body larger than 1024 bytes"}"#),
        Err(BodyError::Read) => return bad(r#"{"error":"could not read body"}"#),
    };
    // serde's derive would also take a JSON array ["key", ttl] as the struct: demand an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return bad(r#"{"error":"body must be a JSON object"}"#);
    }
    // Error texts are fixed: serde's messages may quote the submitted values.
    let parsed: ReplayRequest<'_> = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) if e.is_data() => {
            return bad(
                r#"{"error":"body must be {\"key\": string, \"ttl\": integer} and nothing else"}"#,
            )
        }
        Err(_) => return bad(r#"{"error":"body is not valid JSON"}"#),
    };
    let Some(key) = ReplayKey::parse(&parsed.key) else {
        return bad(r#"{"error":"key must be \"dpop:jti:\" followed by 43 base64url characters"}"#);
    };
    let ttl = match u32::try_from(parsed.ttl) {
        Ok(t) if t >= 1 && t <= st.max_ttl => t,
        _ => return bad(r#"{"error":"ttl must be an integer from 1 to the configured maximum"}"#),
    };

    let start = Instant::now();
    let result = st.backend.check_and_set(&key, ttl).await;
    st.metrics.observe(start.elapsed());
    match result {
        Ok(true) => {
            st.store_answered();
            st.metrics.count(Outcome::Fresh);
            json(status(replay_wire::status::FRESH), r#"{"result":"fresh"}"#)
        }
        Ok(false) => {
            st.store_answered();
            st.metrics.count(Outcome::Replay);
            json(
                status(replay_wire::status::REPLAYED),
                r#"{"result":"replay"}"#,
            )
        }
        Err(e) => {
            st.store_failed(&e);
            st.metrics.count(Outcome::Error);
            let body = match e {
                StoreError::Full => r#"{"error":"replay store full"}"#,
                StoreError::Timeout => r#"{"error":"replay store timed out"}"#,
                StoreError::Unavailable(_) | StoreError::UnexpectedReply => {
                    r#"{"error":"replay store unavailable"}"#
                }
            };
            json(status(replay_wire::status::UNAVAILABLE), body)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest<'a> {
    #[serde(borrow)]
    entries: Vec<BatchEntry<'a>>,
}

/// One entry of a batch (a `/v1/replay/batch` body or a gRPC stream message). Each field is
/// checked on its own by [`check_batch`], so a bad one makes that entry 400, not the batch.
#[derive(Deserialize)]
pub(crate) struct BatchEntry<'a> {
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    ttl: Option<serde_json::Value>,
}

/// `POST /v1/replay/batch` (README "Replay service"): `{"entries":[{"key","ttl"},...]}` →
/// 200 `{"results":[201|409|400,...]}` in order, one store round trip for the valid entries. An
/// entry with a bad key or ttl is 400 on its own; a store failure is 503 for the whole batch.
async fn replay_batch<B: ReplayBackend>(
    State(st): State<Arc<AppState<B>>>,
    req: Request,
) -> Response {
    let bad = |msg: &'static str| {
        st.metrics.count(Outcome::BadRequest);
        json(status(replay_wire::status::BAD_REQUEST), msg)
    };
    let (parts, body) = req.into_parts();
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        if !is_json(ct) {
            drain(body).await;
            return bad(r#"{"error":"content-type must be application/json"}"#);
        }
    }
    if let Some(n) = declared_length(&parts.headers).filter(|n| *n > MAX_BATCH_BODY_BYTES as u64) {
        if n <= DRAIN_MAX_BYTES {
            drain(body).await;
        }
        return bad(r#"{"error":"body larger than 65536 bytes"}"#);
    }
    let bytes = match read_body(body, MAX_BATCH_BODY_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return bad(r#"{"error":"body larger than 65536 bytes"}"#),
        Err(BodyError::Read) => return bad(r#"{"error":"could not read body"}"#),
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return bad(r#"{"error":"body must be a JSON object"}"#);
    }
    let parsed: BatchRequest<'_> = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(_) => {
            return bad(
                r#"{"error":"body must be {\"entries\": [{\"key\": string, \"ttl\": integer}, ...]}"}"#,
            )
        }
    };
    match check_batch(&st, &parsed.entries).await {
        BatchVerdict::Results(results) => {
            let list: Vec<String> = results.iter().map(u16::to_string).collect();
            respond(
                StatusCode::OK,
                JSON,
                format!(r#"{{"results":[{}]}}"#, list.join(",")),
            )
        }
        BatchVerdict::Refused => json(
            status(replay_wire::status::BAD_REQUEST),
            r#"{"error":"entries must hold 1 to 256 items"}"#,
        ),
        BatchVerdict::Unavailable => json(
            status(replay_wire::status::UNAVAILABLE),
            r#"{"error":"replay store unavailable"}"#,
        ),
    }
}

/// What [`check_batch`] decided for a batch.
pub(crate) enum BatchVerdict {
    /// One code per entry, in order: 201, 409, or 400 for that entry's key/ttl.
    Results(Vec<u16>),
    /// No entries or more than [`MAX_BATCH_ENTRIES`]: nothing checked (counted as one 400).
    Refused,
    /// The store failed: the whole batch is unchecked (some keys may be recorded).
    Unavailable,
}

/// The checks of a parsed batch, shared by `POST /v1/replay/batch` and each message of the
/// gRPC stream (`crate::grpc`): entries validated one by one (a bad key or ttl is 400 on its
/// own), the valid ones in one store round trip, counted in the metrics.
pub(crate) async fn check_batch<B: ReplayBackend>(
    st: &AppState<B>,
    entries: &[BatchEntry<'_>],
) -> BatchVerdict {
    if entries.is_empty() || entries.len() > MAX_BATCH_ENTRIES {
        st.metrics.count(Outcome::BadRequest);
        return BatchVerdict::Refused;
    }
    // Validate each entry on its own: one bad entry does not sink the others.
    let mut results: Vec<u16> = vec![replay_wire::status::BAD_REQUEST; entries.len()];
    let mut valid: Vec<(usize, (ReplayKey, u32))> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let key = e.key.as_deref().and_then(ReplayKey::parse);
        let ttl = e
            .ttl
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t >= 1 && *t <= st.max_ttl);
        match (key, ttl) {
            (Some(k), Some(t)) => valid.push((i, (k, t))),
            _ => st.metrics.count(Outcome::BadRequest),
        }
    }
    let checked: Vec<(ReplayKey, u32)> = valid.iter().map(|(_, e)| *e).collect();
    let start = Instant::now();
    let verdicts = st.backend.check_and_set_many(&checked).await;
    st.metrics.observe(start.elapsed());
    st.metrics.batch(checked.len());
    match verdicts {
        Ok(v) => {
            st.store_answered();
            for ((i, _), fresh) in valid.iter().zip(v) {
                let (code, outcome) = if fresh {
                    (replay_wire::status::FRESH, Outcome::Fresh)
                } else {
                    (replay_wire::status::REPLAYED, Outcome::Replay)
                };
                st.metrics.count(outcome);
                if let Some(slot) = results.get_mut(*i) {
                    *slot = code;
                }
            }
            BatchVerdict::Results(results)
        }
        Err(e) => {
            st.store_failed(&e);
            for _ in &checked {
                st.metrics.count(Outcome::Error);
            }
            BatchVerdict::Unavailable
        }
    }
}

async fn healthz() -> Response {
    respond(StatusCode::OK, TEXT, "ok\n")
}

async fn readyz<B: ReplayBackend>(State(st): State<Arc<AppState<B>>>) -> Response {
    match st.backend.ping().await {
        Ok(()) => {
            st.store_answered();
            respond(StatusCode::OK, TEXT, "ready\n")
        }
        Err(e) => {
            st.store_failed(&e);
            respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "store unavailable\n")
        }
    }
}

async fn metrics<B: ReplayBackend>(State(st): State<Arc<AppState<B>>>) -> Response {
    respond(StatusCode::OK, PROMETHEUS, st.metrics.render())
}

/// The routes.
pub fn router<B: ReplayBackend>(state: Arc<AppState<B>>) -> Router {
    Router::new()
        .route("/v1/replay", post(replay::<B>))
        .route("/v1/replay/batch", post(replay_batch::<B>))
        .route(crate::grpc::CHECK_PATH, post(crate::grpc::check::<B>))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<B>))
        .route("/metrics", get(metrics::<B>))
        .with_state(state)
}

/// Serves HTTP/1.1 and h2c (prior knowledge; hyper's auto builder tells them apart by the
/// HTTP/2 preface) on `listener` until `shutdown` resolves, then stops accepting and returns
/// once in-flight requests are answered (idle keep-alive connections are closed, open gRPC
/// streams are asked to finish through [`AppState::begin_shutdown`]).
pub async fn serve<B: ReplayBackend>(
    listener: tokio::net::TcpListener,
    state: Arc<AppState<B>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let st = state.clone();
    let shutdown = async move {
        shutdown.await;
        st.begin_shutdown();
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
