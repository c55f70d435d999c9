//! Table cases: the signature (wrong key, swapped payload, DER, truncation, padding mode), the
//! order of checks (signature before claims, typ before alg) and one valid proof per algorithm.

use crate::common::{header_for, make_proof, make_proof_bytes, segments, TestKey};
use crate::negative::*;
use dpop_guard::b64;
use dpop_guard::DenyReason;
use serde_json::json;

/// Signatures that do not verify.
pub fn signature(t: &mut Table, fx: &Fixture) {
    use DenyReason as R;
    let Fixture {
        ed_b,
        ec_b,
        rsa,
        good_claims,
        ed_h,
        ec_h,
        gh,
        gp,
        gs,
        ec_good,
        rs_h,
        ps_h,
        rs_good,
        ..
    } = fx.clone();
    // ---- signature ---------------------------------------------------------------------------
    t.deny(
        "signed by another Ed25519 key",
        make_proof_bytes(ed_h.as_bytes(), good_claims.as_bytes(), &ed_b, "EdDSA"),
        R::ProofSignatureInvalid,
    );
    t.deny(
        "signed by another P-256 key",
        make_proof_bytes(ec_h.as_bytes(), good_claims.as_bytes(), &ec_b, "ES256"),
        R::ProofSignatureInvalid,
    );
    let other_claims = claims_with(|c| drop(c.insert("jti".into(), json!("other"))));
    t.deny(
        "payload swapped after signing",
        format!("{gh}.{}.{gs}", b64::encode(other_claims.as_bytes())),
        R::ProofSignatureInvalid,
    );
    let (eh, ep, es) = segments(&ec_good);
    let der = p256::ecdsa::Signature::from_slice(&b64::decode(&es).unwrap())
        .unwrap()
        .to_der();
    t.deny(
        "ES256 signature in DER form",
        format!("{eh}.{ep}.{}", b64::encode(der.as_bytes())),
        R::ProofSignatureInvalid,
    );
    t.deny(
        "ES256 signature truncated",
        format!(
            "{eh}.{ep}.{}",
            b64::encode(&b64::decode(&es).unwrap()[..63])
        ),
        R::ProofSignatureInvalid,
    );
    let mut ed_sig = b64::decode(&gs).unwrap();
    ed_sig.push(0);
    t.deny(
        "Ed25519 signature with a trailing byte",
        format!("{gh}.{gp}.{}", b64::encode(&ed_sig)),
        R::ProofSignatureInvalid,
    );
    t.deny(
        "Ed25519 signature all zero",
        format!("{gh}.{gp}.{}", b64::encode(&[0u8; 64])),
        R::ProofSignatureInvalid,
    );
    t.deny(
        "RS256 header, PSS signature",
        make_proof_bytes(rs_h.as_bytes(), good_claims.as_bytes(), &rsa, "PS256"),
        R::ProofSignatureInvalid,
    );
    t.deny(
        "PS256 header, PKCS#1 v1.5 signature",
        make_proof_bytes(ps_h.as_bytes(), good_claims.as_bytes(), &rsa, "RS256"),
        R::ProofSignatureInvalid,
    )
    .policy(all_algs());
    let (rh, rp, rs) = segments(&rs_good);
    let rs_sig = b64::decode(&rs).unwrap();
    let mut rs_prefixed = vec![0u8];
    rs_prefixed.extend_from_slice(&rs_sig);
    t.deny(
        "RS256 signature with a leading zero byte",
        format!("{rh}.{rp}.{}", b64::encode(&rs_prefixed)),
        R::ProofSignatureInvalid,
    );
    t.deny(
        "RS256 signed by another RSA key",
        make_proof_bytes(
            rs_h.as_bytes(),
            good_claims.as_bytes(),
            &TestKey::rsa_b(),
            "RS256",
        ),
        R::ProofSignatureInvalid,
    );
}

/// Order of checks, then the positive cases for every algorithm.
pub fn order_and_valid(t: &mut Table, fx: &Fixture) {
    use DenyReason as R;
    let Fixture {
        ed,
        ec384,
        rsa,
        good_claims,
        good,
        gh,
        gs,
        ec_good,
        ps_h,
        rs_good,
        ..
    } = fx.clone();
    // ---- order of checks ---------------------------------------------------------------------
    // The signature is checked before any claim: a forged proof with bad claims reports the
    // signature, not the claim (the claims are attacker-controlled until then).
    let forged = format!("{gh}.{}.{gs}", b64::encode(br#"{"htm":1}"#));
    t.deny(
        "bad claims under a bad signature",
        forged,
        R::ProofSignatureInvalid,
    );
    // typ is checked before alg
    t.deny(
        "typ and alg both bad",
        make_proof(
            &header_with("none", &ed, |h| drop(h.remove("typ"))),
            &good_claims,
            &ed,
        ),
        R::ProofTypInvalid,
    );

    // ---- positive: every algorithm ------------------------------------------------------------
    t.ok("EdDSA valid", good.clone());
    t.ok("ES256 valid", ec_good.clone());
    t.ok("RS256 valid", rs_good.clone());
    t.ok(
        "PS256 valid when allowed",
        make_proof(&ps_h, &good_claims, &rsa),
    )
    .policy(all_algs());
    // ES384 is an opt-in build feature: without it a P-384 key is not a usable JWK.
    let es384 = make_proof(&header_for("ES384", &ec384), &good_claims, &ec384);
    if cfg!(feature = "es384") {
        t.ok("ES384 valid when allowed", es384).policy(all_algs());
    } else {
        t.deny(
            "ES384 refused when not built in",
            es384,
            DenyReason::ProofJwkInvalid,
        )
        .policy(all_algs());
    }
    t.ok(
        "extra header and claim members tolerated",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.insert("kid".into(), json!("k")))),
            &claims_with(|m| drop(m.insert("extra".into(), json!({"a": [1, 2, 3]})))),
            &ed,
        ),
    );
}
