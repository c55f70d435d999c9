//! Who verifies RS256 and ES256 (README "Security notes"), on the built wasm: the host's
//! `verify_signature` (here emulated like Envoy, computed with the reference crates) once the
//! start-up probe passed, dpop-guard's own verifiers otherwise — on another host, a host that
//! lies, `crypto = "wasm"`, and a host call that fails mid-request. Whichever verifies, a
//! valid proof goes upstream and a forged one is refused.

use crate::common::*;
use dpop_client::Alg;
use proxy_wasm_emu::abi::{log_level, metric_type};
use proxy_wasm_emu::dpop::{AlgKey, ProofClaims};
use proxy_wasm_emu::host::LogEntry;
use proxy_wasm_emu::{status, CallRecord, Exchange, Fault, HostState, VerifySignature, Vm};

const CONFIG: &str = r#"{"required": true}"#;
const FOREIGN: &str = "env.proxy_call_foreign_function";
const GAUGE: &str = "dpop_guard.crypto.host";

/// A VM whose host answers `verify_signature` as `mode`.
fn start_mode(mode: VerifySignature, config: &str) -> Vm {
    let mut host = HostState::new(config.as_bytes());
    host.verify_signature = mode;
    let mut vm = Vm::start_with(wasm(), host).unwrap_or_else(|e| panic!("{e}"));
    set_now(&mut vm, NOW);
    vm
}

fn key(alg: Alg) -> AlgKey {
    AlgKey::new(alg, 7).unwrap()
}

/// A valid proof for `GET /api` at [`NOW`].
fn signed(key: &AlgKey) -> String {
    key.proof(&ProofClaims {
        htm: "GET",
        htu: &htu("/api"),
        iat: NOW,
        jti: &jti(),
        token: None,
        nonce: None,
    })
}

/// `GET /api` with this proof.
fn send(vm: &mut Vm, proof: &str) -> Exchange {
    run(vm, &get(b"/api", &[(b"dpop", proof.as_bytes())]))
}

fn foreign_calls(calls: &[CallRecord]) -> Vec<&CallRecord> {
    calls.iter().filter(|c| &*c.name == FOREIGN).collect()
}

