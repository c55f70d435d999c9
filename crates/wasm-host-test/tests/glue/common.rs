//! Shared by the glue tests: the built wasm (loaded once), the shipped demo configuration,
//! request builders and assertions that print the guest's log on failure.

use proxy_wasm_emu::dpop::{check_reply_shape, reply_slug, Key, ProofClaims};
use proxy_wasm_emu::{Exchange, Outcome, Pairs, Request, Vm, Wasm};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const NOW: i64 = 1_700_000_000;
pub const AUTHORITY: &str = "127.0.0.1:10000";

/// The built wasm; a clear failure when `make wasm` has not been run.
pub fn wasm() -> &'static Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    W.get_or_init(|| Wasm::load_default().unwrap_or_else(|e| panic!("{e}")))
}

/// The plugin configuration of `envoy/envoy.yaml` (the `StringValue` under `configuration`).
pub fn demo_config() -> String {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../envoy/envoy.yaml"
    ))
    .unwrap();
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.contains("google.protobuf.StringValue"));
    lines.next();
    let value = lines.next().unwrap();
    assert!(
        value.trim() == "value: |",
        "unexpected line after StringValue: {value}"
    );
    let indent = value.len() - value.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .collect();
    let json = body.join("\n");
    assert!(json.trim_start().starts_with('{'), "{json}");
    json
}

/// A configured VM at [`NOW`]; panics with the guest's log if it does not start.
pub fn start(config: &str) -> Vm {
    let mut vm = Vm::start(wasm(), config.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    set_now(&mut vm, NOW);
    vm
}

pub fn set_now(vm: &mut Vm, now: i64) {
    vm.host_mut().now_nanos = now as u64 * 1_000_000_000 + 500_000_000;
}

/// A fresh jti per call.
pub fn jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", N.fetch_add(1, Ordering::Relaxed))
}

pub fn htu(path: &str) -> String {
    format!("http://{AUTHORITY}{path}")
}

/// A valid proof for `GET http://AUTHORITY{path}` at [`NOW`].
pub fn proof(key: &Key, path: &str, token: Option<&str>) -> String {
    key.proof(&ProofClaims {
        htm: "GET",
        htu: &htu(path),
        iat: NOW,
        jti: &jti(),
        token,
        nonce: None,
    })
}

/// A GET as Envoy hands it over (pseudo-headers first), plus `extra`.
pub fn get(path: &[u8], extra: &[(&[u8], &[u8])]) -> Request {
    let mut headers: Pairs = vec![
        (b":authority".to_vec(), AUTHORITY.as_bytes().to_vec()),
        (b":path".to_vec(), path.to_vec()),
        (b":method".to_vec(), b"GET".to_vec()),
        (b":scheme".to_vec(), b"http".to_vec()),
        (b"user-agent".to_vec(), b"curl/8".to_vec()),
        (b"x-request-id".to_vec(), b"6c9a0a7b-3211".to_vec()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
    Request {
        headers,
        raw_headers: None,
        end_of_stream: true,
    }
}

/// Run a request to the end; a trap fails the test with the guest's log.
pub fn run(vm: &mut Vm, req: &Request) -> Exchange {
    vm.run(req)
        .unwrap_or_else(|t| panic!("{t}\nrequest headers: {}", show(&req.headers)))
}

pub fn show(pairs: &Pairs) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{:?}: {:?}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request went upstream; returns its headers.
pub fn upstream(ex: &Exchange) -> &Pairs {
    match &ex.outcome {
        Outcome::Upstream(h) => h,
        other => panic!("expected the request upstream, got {other:?}"),
    }
}

/// All values of `name` in `pairs`.
pub fn values<'a>(pairs: &'a Pairs, name: &str) -> Vec<&'a [u8]> {
    pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// A well-formed problem reply with this status and slug; returns the parsed body.
pub fn assert_reply(ex: &Exchange, status: u32, slug: &str) -> serde_json::Value {
    let r = match &ex.outcome {
        Outcome::LocalReply(r) => r,
        other => panic!("expected a {status} {slug} reply, got {other:?}"),
    };
    check_reply_shape(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (r.status, reply_slug(r).as_str()),
        (status, slug),
        "body: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap()
}
