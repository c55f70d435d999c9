//! Table cases: the proof's size and compact serialization, then its JOSE header (header
//! JSON, `typ`, `alg`, `crit`).

use crate::common::{header_for, make_proof, make_proof_bytes};
use crate::negative::*;
use dpop_guard::b64;
use dpop_guard::jose::Alg;
use dpop_guard::{DenyReason, ProofPolicy};
use serde_json::json;

/// Size and shape, header JSON, typ, alg, crit.
pub fn cases(t: &mut Table, fx: &Fixture) {
    use DenyReason as R;
    let Fixture {
        ed,
        ec,
        ec384,
        rsa,
        good_claims,
        ed_h,
        good,
        gh,
        gp,
        gs,
        ..
    } = fx.clone();
    // ---- size and compact-serialization shape ----------------------------------------------
    let big = make_proof(
        &ed_h,
        &claims_with(|c| drop(c.insert("pad".into(), json!("x".repeat(9000))))),
        &ed,
    );
    t.deny("larger than max_proof_bytes", big.clone(), R::ProofTooLarge);
    t.ok("exactly max_proof_bytes", big.clone())
        .policy(ProofPolicy {
            max_proof_bytes: big.len(),
            ..ProofPolicy::default()
        });
    t.deny("one byte over a tight cap", big.clone(), R::ProofTooLarge)
        .policy(ProofPolicy {
            max_proof_bytes: big.len() - 1,
            ..ProofPolicy::default()
        });
    t.deny("empty string", String::new(), R::ProofMalformed);
    t.deny("two segments", format!("{gh}.{gp}"), R::ProofMalformed);
    t.deny("four segments", format!("{good}.{gs}"), R::ProofMalformed);
    t.deny(
        "JWE-like five segments",
        format!("{gh}.{gp}.{gs}.{gs}.{gs}"),
        R::ProofMalformed,
    );
    t.deny("empty signature", format!("{gh}.{gp}."), R::ProofMalformed);
    t.deny("empty header", format!(".{gp}.{gs}"), R::ProofMalformed);
    t.deny(
        "padded base64 signature",
        format!("{gh}.{gp}.{gs}=="),
        R::ProofMalformed,
    );
    t.deny(
        "standard-alphabet base64",
        format!("{gh}.{gp}.{}", gs.replace('-', "+").replace('_', "/") + "+"),
        R::ProofMalformed,
    );
    t.deny(
        "whitespace inside",
        format!("{gh}.{gp} .{gs}"),
        R::ProofMalformed,
    );
    t.deny(
        "leading Bearer-ish prefix",
        format!("DPoP {good}"),
        R::ProofMalformed,
    );
    // "AB" carries 12 bits for a single byte: the 4 spare bits are not zero, so it is a
    // non-canonical spelling of "AA" and refused.
    t.deny(
        "non-canonical base64 trailing bits",
        format!("{gh}.{gp}.AB"),
        R::ProofMalformed,
    );

    // ---- header JSON --------------------------------------------------------------------------
    let dup_typ = format!(
        r#"{{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#,
        ed.public_jwk()
    );
    t.deny(
        "duplicate header member",
        make_proof(&dup_typ, &good_claims, &ed),
        R::ProofHeaderInvalid,
    );
    let dup_in_jwk = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{0}","x":"{0}"}}}}"#,
        ed.public_jwk_value()["x"].as_str().unwrap()
    );
    t.deny(
        "duplicate member inside jwk",
        make_proof(&dup_in_jwk, &good_claims, &ed),
        R::ProofHeaderInvalid,
    );
    t.deny(
        "header is an array",
        make_proof_bytes(b"[1,2]", good_claims.as_bytes(), &ed, "EdDSA"),
        R::ProofHeaderInvalid,
    );
    t.deny(
        "header is not JSON",
        make_proof_bytes(b"typ=dpop+jwt", good_claims.as_bytes(), &ed, "EdDSA"),
        R::ProofHeaderInvalid,
    );
    t.deny(
        "header has trailing data",
        make_proof_bytes(
            format!("{ed_h} {{}}").as_bytes(),
            good_claims.as_bytes(),
            &ed,
            "EdDSA",
        ),
        R::ProofHeaderInvalid,
    );
    t.deny(
        "header not UTF-8",
        make_proof_bytes(b"{\"typ\":\"\xff\"}", good_claims.as_bytes(), &ed, "EdDSA"),
        R::ProofHeaderInvalid,
    );

    // ---- typ -------------------------------------------------------------------------------
    t.deny(
        "typ missing",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.remove("typ"))),
            &good_claims,
            &ed,
        ),
        R::ProofTypInvalid,
    );
    t.deny(
        "typ jwt",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.insert("typ".into(), json!("JWT")))),
            &good_claims,
            &ed,
        ),
        R::ProofTypInvalid,
    );
    t.deny(
        "typ not a string",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.insert("typ".into(), json!(1)))),
            &good_claims,
            &ed,
        ),
        R::ProofTypInvalid,
    );
    t.deny(
        "typ with suffix",
        make_proof(
            &header_with("EdDSA", &ed, |h| {
                drop(h.insert("typ".into(), json!("dpop+jwt ")))
            }),
            &good_claims,
            &ed,
        ),
        R::ProofTypInvalid,
    );
    t.ok(
        "typ compared case-insensitively",
        make_proof(
            &header_with("EdDSA", &ed, |h| {
                drop(h.insert("typ".into(), json!("DPoP+JWT")))
            }),
            &good_claims,
            &ed,
        ),
    );

    // ---- alg -------------------------------------------------------------------------------
    t.deny(
        "alg missing",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.remove("alg"))),
            &good_claims,
            &ed,
        ),
        R::ProofAlgMissing,
    );
    t.deny(
        "alg not a string",
        make_proof(
            &header_with("EdDSA", &ed, |h| {
                drop(h.insert("alg".into(), json!(["EdDSA"])))
            }),
            &good_claims,
            &ed,
        ),
        R::ProofAlgMissing,
    );
    t.deny(
        "alg none",
        format!(
            "{}.{gp}.AA",
            b64::encode(header_for("none", &ed).as_bytes())
        ),
        R::ProofAlgUnsupported,
    );
    t.deny(
        "alg HS256",
        make_proof(&header_for("HS256", &ed), &good_claims, &ed),
        R::ProofAlgUnsupported,
    );
    t.deny(
        "alg ES512",
        make_proof(&header_for("ES512", &ec), &good_claims, &ec),
        R::ProofAlgUnsupported,
    );
    t.deny(
        "alg lowercase es256",
        make_proof(&header_for("es256", &ec), &good_claims, &ec),
        R::ProofAlgUnsupported,
    );
    t.deny(
        "alg empty",
        make_proof(&header_for("", &ec), &good_claims, &ec),
        R::ProofAlgUnsupported,
    );
    t.deny(
        "alg Ed448 (fully-specified, not supported)",
        make_proof(&header_for("Ed448", &ed), &good_claims, &ed),
        R::ProofAlgUnsupported,
    );
    // RFC 9864's fully-specified name for EdDSA over Ed25519 (oauth4webapi sends it) is EdDSA
    t.ok(
        "alg Ed25519 (RFC 9864 name of EdDSA over Ed25519)",
        make_proof(&header_for("Ed25519", &ed), &good_claims, &ed),
    );
    t.deny(
        "PS256 not in default allow-list",
        make_proof(&header_for("PS256", &rsa), &good_claims, &rsa),
        R::ProofAlgNotAllowed,
    );
    t.deny(
        "ES384 not in default allow-list",
        make_proof(&header_for("ES384", &ec384), &good_claims, &ec384),
        R::ProofAlgNotAllowed,
    );
    t.deny(
        "EdDSA removed from allow-list",
        good.clone(),
        R::ProofAlgNotAllowed,
    )
    .policy(ProofPolicy {
        algorithms: [Alg::ES256].into_iter().collect(),
        ..ProofPolicy::default()
    });

    // ---- crit ------------------------------------------------------------------------------
    t.deny(
        "crit present",
        make_proof(
            &header_with("EdDSA", &ed, |h| {
                h.insert("crit".into(), json!(["exp"]));
                h.insert("exp".into(), json!(NOW + 10));
            }),
            &good_claims,
            &ed,
        ),
        R::ProofCritUnsupported,
    );
    t.deny(
        "crit empty list",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.insert("crit".into(), json!([])))),
            &good_claims,
            &ed,
        ),
        R::ProofCritUnsupported,
    );
}
