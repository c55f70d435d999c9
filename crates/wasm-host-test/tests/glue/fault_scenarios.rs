//! The reference requests of the fault sweep (faults.rs): one `Scenario` per decision the guest
//! can reach (allow, deny, off route, replayed, jwt_authn bound and mismatched, remote replay
//! store answering 201 and 409, stale nonce), each with its configuration and the baseline
//! outcome without faults.

use crate::common::*;
use proxy_wasm_emu::dpop::{bound_token, Key, ProofClaims};
use proxy_wasm_emu::Request;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Baseline {
    /// Upstream with this key's thumbprint.
    Allow(u64),
    /// Upstream without a thumbprint.
    Pass,
    Deny,
}

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) config: String,
    /// A fresh (first use of the proof without faults, faulty request) per run.
    pub(crate) make: Box<dyn Fn() -> (Option<Request>, Request)>,
    /// jwt_authn metadata (payload, jkt).
    pub(crate) jwt: Option<(Vec<u8>, Vec<u8>)>,
    /// Answer the replay callout with this `:status`.
    pub(crate) callout: Option<&'static str>,
    pub(crate) baseline: Baseline,
}

/// Bearer token bound to key 40, with a proof carrying its `ath`.
fn jwt_request() -> Box<dyn Fn() -> (Option<Request>, Request)> {
    Box::new(|| {
        let key = Key::new(40);
        let token = bound_token(&key.jkt());
        let authz = format!("Bearer {token}");
        let p = proof(&key, "/api", Some(&token));
        (
            None,
            get(
                b"/api",
                &[
                    (b"authorization", authz.as_bytes()),
                    (b"dpop", p.as_bytes()),
                ],
            ),
        )
    })
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    let demo = demo_config();
    let jkt = Key::new(40).jkt();
    vec![
        Scenario {
            name: "allow",
            config: demo.clone(),
            make: Box::new(move || {
                let p = proof(&Key::new(40), "/api", None);
                (
                    None,
                    get(
                        b"/api",
                        &[(b"dpop", p.as_bytes()), (b"x-dpop-jkt", b"forged")],
                    ),
                )
            }),
            jwt: None,
            callout: None,
            baseline: Baseline::Allow(40),
        },
        Scenario {
            name: "deny",
            config: demo.clone(),
            make: Box::new(|| (None, get(b"/api", &[(b"x-dpop-jkt", b"forged")]))),
            jwt: None,
            callout: None,
            baseline: Baseline::Deny,
        },
        Scenario {
            name: "off-route",
            config: demo.clone(),
            make: Box::new(|| (None, get(b"/healthz", &[(b"x-dpop-jkt", b"forged")]))),
            jwt: None,
            callout: None,
            baseline: Baseline::Pass,
        },
        Scenario {
            name: "replayed",
            config: demo.clone(),
            make: Box::new(|| {
                let p = proof(&Key::new(40), "/api", None);
                let r = get(b"/api", &[(b"dpop", p.as_bytes())]);
                (Some(r.clone()), r)
            }),
            jwt: None,
            callout: None,
            baseline: Baseline::Deny,
        },
        Scenario {
            name: "jwt_authn",
            config: r#"{"required": true, "access_token": {"verify": "jwt_authn"}}"#.into(),
            make: jwt_request(),
            jwt: Some((b"\x0a\x03sub".to_vec(), jkt.as_bytes().to_vec())),
            callout: None,
            baseline: Baseline::Allow(40),
        },
        Scenario {
            name: "jwt_authn-mismatch",
            config: r#"{"required": true, "access_token": {"verify": "jwt_authn"}}"#.into(),
            make: jwt_request(),
            jwt: Some((b"\x0a\x03sub".to_vec(), Key::new(41).jkt().into_bytes())),
            callout: None,
            baseline: Baseline::Deny,
        },
        Scenario {
            name: "remote-201",
            config: r#"{"required": true, "replay": {"store": "remote", "cluster": "r", "max_batch": 1}}"#.into(),
            make: Box::new(|| {
                let p = proof(&Key::new(40), "/api", None);
                (None, get(b"/api", &[(b"dpop", p.as_bytes())]))
            }),
            jwt: None,
            callout: Some("201"),
            baseline: Baseline::Allow(40),
        },
        Scenario {
            name: "remote-409",
            config: r#"{"required": true, "replay": {"store": "remote", "cluster": "r", "max_batch": 1}}"#.into(),
            make: Box::new(|| {
                let p = proof(&Key::new(40), "/api", None);
                (None, get(b"/api", &[(b"dpop", p.as_bytes())]))
            }),
            jwt: None,
            callout: Some("409"),
            baseline: Baseline::Deny,
        },
        Scenario {
            name: "nonce",
            config: r#"{"required": true, "nonce": {"secret": "0123456789abcdef"}}"#.into(),
            make: Box::new(|| {
                let p = Key::new(40).proof(&ProofClaims {
                    htm: "GET",
                    htu: &htu("/api"),
                    iat: NOW,
                    jti: &jti(),
                    token: None,
                    nonce: Some("stale"),
                });
                (None, get(b"/api", &[(b"dpop", p.as_bytes())]))
            }),
            jwt: None,
            callout: None,
            baseline: Baseline::Deny,
        },
    ]
}
