//! `access_token.jwks_uri` in the built wasm (issue 13): the root context's fetch on the tick,
//! 503 before the first key set, and the unknown-`kid` refresh made by the request itself.

use crate::common::*;
use dpop_client::Alg;
use proxy_wasm_emu::dpop::{AlgKey, Key, ProofClaims};
use proxy_wasm_emu::{Outcome, Pairs, Vm};

const CONFIG: &str = r#"{"required": true, "access_token": {"verify": "keys",
    "jwks_uri": "https://login.example/oauth/jwks", "jwks_cluster": "as", "issuer": "https://login.example"}}"#;

fn signer(n: u64) -> AlgKey {
    AlgKey::new(Alg::ES256, n).unwrap()
}

fn jwks(keys: &[(&str, &AlgKey)]) -> Vec<u8> {
    let list: Vec<String> = keys
        .iter()
        .map(|(kid, k)| {
            k.jwk()
                .replacen('{', &format!(r#"{{"kid":"{kid}","use":"sig","#), 1)
        })
        .collect();
    format!(r#"{{"keys":[{}]}}"#, list.join(",")).into_bytes()
}

fn token(signer: &AlgKey, kid: &str, jkt: &str) -> String {
    signer.sign(
        &format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#),
        &format!(
            r#"{{"iss":"https://login.example","exp":{},"cnf":{{"jkt":"{jkt}"}}}}"#,
            NOW + 600
        ),
    )
}

fn request(key: &Key, token: &str) -> proxy_wasm_emu::Request {
    let p = key.proof(&ProofClaims {
        htm: "GET",
        htu: &htu("/api"),
        iat: NOW,
        jti: &jti(),
        token: Some(token),
        nonce: None,
    });
    let auth = format!("DPoP {token}");
    get(
        b"/api",
        &[(b"dpop", p.as_bytes()), (b"authorization", auth.as_bytes())],
    )
}

fn ok() -> Pairs {
    vec![(b":status".to_vec(), b"200".to_vec())]
}

/// The root's tick; returns the fetch it dispatched.
fn tick(vm: &mut Vm) -> u32 {
    let root = vm.root_context();
    let before = vm.host().http_calls.len();
    vm.tick().unwrap();
    assert_eq!(
        vm.host().http_calls.len(),
        before + 1,
        "a fetch on the tick"
    );
    let call = vm.host().http_calls.last().unwrap().clone();
    assert_eq!(call.cluster, b"as");
    assert_eq!(call.context, root);
    let h = call.headers.unwrap();
    assert_eq!(values(&h, ":method"), vec![&b"GET"[..]]);
    assert_eq!(values(&h, ":path"), vec![&b"/oauth/jwks"[..]]);
    assert_eq!(values(&h, ":authority"), vec![&b"login.example"[..]]);
    call.token
}

#[test]
fn fetched_at_start_then_an_unknown_kid_refreshes_once() {
    let mut vm = start(CONFIG);
    assert_eq!(vm.host().tick_period_ms, Some(1000));
    let (s1, s2) = (signer(1), signer(2));
    let key = Key::new(70);
    let t1 = token(&s1, "k1", &key.jkt());
    // before the first fetch: the check cannot be made
    assert_reply(
        &run(&mut vm, &request(&key, &t1)),
        503,
        "token-check-unavailable",
    );

    let root = vm.root_context();
    let call = tick(&mut vm);
    vm.http_call_response(root, call, ok(), jwks(&[("k1", &s1)]))
        .unwrap();
    assert_eq!(vm.host().metric("dpop_guard.jwks.fetches"), 1);
    let ex = run(&mut vm, &request(&key, &t1));
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );

    // the authorization server rotated to k2: the request fetches, waits, and passes
    let t2 = token(&s2, "k2", &key.jkt());
    let ex = vm.request_headers(&request(&key, &t2)).unwrap();
    let Outcome::Pending(tokens) = &ex.outcome else {
        panic!("expected a JWKS fetch, got {:?}", ex.outcome)
    };
    let ex = vm
        .http_call_response(
            ex.context_id,
            tokens[0],
            ok(),
            jwks(&[("k1", &s1), ("k2", &s2)]),
        )
        .unwrap();
    assert_eq!(
        values(upstream(&ex), "x-dpop-jkt"),
        vec![key.jkt().as_bytes()]
    );
    vm.finish(ex.context_id).unwrap();
    assert_eq!(vm.host().metric("dpop_guard.jwks.fetches"), 2);

    // another unknown kid within 30 s: refused without a fetch
    let t3 = token(&signer(3), "k3", &key.jkt());
    let calls = vm.host().http_calls.len();
    assert_reply(&run(&mut vm, &request(&key, &t3)), 401, "token-invalid");
    assert_eq!(vm.host().http_calls.len(), calls);
}

#[test]
fn a_failed_fetch_keeps_the_last_good_set() {
    let mut vm = start(CONFIG);
    let s1 = signer(4);
    let key = Key::new(71);
    let root = vm.root_context();
    let call = tick(&mut vm);
    vm.http_call_response(root, call, ok(), jwks(&[("k1", &s1)]))
        .unwrap();
    // a refresh 300 s later fails
    set_now(&mut vm, NOW + 301);
    let call = tick(&mut vm);
    vm.http_call_response(
        root,
        call,
        vec![(b":status".to_vec(), b"503".to_vec())],
        vec![],
    )
    .unwrap();
    assert_eq!(vm.host().metric("dpop_guard.jwks.errors"), 1);
    let t = signer(4).sign(
        r#"{"alg":"ES256","kid":"k1"}"#,
        &format!(
            r#"{{"iss":"https://login.example","exp":{},"cnf":{{"jkt":"{}"}}}}"#,
            NOW + 900,
            key.jkt()
        ),
    );
    let p = key.proof(&ProofClaims {
        htm: "GET",
        htu: &htu("/api"),
        iat: NOW + 301,
        jti: &jti(),
        token: Some(&t),
        nonce: None,
    });
    let auth = format!("DPoP {t}");
    let ex = run(
        &mut vm,
        &get(
            b"/api",
            &[(b"dpop", p.as_bytes()), (b"authorization", auth.as_bytes())],
        ),
    );
    upstream(&ex);
}
