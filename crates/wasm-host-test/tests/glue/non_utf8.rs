//! Header bytes that are not UTF-8 (Envoy passes obs-text through): the proxy-wasm SDK's
//! `get_http_request_headers` unwraps `String::from_utf8` and killed the VM. The guest must
//! never trap, and decide as the README says.

use crate::common::*;
use proxy_wasm_emu::dpop::Key;
use proxy_wasm_emu::{Outcome, Pairs, Request, Vm};

fn required() -> Vm {
    start(r#"{"required": true, "replay": {"store": "off"}}"#)
}

/// `req` with header `name` replaced by (or, if absent, given) `value`.
fn with(req: &Request, name: &[u8], value: &[u8]) -> Request {
    let mut r = req.clone();
    match r.headers.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = value.to_vec(),
        None => r.headers.push((name.to_vec(), value.to_vec())),
    }
    r
}

#[test]
fn unrelated_header_is_as_if_absent() {
    let mut vm = required();
    let key = Key::new(10);
    let p = proof(&key, "/api", None);
    let base = get(b"/api", &[(b"dpop", p.as_bytes())]);
    let ex = run(&mut vm, &with(&base, b"x-anything", b"\xff\xfe"));
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
    // and the same without a proof is the usual 401
    let ex = run(
        &mut vm,
        &with(&get(b"/api", &[]), b"x-anything", b"\xff\xfe"),
    );
    assert_reply(&ex, 401, "dpop-required");
    // a request id that is not text is left out of the problem, never mangled into it
    let ex = run(
        &mut vm,
        &with(&get(b"/api", &[]), b"x-request-id", b"id-\xff"),
    );
    let body = assert_reply(&ex, 401, "dpop-required");
    assert!(body.get("request_id").is_none(), "{body}");
}

#[test]
fn dpop_not_utf8_is_a_malformed_proof() {
    let mut vm = required();
    for v in [
        &b"\xff"[..],
        b"\xff\xfe\xfd",
        b"eyJ\xff.eyJ.sig",
        b"\xc3\x28",
        b"\xed\xa0\x80",
    ] {
        let ex = run(&mut vm, &get(b"/api", &[(b"dpop", v)]));
        let body = assert_reply(&ex, 401, "dpop-invalid");
        assert_eq!(
            body["detail"], "DPoP proof is not a well-formed compact JWS",
            "{v:?}"
        );
    }
    assert_eq!(vm.host().metric("dpop_guard.denied.proof_malformed"), 5);
}

#[test]
fn authorization_not_utf8_is_an_invalid_token() {
    let mut vm = required();
    for v in [
        &b"Bearer \xff"[..],
        b"DPoP \xff\xfe",
        b"\xff",
        b"Bearer abc\x80def",
    ] {
        let ex = run(&mut vm, &get(b"/api", &[(b"authorization", v)]));
        assert_reply(&ex, 401, "token-invalid");
    }
}

#[test]
fn pseudo_headers_and_ids_not_utf8_never_trap() {
    let mut vm = required();
    let key = Key::new(11);
    for name in [
        &b":path"[..],
        b":authority",
        b":method",
        b":scheme",
        b"x-request-id",
        b"x-forwarded-proto",
    ] {
        for value in [&b"\xff"[..], b"/api\xff", b"\x80\x80", b""] {
            let p = proof(&key, "/api", None);
            let req = with(&get(b"/api", &[(b"dpop", p.as_bytes())]), name, value);
            let ex = run(&mut vm, &req);
            match &ex.outcome {
                Outcome::Upstream(h) => {
                    // only where the value does not enter the proof check, or (:scheme) where
                    // a value that is not text counts as absent, i.e. "http", which the proof
                    // names
                    assert!(
                        matches!(name, b"x-request-id" | b"x-forwarded-proto")
                            || (name == b":scheme" && std::str::from_utf8(value).is_err()),
                        "{:?}={value:?} went upstream",
                        String::from_utf8_lossy(name)
                    );
                    assert_eq!(values(h, "x-dpop-jkt"), vec![key.jkt().as_bytes()]);
                }
                Outcome::LocalReply(r) => {
                    proxy_wasm_emu::dpop::check_reply_shape(r).unwrap();
                    assert_eq!(r.status, 401, "{:?}", String::from_utf8_lossy(&r.body));
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(name)),
            }
        }
    }
}

#[test]
fn header_names_not_utf8_never_trap() {
    let mut vm = required();
    let key = Key::new(12);
    for name in [
        &b"\xff"[..],
        b"x-\xfe\xff",
        b"dpop\xff",
        b"\x80authorization",
        b"",
    ] {
        let p = proof(&key, "/api", None);
        let mut req = get(b"/api", &[(b"dpop", p.as_bytes())]);
        req.headers.push((name.to_vec(), b"v".to_vec()));
        let ex = run(&mut vm, &req);
        assert_eq!(
            values(upstream(&ex), "x-dpop-jkt"),
            vec![key.jkt().as_bytes()],
            "name {name:?}"
        );
        // and a name that is not UTF-8 next to no proof
        let mut req = get(b"/api", &[]);
        req.headers.push((name.to_vec(), b"\xff".to_vec()));
        assert_reply(&run(&mut vm, &req), 401, "dpop-required");
    }
}

#[test]
fn every_header_every_byte() {
    // Each byte value 0x80..=0xff alone and at the end of every interesting header: no trap,
    // never upstream unchecked.
    let mut vm = required();
    let names: [&[u8]; 8] = [
        b":path",
        b":authority",
        b":method",
        b"dpop",
        b"authorization",
        b"x-dpop-jkt",
        b"x-request-id",
        b"x-forwarded-proto",
    ];
    for b in 0x80u8..=0xff {
        for name in names {
            let mut headers: Pairs = get(b"/api", &[]).headers;
            headers.push((name.to_vec(), vec![b]));
            let ex = run(
                &mut vm,
                &Request {
                    headers,
                    ..Request::default()
                },
            );
            assert!(
                ex.local_reply().is_some_and(|r| r.status == 401),
                "{:?}={b:#x}: {:?}",
                String::from_utf8_lossy(name),
                ex.outcome
            );
        }
    }
}