/// The one start-up line saying who verifies.
fn crypto_log(vm: &Vm) -> &LogEntry {
    let lines: Vec<&LogEntry> = vm
        .host()
        .logs
        .iter()
        .filter(|l| l.message.starts_with("dpop_guard crypto:"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", vm.host().transcript());
    lines[0]
}

/// The gauge was defined as a gauge and recorded with `value`.
fn assert_gauge(vm: &Vm, value: u64) {
    let host = vm.host();
    let def = host.metric_defs.values().find(|m| m.name == GAUGE);
    assert_eq!(
        def.map(|m| m.kind),
        Some(metric_type::GAUGE),
        "{GAUGE} not defined as a gauge"
    );
    assert_eq!(host.metric(GAUGE), value, "{GAUGE}");
}

/// Allowed, upstream with this key's thumbprint.
fn assert_allowed(ex: &Exchange, key: &AlgKey) {
    let h = upstream(ex);
    assert_eq!(
        values(h, "x-dpop-jkt"),
        vec![key.jkt().as_bytes()],
        "{:?}: {}",
        key,
        show(h)
    );
}

#[test]
fn envoy_host_verifies_es256_and_rs256() {
    let mut vm = start_mode(VerifySignature::Envoy, CONFIG);
    let log = crypto_log(&vm);
    assert_eq!(log.level, log_level::INFO, "{}", log.message);
    assert!(
        log.message.contains("RS256 and ES256 verified by the host"),
        "{}",
        log.message
    );
    assert_gauge(&vm, 1);
    // the probe: a valid signature accepted, a forged one refused
    let probe = foreign_calls(&vm.host().calls);
    assert_eq!(probe.len(), 2, "{probe:?}");
    assert!(
        probe.iter().all(|c| c.status == Some(status::OK)),
        "{probe:?}"
    );

    for alg in [Alg::ES256, Alg::RS256] {
        let k = key(alg);
        let ex = send(&mut vm, &signed(&k));
        assert_allowed(&ex, &k);
        let calls = foreign_calls(&ex.calls);
        assert_eq!(calls.len(), 1, "{alg:?}: {calls:?}");
        assert_eq!(calls[0].status, Some(status::OK));
        assert!(!calls[0].injected);

        // valid shape, wrong bytes: the host refuses it
        let ex = send(&mut vm, &k.forge(&signed(&k)));
        assert_reply(&ex, 401, "dpop-invalid");
        assert_eq!(foreign_calls(&ex.calls).len(), 1, "{alg:?}");
    }

    // EdDSA is never the host's
    let k = key(Alg::EdDSA);
    let ex = send(&mut vm, &signed(&k));
    assert_allowed(&ex, &k);
    assert!(foreign_calls(&ex.calls).is_empty(), "{:?}", ex.calls);
}

#[test]
fn es256_signature_out_of_range_never_reaches_the_host() {
    // r = 0: what our verifier refuses is refused before the call, so both paths decide the
    // same inputs
    let mut vm = start_mode(VerifySignature::Envoy, CONFIG);
    let k = key(Alg::ES256);
    let p = signed(&k);
    let (input, _) = p.rsplit_once('.').unwrap();
    let mut sig = vec![0u8; 64];
    sig[63] = 1;
    let zero_r = format!("{input}.{}", dpop_guard::b64::encode(&sig));
    let ex = send(&mut vm, &zero_r);
    assert_reply(&ex, 401, "dpop-invalid");
    assert!(foreign_calls(&ex.calls).is_empty(), "{:?}", ex.calls);
}

#[test]
fn absent_host_means_own_verifiers() {
    let mut vm = start_mode(VerifySignature::Absent, CONFIG);
    let log = crypto_log(&vm);
    assert_eq!(log.level, log_level::INFO, "{}", log.message);
    assert!(
        log.message.contains("no usable verify_signature")
            && log.message.contains("dpop-guard's own verifiers"),
        "{}",
        log.message
    );
    assert_gauge(&vm, 0);
    for alg in [Alg::ES256, Alg::RS256, Alg::EdDSA] {
        let k = key(alg);
        let ex = send(&mut vm, &signed(&k));
        assert_allowed(&ex, &k);
        assert!(
            foreign_calls(&ex.calls).is_empty(),
            "{alg:?}: {:?}",
            ex.calls
        );
        let ex = send(&mut vm, &k.forge(&signed(&k)));
        assert_reply(&ex, 401, "dpop-invalid");
        assert!(
            foreign_calls(&ex.calls).is_empty(),
            "{alg:?}: {:?}",
            ex.calls
        );
    }
}

#[test]
fn lying_host_fails_the_probe() {
    // a host that says "valid" to everything would let any forgery through: the probe's
    // forged signature catches it, and our verifiers decide
    let mut vm = start_mode(VerifySignature::AlwaysTrue, CONFIG);
    let log = crypto_log(&vm);
    assert_eq!(log.level, log_level::WARN, "{}", log.message);
    assert!(
        log.message.contains("failed the start-up probe")
            && log.message.contains("AcceptedForgery"),
        "{}",
        log.message
    );
    assert_gauge(&vm, 0);
    for alg in [Alg::ES256, Alg::RS256] {
        let k = key(alg);
        let ex = send(&mut vm, &k.forge(&signed(&k)));
        assert_reply(&ex, 401, "dpop-invalid");
        assert!(
            foreign_calls(&ex.calls).is_empty(),
            "{alg:?}: {:?}",
            ex.calls
        );
        let ex = send(&mut vm, &signed(&k));
        assert_allowed(&ex, &k);
    }
}

#[test]
fn refusing_host_fails_the_probe() {
    // a host that refuses everything would deny every client: not used either
    let mut vm = start_mode(VerifySignature::AlwaysFalse, CONFIG);
    let log = crypto_log(&vm);
    assert_eq!(log.level, log_level::WARN, "{}", log.message);
    assert!(log.message.contains("RefusedValid"), "{}", log.message);
    assert_gauge(&vm, 0);
    for alg in [Alg::ES256, Alg::RS256] {
        let k = key(alg);
        let ex = send(&mut vm, &signed(&k));
        assert_allowed(&ex, &k);
        assert!(
            foreign_calls(&ex.calls).is_empty(),
            "{alg:?}: {:?}",
            ex.calls
        );
    }
}

#[test]
fn crypto_wasm_never_asks_the_host() {
    let mut vm = start_mode(
        VerifySignature::Envoy,
        r#"{"required": true, "crypto": "wasm"}"#,
    );
    let log = crypto_log(&vm);
    assert!(
        log.message.contains(r#"crypto = "wasm""#),
        "{}",
        log.message
    );
    assert_gauge(&vm, 0);
    assert!(
        foreign_calls(&vm.host().calls).is_empty(),
        "probed although crypto = \"wasm\""
    );
    for alg in [Alg::ES256, Alg::RS256] {
        let k = key(alg);
        let ex = send(&mut vm, &signed(&k));
        assert_allowed(&ex, &k);
        let ex = send(&mut vm, &k.forge(&signed(&k)));
        assert_reply(&ex, 401, "dpop-invalid");
    }
    assert!(foreign_calls(&vm.host().calls).is_empty());
}

#[test]
fn failed_host_call_falls_back_to_own_verifiers() {
    // the probe passed; then the call fails mid-request (any status): our verifier decides
    let mut vm = start_mode(VerifySignature::Envoy, CONFIG);
    assert_gauge(&vm, 1);
    for st in [
        status::NOT_FOUND,
        status::BAD_ARGUMENT,
        status::INVALID_MEMORY_ACCESS,
        status::INTERNAL_FAILURE,
        status::UNIMPLEMENTED,
        99,
    ] {
        vm.host_mut()
            .set_faults(vec![Fault::always("proxy_call_foreign_function", st)]);
        for alg in [Alg::ES256, Alg::RS256] {
            let k = key(alg);
            let ex = send(&mut vm, &signed(&k));
            assert_allowed(&ex, &k);
            let calls = foreign_calls(&ex.calls);
            assert_eq!(calls.len(), 1, "{alg:?} {st}: {calls:?}");
            assert!(
                calls[0].injected && calls[0].status == Some(st),
                "{calls:?}"
            );

            let ex = send(&mut vm, &k.forge(&signed(&k)));
            assert_reply(&ex, 401, "dpop-invalid");
            assert_eq!(foreign_calls(&ex.calls).len(), 1, "{alg:?} {st}");
        }
        vm.host_mut().clear_faults();
    }
    // and the host is used again once it answers
    let k = key(Alg::ES256);
    let ex = send(&mut vm, &signed(&k));
    assert_allowed(&ex, &k);
    let calls = foreign_calls(&ex.calls);
    assert!(calls.len() == 1 && !calls[0].injected, "{calls:?}");
}
