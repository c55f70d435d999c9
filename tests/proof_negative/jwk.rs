//! Table cases: the header's `jwk` (missing, malformed, weak or private keys) and its
//! consistency with `alg`.

use crate::common::{header_for, make_proof, TestKey};
use crate::negative::*;
use dpop_guard::b64;
use dpop_guard::DenyReason;
use serde_json::{json, Value};

/// jwk, then alg/key consistency.
pub fn cases(t: &mut Table, fx: &Fixture) {
    use DenyReason as R;
    let Fixture {
        ed,
        ec,
        ec384,
        rsa,
        good_claims,
        ..
    } = fx.clone();
    // ---- jwk -------------------------------------------------------------------------------
    t.deny(
        "jwk missing",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.remove("jwk"))),
            &good_claims,
            &ed,
        ),
        R::ProofJwkMissing,
    );
    t.deny(
        "jwk is a string",
        make_proof(
            &header_with("EdDSA", &ed, |h| {
                drop(h.insert("jwk".into(), json!(ed.public_jwk())))
            }),
            &good_claims,
            &ed,
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk null",
        make_proof(
            &header_with("EdDSA", &ed, |h| drop(h.insert("jwk".into(), Value::Null))),
            &good_claims,
            &ed,
        ),
        R::ProofJwkInvalid,
    );
    let with_jwk = |alg: &str, key: &TestKey, jwk: Value| {
        make_proof(
            &header_with(alg, key, |h| drop(h.insert("jwk".into(), jwk))),
            &good_claims,
            key,
        )
    };
    t.deny(
        "jwk unknown kty",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("kty".into(), json!("XYZ")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk kty missing",
        with_jwk("EdDSA", &ed, jwk_with(&ed, |j| drop(j.remove("kty")))),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk kty EC with Ed25519 crv",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("kty".into(), json!("EC")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk crv X25519 (not a signing curve)",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("crv".into(), json!("X25519")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk crv P-521",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| drop(j.insert("crv".into(), json!("P-521")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk P-256 x short by a byte",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| {
                let x = b64_bytes(&j["x"]);
                j.insert("x".into(), json!(b64::encode(&x[1..])));
            }),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk P-256 x long by a zero byte",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| {
                let mut x = vec![0u8];
                x.extend(b64_bytes(&j["x"]));
                j.insert("x".into(), json!(b64::encode(&x)));
            }),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk P-256 point not on curve",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| {
                let mut y = b64_bytes(&j["y"]);
                *y.last_mut().unwrap() ^= 1;
                j.insert("y".into(), json!(b64::encode(&y)));
            }),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk P-256 y missing",
        with_jwk("ES256", &ec, jwk_with(&ec, |j| drop(j.remove("y")))),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk P-256 x padded base64",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| {
                let x = format!("{}=", j["x"].as_str().unwrap());
                j.insert("x".into(), json!(x));
            }),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk Ed25519 x 31 bytes",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| {
                let x = b64_bytes(&j["x"]);
                j.insert("x".into(), json!(b64::encode(&x[..31])));
            }),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk x is a number",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("x".into(), json!(7)))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk use enc",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("use".into(), json!("enc")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk alg not a string",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("alg".into(), json!(1)))),
        ),
        R::ProofJwkInvalid,
    );
    let rsa1024 = TestKey::rsa_bits(1024);
    t.deny(
        "jwk RSA 1024-bit",
        make_proof(&header_for("RS256", &rsa1024), &good_claims, &rsa1024),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA even e",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("e".into(), json!("AQAA")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA e = 1",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("e".into(), json!("AQ")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA e with leading zero",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("e".into(), json!("AAEAAQ")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA e longer than 32 bits",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("e".into(), json!("AQAAAAE")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA n with leading zero",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| {
                let mut n = vec![0u8];
                n.extend(b64_bytes(&j["n"]));
                j.insert("n".into(), json!(b64::encode(&n)));
            }),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA n empty",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("n".into(), json!("")))),
        ),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk RSA e missing",
        with_jwk("RS256", &rsa, jwk_with(&rsa, |j| drop(j.remove("e")))),
        R::ProofJwkInvalid,
    );
    t.deny(
        "jwk Ed25519 with d",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| {
                j.insert("d".into(), json!(ed.private_d()));
            }),
        ),
        R::ProofJwkPrivate,
    );
    t.deny(
        "jwk P-256 with d",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| drop(j.insert("d".into(), json!("AAAA")))),
        ),
        R::ProofJwkPrivate,
    );
    t.deny(
        "jwk RSA with p",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("p".into(), json!("AQAB")))),
        ),
        R::ProofJwkPrivate,
    );
    t.deny(
        "jwk symmetric k",
        with_jwk("EdDSA", &ed, json!({"kty": "oct", "k": "c2VjcmV0"})),
        R::ProofJwkPrivate,
    );
    t.deny(
        "jwk with null d still private",
        with_jwk(
            "EdDSA",
            &ed,
            jwk_with(&ed, |j| drop(j.insert("d".into(), Value::Null))),
        ),
        R::ProofJwkPrivate,
    );

    // ---- alg/key consistency -----------------------------------------------------------------
    t.deny(
        "ES256 header with OKP key",
        make_proof(&header_for("ES256", &ed), &good_claims, &ed),
        R::ProofAlgKeyMismatch,
    );
    t.deny(
        "EdDSA header with EC key",
        make_proof(&header_for("EdDSA", &ec), &good_claims, &ec),
        R::ProofAlgKeyMismatch,
    );
    t.deny(
        "RS256 header with EC key",
        make_proof(&header_for("RS256", &ec), &good_claims, &ec),
        R::ProofAlgKeyMismatch,
    );
    t.deny(
        "ES256 header with RSA key",
        make_proof(&header_for("ES256", &rsa), &good_claims, &rsa),
        R::ProofAlgKeyMismatch,
    );
    t.deny(
        "ES384 header with P-256 key",
        make_proof(&header_for("ES384", &ec), &good_claims, &ec),
        R::ProofAlgKeyMismatch,
    )
    .policy(all_algs());
    t.deny(
        "ES256 header with P-384 key",
        make_proof(&header_for("ES256", &ec384), &good_claims, &ec384),
        // without the es384 build feature a P-384 key is not a usable JWK at all
        if cfg!(feature = "es384") {
            R::ProofAlgKeyMismatch
        } else {
            R::ProofJwkInvalid
        },
    );
    t.deny(
        "jwk alg ES384 ≠ header ES256",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| drop(j.insert("alg".into(), json!("ES384")))),
        ),
        R::ProofAlgKeyMismatch,
    );
    t.deny(
        "jwk alg PS256 ≠ header RS256",
        with_jwk(
            "RS256",
            &rsa,
            jwk_with(&rsa, |j| drop(j.insert("alg".into(), json!("PS256")))),
        ),
        R::ProofAlgKeyMismatch,
    )
    .policy(all_algs());
    t.ok(
        "jwk alg equal to header alg",
        with_jwk(
            "ES256",
            &ec,
            jwk_with(&ec, |j| {
                j.insert("alg".into(), json!("ES256"));
                j.insert("kid".into(), json!("k1"));
                j.insert("use".into(), json!("sig"));
            }),
        ),
    );
}
