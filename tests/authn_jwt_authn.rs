//! The per-request decision in `access_token.verify: jwt_authn` mode, natively: the binding
//! checked against the metadata jwt_authn leaves, which is the truth whatever the headers say.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/authn.rs"]
mod authn;
mod common;

use authn::*;
use common::TestKey;
use dpop_guard::authn::{Decision, JwtAuthnView};
use dpop_guard::reason::DenyReason as R;

#[test]
fn jwt_authn_mode() {
    let c = cfg(r#"{"required": true, "access_token": {"verify": "jwt_authn"}}"#);
    let k = TestKey::ed25519_n(8);
    let t = token(r#"{"whatever":1}"#); // the filter does not read the token in this mode
    let authz = format!("Bearer {t}");
    let verified = JwtAuthnView {
        payload_present: true,
        jkt: Some(k.jkt()),
    };
    assert!(matches!(
        run(
            &c,
            "/x",
            &[&proof(&k, Some(&t), "")],
            &[&authz],
            Some(&verified)
        ),
        Decision::Allow { .. }
    ));
    let other = JwtAuthnView {
        payload_present: true,
        jkt: Some(TestKey::ed25519_n(9).jkt()),
    };
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[&proof(&k, Some(&t), "")],
            &[&authz],
            Some(&other)
        )),
        R::BindingMismatch
    );
    let failed = JwtAuthnView::default();
    assert_eq!(
        denied(run(
            &c,
            "/x",
            &[&proof(&k, Some(&t), "")],
            &[&authz],
            Some(&failed)
        )),
        R::TokenSignatureInvalid
    );
    assert_eq!(
        denied(run(&c, "/x", &[], &[&authz], Some(&verified))),
        R::BoundTokenWithoutProof
    );
}

/// Issue 11, defect 2: in `jwt_authn` mode the metadata is the truth. jwt_authn finds
/// `Bearer <t>` inside values the filter would read as another scheme, or in another header
/// altogether; a verified bound token then needs a proof of its key whatever the header says.
#[test]
fn jwt_authn_metadata_is_the_truth() {
    let c = cfg(
        r#"{"required": false, "access_token": {"verify": "jwt_authn"},
            "routes": [{"prefix": "/token", "policy": "proof_only"}]}"#,
    );
    let victim = TestKey::ed25519_n(20);
    let attacker = TestKey::ed25519_n(21);
    let stolen = JwtAuthnView {
        payload_present: true,
        jkt: Some(victim.jkt()),
    };
    // no Authorization the filter recognises (token came from x-token, or a query parameter)
    for path in ["/x", "/token"] {
        assert_eq!(
            denied(run(&c, path, &[], &[], Some(&stolen))),
            R::BoundTokenWithoutProof,
            "{path}"
        );
        assert_eq!(
            denied(run(
                &c,
                path,
                &[&proof(&attacker, None, "")],
                &[],
                Some(&stolen)
            )),
            R::BindingMismatch,
            "{path}"
        );
    }
    // shapes jwt_authn accepts and the filter used to call "another scheme"
    let t = token(r#"{"whatever":1}"#);
    for authz in [
        format!("Basic Zm9v, Bearer {t}"),
        format!("X DPoP {t}"),
        format!("Bearer\t{t}"),
    ] {
        let d = denied(run(&c, "/x", &[], &[&authz], Some(&stolen)));
        assert!(
            matches!(d, R::AuthorizationMalformed | R::AuthorizationMultiple),
            "{authz}: {d:?}"
        );
        let d = denied(run(
            &c,
            "/x",
            &[&proof(&attacker, Some(&t), "")],
            &[&authz],
            Some(&stolen),
        ));
        assert!(
            matches!(d, R::AuthorizationMalformed | R::AuthorizationMultiple),
            "{authz}: {d:?}"
        );
    }
    // the victim's own proof still works without a recognised header (no ath to check)
    assert!(matches!(
        run(&c, "/x", &[&proof(&victim, None, "")], &[], Some(&stolen)),
        Decision::Allow { .. }
    ));
    // an unbound verified token on a required route is not-bound, as with a header
    let strict = cfg(r#"{"required": true, "access_token": {"verify": "jwt_authn"}}"#);
    let unbound = JwtAuthnView {
        payload_present: true,
        jkt: None,
    };
    assert_eq!(
        denied(run(
            &strict,
            "/x",
            &[&proof(&victim, None, "")],
            &[],
            Some(&unbound)
        )),
        R::TokenNotBound
    );
}
