//! What the rest of the chain sees (README "Filter state", "Shadow mode", `upstream`, gRPC):
//! the filter state the guest publishes, the upstream edits, shadow refusals that let the
//! request through unchanged, and gRPC refusals as statuses.

use crate::common::*;
use proxy_wasm_emu::dpop::{bound_token, Key};

fn state<'a>(ex: &'a proxy_wasm_emu::Exchange, name: &str) -> Option<&'a str> {
    ex.property(&format!("dpop_guard.{name}"))
        .map(|v| std::str::from_utf8(v).unwrap())
}

#[test]
fn filter_state_for_allow_deny_and_pass() {
    let mut vm = start(r#"{"required": true, "routes": [{"prefix": "/health", "policy": "off"}]}"#);
    let key = Key::new(40);
    let ex = run(
        &mut vm,
        &get(b"/api", &[(b"dpop", proof(&key, "/api", None).as_bytes())]),
    );
    upstream(&ex);
    assert_eq!(state(&ex, "outcome"), Some("allow"));
    assert_eq!(state(&ex, "jkt"), Some(key.jkt().as_str()));
    assert_eq!(state(&ex, "alg"), Some("EdDSA"));
    assert_eq!(state(&ex, "reason"), None);

    let ex = run(&mut vm, &get(b"/api", &[]));
    assert_reply(&ex, 401, "dpop-required");
    assert_eq!(state(&ex, "outcome"), Some("deny"));
    assert_eq!(state(&ex, "reason"), Some("proof_missing"));
    assert_eq!(state(&ex, "jkt"), None);

    let ex = run(&mut vm, &get(b"/health", &[]));
    upstream(&ex);
    assert_eq!(state(&ex, "outcome"), Some("pass"));
}

#[test]
fn shadow_refusal_goes_upstream_unchanged_and_is_counted_apart() {
    let mut vm = start(
        r#"{"required": true, "shadow": true, "routes": [{"prefix": "/enforced/", "policy": "required", "shadow": false}]}"#,
    );
    let ex = run(&mut vm, &get(b"/api", &[(b"x-dpop-jkt", b"forged")]));
    let h = upstream(&ex);
    assert!(values(h, "x-dpop-jkt").is_empty(), "{}", show(h));
    assert_eq!(state(&ex, "outcome"), Some("shadow_deny"));
    assert_eq!(state(&ex, "reason"), Some("proof_missing"));
    assert_eq!(vm.host().metric("dpop_guard.shadow.denied"), 1);
    assert_eq!(
        vm.host().metric("dpop_guard.shadow.denied.proof_missing"),
        1
    );
    assert_eq!(vm.host().metric("dpop_guard.denied"), 0);
    // a rule with "shadow": false is enforced
    let ex = run(&mut vm, &get(b"/enforced/x", &[]));
    assert_reply(&ex, 401, "dpop-required");
    assert_eq!(vm.host().metric("dpop_guard.denied"), 1);

    // replay entries are still recorded: the second use is a shadow_deny with the key known
    let key = Key::new(41);
    let p = proof(&key, "/api", None);
    let first = run(&mut vm, &get(b"/api", &[(b"dpop", p.as_bytes())]));
    assert_eq!(
        values(upstream(&first), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
    assert_eq!(state(&first, "outcome"), Some("allow"));
    let second = run(&mut vm, &get(b"/api", &[(b"dpop", p.as_bytes())]));
    let h = upstream(&second);
    assert!(values(h, "x-dpop-jkt").is_empty(), "{}", show(h));
    assert_eq!(state(&second, "outcome"), Some("shadow_deny"));
    assert_eq!(state(&second, "reason"), Some("proof_replayed"));
    assert_eq!(
        state(&second, "jkt"),
        None,
        "a refused request names no key"
    );
    assert_eq!(vm.host().metric("dpop_guard.replay.detected"), 1);
}

#[test]
fn upstream_hand_off_strips_the_proof_and_rewrites_dpop_to_bearer() {
    let mut vm = start(
        r#"{"required": true, "upstream": {"strip_dpop_header": true, "authorization": "bearer"}}"#,
    );
    let key = Key::new(42);
    let token = bound_token(&key.jkt());
    let authz = format!("DPoP {token}");
    let p = proof(&key, "/api", Some(&token));
    let ex = run(
        &mut vm,
        &get(
            b"/api",
            &[
                (b"authorization", authz.as_bytes()),
                (b"dpop", p.as_bytes()),
            ],
        ),
    );
    let h = upstream(&ex);
    assert!(values(h, "dpop").is_empty(), "{}", show(h));
    assert_eq!(
        values(h, "authorization"),
        vec![format!("Bearer {token}").as_bytes()]
    );
    // defaults keep both
    let mut vm = start(r#"{"required": true}"#);
    let p = proof(&key, "/api", Some(&token));
    let ex = run(
        &mut vm,
        &get(
            b"/api",
            &[
                (b"authorization", authz.as_bytes()),
                (b"dpop", p.as_bytes()),
            ],
        ),
    );
    let h = upstream(&ex);
    assert_eq!(values(h, "dpop"), vec![p.as_bytes()]);
    assert_eq!(values(h, "authorization"), vec![authz.as_bytes()]);
}

#[test]
fn grpc_refusal_is_a_status_with_the_title() {
    let mut vm = start(r#"{"required": true}"#);
    let ex = run(
        &mut vm,
        &get(
            b"/pkg.Svc/Call",
            &[(b"content-type", b"application/grpc+proto")],
        ),
    );
    let r = ex.local_reply().expect("a local reply");
    assert_eq!(r.grpc_status, 16);
    assert_eq!(r.body, b"DPoP Proof Required");
    assert_eq!(r.header("content-type"), None);
    assert!(r.header("www-authenticate").is_some());
    // not gRPC: problem+json as before, no gRPC status
    let ex = run(
        &mut vm,
        &get(b"/x", &[(b"content-type", b"application/json")]),
    );
    assert_eq!(ex.local_reply().unwrap().grpc_status, -1);
}

/// The one header the hand-off reads besides the credentials: `content-type`. Non-UTF-8 bytes
/// are not gRPC (a problem+json refusal, no trap); any one of duplicate values starting with
/// `application/grpc` (ASCII case-insensitive) makes the refusal a gRPC status.
#[test]
fn hostile_content_type_values() {
    let mut vm = start(r#"{"required": true}"#);
    let ex = run(
        &mut vm,
        &get(b"/x", &[(b"content-type", b"application/\xffgrpc")]),
    );
    assert_reply(&ex, 401, "dpop-required");
    assert_eq!(ex.local_reply().unwrap().grpc_status, -1);
    let ex = run(
        &mut vm,
        &get(
            b"/x",
            &[
                (b"content-type", b"text/plain"),
                (b"Content-Type", b"Application/GRPC"),
            ],
        ),
    );
    assert_eq!(ex.local_reply().unwrap().grpc_status, 16);
}
