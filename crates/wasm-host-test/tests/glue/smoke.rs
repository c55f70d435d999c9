//! The shipped demo configuration on the built wasm: a valid proof goes upstream with the
//! thumbprint, no proof is a problem+json 401, and the route policies do what envoy.yaml says.

use crate::common::*;
use proxy_wasm_emu::dpop::{bound_token, Key};
use proxy_wasm_emu::Vm;

fn demo() -> Vm {
    start(&demo_config())
}

#[test]
fn valid_proof_goes_upstream_with_the_thumbprint() {
    let mut vm = demo();
    let key = Key::new(1);
    let p = proof(&key, "/hello", None);
    // a forged thumbprint, in two spellings, must not survive
    let ex = run(
        &mut vm,
        &get(
            b"/hello",
            &[
                (b"dpop", p.as_bytes()),
                (b"x-dpop-jkt", b"forged"),
                (b"x_dpop_jkt", b"forged"),
            ],
        ),
    );
    let h = upstream(&ex);
    assert_eq!(
        values(h, "x-dpop-jkt"),
        vec![key.jkt().as_bytes()],
        "{}",
        show(h)
    );
    assert!(values(h, "x_dpop_jkt").is_empty(), "{}", show(h));
    assert_eq!(vm.host().metric("dpop_guard.allowed"), 1);
    assert_eq!(vm.host().metric("dpop_guard.denied"), 0);
    // every host call the guest made is one this host implements
    let unimplemented: Vec<_> = ex.calls.iter().filter(|c| c.unimplemented).collect();
    assert!(unimplemented.is_empty(), "{unimplemented:?}");
    assert!(vm.host().streams.is_empty(), "stream not finished");
    eprintln!(
        "fuel: max {} per call, last {}",
        vm.max_fuel_used, vm.fuel_used
    );
}

#[test]
fn missing_proof_is_a_problem_json_401() {
    let mut vm = demo();
    let ex = run(&mut vm, &get(b"/hello?x=1", &[]));
    let body = assert_reply(&ex, 401, "dpop-required");
    assert_eq!(body["instance"], "/hello");
    assert_eq!(body["request_id"], "6c9a0a7b-3211");
    assert_eq!(body["title"], "DPoP Proof Required");
    let r = ex.local_reply().unwrap();
    assert_eq!(r.header("cache-control"), Some(&b"no-store"[..]));
    assert_eq!(vm.host().metric("dpop_guard.denied"), 1);
    assert_eq!(vm.host().metric("dpop_guard.denied.proof_missing"), 1);
}

#[test]
fn bound_token_and_proof() {
    let mut vm = demo();
    let key = Key::new(2);
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
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
    // the same token with another key's proof
    let other = Key::new(3);
    let p = proof(&other, "/api", Some(&token));
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
    assert_reply(&ex, 401, "dpop-binding-mismatch");
    // downgrade: the bound token without a proof
    let ex = run(
        &mut vm,
        &get(b"/public/x", &[(b"authorization", authz.as_bytes())]),
    );
    assert_reply(&ex, 401, "dpop-required");
}

#[test]
fn route_policies_of_the_demo() {
    let mut vm = demo();
    // off: passes, but a forged thumbprint is still stripped
    let ex = run(&mut vm, &get(b"/healthz", &[(b"x-dpop-jkt", b"forged")]));
    assert!(values(upstream(&ex), "x-dpop-jkt").is_empty());
    // optional without credentials
    let ex = run(&mut vm, &get(b"/public/page", &[]));
    assert!(values(upstream(&ex), "x-dpop-jkt").is_empty());
    // proof_only: the proof is required, Authorization ignored
    let path = "/auth/agent/request_temp_token";
    let ex = run(&mut vm, &get(path.as_bytes(), &[]));
    assert_reply(&ex, 401, "dpop-required");
    let key = Key::new(4);
    let p = proof(&key, path, None);
    let ex = run(
        &mut vm,
        &get(
            path.as_bytes(),
            &[
                (b"dpop", p.as_bytes()),
                (b"authorization", b"Bearer whatever"),
            ],
        ),
    );
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
}

#[test]
fn every_import_is_implemented_and_the_vm_starts_like_envoy() {
    let w = wasm();
    let missing: Vec<_> = w
        .imports()
        .into_iter()
        .filter(|(_, known)| !known)
        .collect();
    assert!(
        missing.is_empty(),
        "imports this host does not implement: {missing:?}"
    );
    let vm = demo();
    let log = vm.host().transcript();
    assert!(log.contains("dpop_guard configured"), "{log}");
    assert!(
        vm.host()
            .metric_defs
            .values()
            .any(|m| m.name == "dpop_guard.allowed"),
        "counters not defined"
    );
}

#[test]
fn an_invalid_configuration_is_refused_not_a_trap() {
    for cfg in [
        &br#"{"replay": {"store": "remote"}}"#[..],
        b"{",
        b"\xff\xfe",
        b"[]",
        br#"{"unknown": 1}"#,
    ] {
        match Vm::start(wasm(), cfg) {
            Err(proxy_wasm_emu::StartError::ConfigureRefused(log)) => {
                assert!(log.contains("invalid configuration"), "{log}")
            }
            Err(e) => panic!("{:?}: {e}", String::from_utf8_lossy(cfg)),
            Ok(_) => panic!("{:?} accepted", String::from_utf8_lossy(cfg)),
        }
    }
}
