//! Issue 15 in the built wasm: per-host route settings in the challenge, a public origin with a
//! path prefix, per-key nonces handed out on refusals and (proactive rotation) on the upstream's
//! response, and RFC 9728 metadata answered by the filter.

use crate::common::*;
use dpop_guard::config::Config;
use proxy_wasm_emu::dpop::{Key, ProofClaims};
use proxy_wasm_emu::{Outcome, Pairs};

fn reply_header(ex: &proxy_wasm_emu::Exchange, name: &str) -> Option<String> {
    match &ex.outcome {
        Outcome::LocalReply(r) => r
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn proof_with(key: &Key, htu: &str, nonce: Option<&str>) -> String {
    key.proof(&ProofClaims {
        htm: "GET",
        htu,
        iat: NOW,
        jti: &jti(),
        token: None,
        nonce,
    })
}

const NONCE_CFG: &str =
    r#"{"required": true, "nonce": {"secret": "0123456789abcdef0123", "refresh_seconds": 0}}"#;

#[test]
fn key_scoped_nonce_from_the_refusal_works_for_that_key_only() {
    let cfg = Config::parse(NONCE_CFG.as_bytes()).unwrap();
    let ncfg = cfg.nonce.as_ref().unwrap();
    let mut vm = start(NONCE_CFG);
    let (k1, k2) = (Key::new(50), Key::new(51));
    let ex = run(
        &mut vm,
        &get(b"/api", &[(b"dpop", proof(&k1, "/api", None).as_bytes())]),
    );
    assert_reply(&ex, 401, "use-dpop-nonce");
    let nonce = reply_header(&ex, "dpop-nonce").expect("a DPoP-Nonce on use_dpop_nonce");
    assert_eq!(nonce, dpop_guard::nonce::issue(ncfg, &k1.jkt(), NOW));
    assert!(reply_header(&ex, "www-authenticate")
        .unwrap()
        .contains("error=\"use_dpop_nonce\""));

    let ok = proof_with(&k1, &htu("/api"), Some(&nonce));
    upstream(&run(&mut vm, &get(b"/api", &[(b"dpop", ok.as_bytes())])));
    // the same nonce in a proof of another key is refused, with that key's own nonce
    let foreign = proof_with(&k2, &htu("/api"), Some(&nonce));
    let ex = run(&mut vm, &get(b"/api", &[(b"dpop", foreign.as_bytes())]));
    assert_reply(&ex, 401, "use-dpop-nonce");
    assert_eq!(
        reply_header(&ex, "dpop-nonce").unwrap(),
        dpop_guard::nonce::issue(ncfg, &k2.jkt(), NOW)
    );
}

#[test]
fn the_next_nonce_rides_on_the_upstream_response_near_the_window_end() {
    // NOW is 200 s into a 300 s window: with refresh_seconds 120 the window "ends soon"
    let json = r#"{"required": true, "nonce": {"secret": "0123456789abcdef0123", "refresh_seconds": 120}}"#;
    let cfg = Config::parse(json.as_bytes()).unwrap();
    let ncfg = cfg.nonce.as_ref().unwrap();
    let mut vm = start(json);
    let key = Key::new(52);
    let old = dpop_guard::nonce::issue(ncfg, &key.jkt(), NOW - 300);
    let p = proof_with(&key, &htu("/api"), Some(&old));
    let ex = vm
        .request_headers(&get(b"/api", &[(b"dpop", p.as_bytes())]))
        .unwrap();
    upstream(&ex);
    let upstream_response: Pairs = vec![
        (b":status".to_vec(), b"200".to_vec()),
        (b"cache-control".to_vec(), b"max-age=60".to_vec()),
    ];
    let (action, after) = vm
        .response_headers(ex.context_id, upstream_response.clone())
        .unwrap();
    vm.finish(ex.context_id).unwrap();
    assert_eq!(action, Some(0));
    let next = dpop_guard::nonce::issue(ncfg, &key.jkt(), NOW);
    assert_eq!(
        values(&after, "dpop-nonce"),
        vec![next.as_bytes()],
        "{}",
        show(&after)
    );
    assert_eq!(values(&after, "cache-control"), vec![&b"no-store"[..]]);

    // a client already on the newest nonce gets nothing added
    let p = proof_with(&key, &htu("/api"), Some(&next));
    let ex = vm
        .request_headers(&get(b"/api", &[(b"dpop", p.as_bytes())]))
        .unwrap();
    upstream(&ex);
    let (_, after) = vm
        .response_headers(ex.context_id, upstream_response.clone())
        .unwrap();
    vm.finish(ex.context_id).unwrap();
    assert_eq!(after, upstream_response);
}

#[test]
fn per_host_settings_and_a_prefixed_public_origin() {
    let json = r#"{"required": true,
        "resource_metadata": {"authorization_servers": ["https://as.example"]},
        "routes": [
          {"hosts": ["es.example"], "algorithms": ["ES256"]},
          {"hosts": ["127.0.0.1"], "public_origin": "https://api.example.com/svc2"}]}"#;
    let mut vm = start(json);
    let key = Key::new(53); // EdDSA
                            // the public URL the client saw, with the prefix a front proxy stripped
    let p = proof_with(&key, "https://api.example.com/svc2/api", None);
    upstream(&run(&mut vm, &get(b"/api", &[(b"dpop", p.as_bytes())])));
    let p = proof_with(&key, &htu("/api"), None);
    assert_reply(
        &run(&mut vm, &get(b"/api", &[(b"dpop", p.as_bytes())])),
        401,
        "dpop-invalid",
    );
    let ex = run(&mut vm, &get(b"/api", &[]));
    assert_reply(&ex, 401, "dpop-required");
    assert_eq!(
        reply_header(&ex, "www-authenticate").unwrap(),
        "DPoP algs=\"EdDSA ES256 RS256\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource/svc2\""
    );
    // another host: its own algorithms in the challenge, EdDSA refused
    let mut req = get(b"/api", &[]);
    req.headers[0].1 = b"es.example".to_vec();
    let ex = run(&mut vm, &req);
    assert!(reply_header(&ex, "www-authenticate")
        .unwrap()
        .starts_with("DPoP algs=\"ES256\", resource_metadata=\"http://es.example/.well-known/oauth-protected-resource\""));
}

#[test]
fn metadata_documents_are_answered_by_the_filter() {
    let json = r#"{"required": true,
        "resource_metadata": {"authorization_servers": ["https://as.example"]},
        "routes": [{"hosts": ["127.0.0.1"], "public_origin": "https://api.example.com/svc2", "algorithms": ["EdDSA"]}]}"#;
    let mut vm = start(json);
    let ex = run(
        &mut vm,
        &get(b"/.well-known/oauth-protected-resource/svc2", &[]),
    );
    let Outcome::LocalReply(r) = &ex.outcome else {
        panic!("{:?}", ex.outcome)
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["resource"], "https://api.example.com/svc2");
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    assert_eq!(doc["dpop_bound_access_tokens_required"], true);
    assert_eq!(vm.host().metric("dpop_guard.metadata.served"), 1);
    // the bare well-known path is not this resource's: the normal checks apply
    let ex = run(&mut vm, &get(b"/.well-known/oauth-protected-resource", &[]));
    assert_reply(&ex, 401, "dpop-required");
}

/// The host rule reads `:authority` bytes the filter did not write: spelling variants of the
/// ruled host match it (case, port, one trailing dot); anything else — another spelling, a
/// value that is not UTF-8, a second `:authority` — falls to the top-level settings, never to a
/// laxer rule. The well-known path is matched raw: an encoded spelling is not the document and
/// goes through the checks.
#[test]
fn hostile_authority_and_metadata_path_spellings() {
    let json = r#"{"required": true,
        "resource_metadata": {"authorization_servers": ["https://as.example"]},
        "routes": [{"hosts": ["open.example"], "policy": "off"}]}"#;
    let mut vm = start(json);
    let with_authority = |v: &[u8]| {
        let mut req = get(b"/api", &[]);
        req.headers[0].1 = v.to_vec();
        req
    };
    for ok in [&b"open.example"[..], b"OPEN.Example:8443", b"open.example."] {
        upstream(&run(&mut vm, &with_authority(ok)));
    }
    for refused in [
        &b"open.example "[..],
        b" open.example",
        b"open.example\xff",
        b"xopen.example",
        b"open.example,open.example",
        b"open.example:80:80",
    ] {
        let ex = run(&mut vm, &with_authority(refused));
        assert_reply(&ex, 401, "dpop-required");
    }
    // a second :authority after the first: the first is the host (Envoy never sends two)
    let mut req = with_authority(b"closed.example");
    req.headers
        .push((b":authority".to_vec(), b"open.example".to_vec()));
    assert_reply(&run(&mut vm, &req), 401, "dpop-required");

    let ex = run(&mut vm, &get(b"/.well-known/oauth-protected-resource", &[]));
    let Outcome::LocalReply(r) = &ex.outcome else {
        panic!("{:?}", ex.outcome)
    };
    assert_eq!(r.status, 200);
    for raw in [
        &b"/.well-known/%6Fauth-protected-resource"[..],
        b"/.well-known//oauth-protected-resource",
        b"/.well-known/oauth-protected-resource/",
        b"/.WELL-KNOWN/oauth-protected-resource",
    ] {
        assert_reply(&run(&mut vm, &get(raw, &[])), 401, "dpop-required");
    }
}
