//! Table-driven negative (and boundary-positive) suite for `verify_proof`: every case builds a
//! real, correctly signed proof (unless the case is about the signature or the encoding), runs
//! it against a fixed request and clock, and asserts the exact `DenyReason`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{header_for, make_proof, make_proof_bytes, segments, Rng, TestKey};
use dpop_guard::b64;
use dpop_guard::jose::{Alg, PublicJwk};
use dpop_guard::proof::{ath_for, replay_key};
use dpop_guard::{verify_proof, DenyReason, ProofPolicy, RequestFacts};
use serde_json::{json, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};

const NOW: i64 = 1_700_000_000;
const METHOD: &str = "GET";
const URI: &str = "https://api.example.com/resource";
const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

fn claims() -> Value {
    json!({"jti": "jti-0001", "htm": METHOD, "htu": URI, "iat": NOW})
}

fn claims_with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c.to_string()
}

fn header_with(
    alg: &str,
    key: &TestKey,
    f: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    let mut h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk_value()});
    f(h.as_object_mut().unwrap());
    h.to_string()
}

fn jwk_with(key: &TestKey, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut j = key.public_jwk_value();
    f(j.as_object_mut().unwrap());
    j
}

fn b64_bytes(v: &Value) -> Vec<u8> {
    b64::decode(v.as_str().unwrap()).unwrap()
}

fn all_algs() -> ProofPolicy {
    ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect(),
        ..ProofPolicy::default()
    }
}

struct Case {
    name: String,
    proof: String,
    method: &'static str,
    uri: String,
    token: Option<&'static str>,
    now: i64,
    policy: ProofPolicy,
    want: Result<(), DenyReason>,
}

/// Collects cases; defaults: GET URI, no token, NOW, default policy.
#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn deny(&mut self, name: &str, proof: String, want: DenyReason) -> &mut Case {
        self.push(name, proof, Err(want))
    }
    fn ok(&mut self, name: &str, proof: String) -> &mut Case {
        self.push(name, proof, Ok(()))
    }
    fn push(&mut self, name: &str, proof: String, want: Result<(), DenyReason>) -> &mut Case {
        self.0.push(Case {
            name: name.to_owned(),
            proof,
            method: METHOD,
            uri: URI.to_owned(),
            token: None,
            now: NOW,
            policy: ProofPolicy::default(),
            want,
        });
        self.0.last_mut().unwrap()
    }
}

impl Case {
    fn policy(&mut self, p: ProofPolicy) -> &mut Case {
        self.policy = p;
        self
    }
    fn token(&mut self, t: &'static str) -> &mut Case {
        self.token = Some(t);
        self
    }
    fn uri(&mut self, u: &str) -> &mut Case {
        self.uri = u.to_owned();
        self
    }
    fn method(&mut self, m: &'static str) -> &mut Case {
        self.method = m;
        self
    }
}

fn cases() -> Vec<Case> {
    use DenyReason as R;
    let ed = TestKey::ed25519();
    let ed_b = TestKey::ed25519_n(11);
    let ec = TestKey::p256();
    let ec_b = TestKey::p256_n(12);
    let ec384 = TestKey::p384();
    let rsa = TestKey::rsa();
    let good_claims = claims().to_string();
    let ed_h = header_for("EdDSA", &ed);
    let ec_h = header_for("ES256", &ec);
    let good = make_proof(&ed_h, &good_claims, &ed);
    let (gh, gp, gs) = segments(&good);
    let mut t = Table::default();

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
        "alg Ed25519 (fully-specified, not registered here)",
        make_proof(&header_for("Ed25519", &ed), &good_claims, &ed),
        R::ProofAlgUnsupported,
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
    let ec_good = make_proof(&ec_h, &good_claims, &ec);
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
    let rs_h = header_for("RS256", &rsa);
    t.deny(
        "RS256 header, PSS signature",
        make_proof_bytes(rs_h.as_bytes(), good_claims.as_bytes(), &rsa, "PS256"),
        R::ProofSignatureInvalid,
    );
    let ps_h = header_for("PS256", &rsa);
    t.deny(
        "PS256 header, PKCS#1 v1.5 signature",
        make_proof_bytes(ps_h.as_bytes(), good_claims.as_bytes(), &rsa, "RS256"),
        R::ProofSignatureInvalid,
    )
    .policy(all_algs());
    let rs_good = make_proof(&rs_h, &good_claims, &rsa);
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

    // ---- claims JSON -------------------------------------------------------------------------
    let dup_claims = format!(r#"{{"jti":"a","jti":"b","htm":"GET","htu":"{URI}","iat":{NOW}}}"#);
    t.deny(
        "duplicate claim",
        make_proof(&ed_h, &dup_claims, &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims array",
        make_proof(&ed_h, "[]", &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims not JSON",
        make_proof(&ed_h, "jti=1", &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims empty payload",
        make_proof(&ed_h, "", &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims with trailing comma",
        make_proof(&ed_h, &good_claims.replacen('}', ",}", 1), &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims deeply nested",
        make_proof(
            &ed_h,
            &format!(r#"{{"x":{}{}}}"#, "[".repeat(200), "]".repeat(200)),
            &ed,
        ),
        R::ProofClaimsInvalid,
    );

    // ---- jti ---------------------------------------------------------------------------------
    let c =
        |f: &dyn Fn(&mut serde_json::Map<String, Value>)| make_proof(&ed_h, &claims_with(f), &ed);
    t.deny(
        "jti missing",
        c(&|m| drop(m.remove("jti"))),
        R::ProofJtiMissing,
    );
    t.deny(
        "jti empty",
        c(&|m| drop(m.insert("jti".into(), json!("")))),
        R::ProofJtiInvalid,
    );
    t.deny(
        "jti 257 bytes",
        c(&|m| drop(m.insert("jti".into(), json!("j".repeat(257))))),
        R::ProofJtiInvalid,
    );
    t.deny(
        "jti number",
        c(&|m| drop(m.insert("jti".into(), json!(12345)))),
        R::ProofJtiInvalid,
    );
    t.deny(
        "jti null",
        c(&|m| drop(m.insert("jti".into(), Value::Null))),
        R::ProofJtiInvalid,
    );
    t.ok(
        "jti 256 bytes",
        c(&|m| drop(m.insert("jti".into(), json!("j".repeat(256))))),
    );

    // ---- htm ---------------------------------------------------------------------------------
    t.deny(
        "htm missing",
        c(&|m| drop(m.remove("htm"))),
        R::ProofHtmMissing,
    );
    t.deny(
        "htm lowercase get",
        c(&|m| drop(m.insert("htm".into(), json!("get")))),
        R::ProofHtmMismatch,
    );
    t.deny(
        "htm other method",
        c(&|m| drop(m.insert("htm".into(), json!("POST")))),
        R::ProofHtmMismatch,
    );
    t.deny(
        "htm array",
        c(&|m| drop(m.insert("htm".into(), json!(["GET"])))),
        R::ProofHtmMismatch,
    );
    t.deny(
        "htm with space",
        c(&|m| drop(m.insert("htm".into(), json!("GET ")))),
        R::ProofHtmMismatch,
    );
    t.ok(
        "htm matches POST request",
        c(&|m| drop(m.insert("htm".into(), json!("POST")))),
    )
    .method("POST");

    // ---- htu ---------------------------------------------------------------------------------
    let htu = |u: &str| {
        let u = u.to_owned();
        c(&move |m| drop(m.insert("htu".into(), json!(u.clone()))))
    };
    t.deny(
        "htu missing",
        c(&|m| drop(m.remove("htu"))),
        R::ProofHtuMissing,
    );
    t.deny("htu relative", htu("/resource"), R::ProofHtuInvalid);
    t.deny(
        "htu ftp scheme",
        htu("ftp://api.example.com/resource"),
        R::ProofHtuInvalid,
    );
    t.deny(
        "htu with userinfo",
        htu("https://user@api.example.com/resource"),
        R::ProofHtuInvalid,
    );
    t.deny(
        "htu bad port",
        htu("https://api.example.com:99999/resource"),
        R::ProofHtuInvalid,
    );
    t.deny(
        "htu number",
        c(&|m| drop(m.insert("htu".into(), json!(443)))),
        R::ProofHtuInvalid,
    );
    t.deny("htu empty", htu(""), R::ProofHtuInvalid);
    t.deny(
        "htu http vs https request",
        htu("http://api.example.com/resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu https vs http request",
        good.clone(),
        R::ProofHtuMismatch,
    )
    .uri("http://api.example.com/resource");
    t.deny(
        "htu other path",
        htu("https://api.example.com/other"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu path prefix only",
        htu("https://api.example.com/res"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu trailing slash",
        htu("https://api.example.com/resource/"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu path case differs",
        htu("https://api.example.com/Resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu other host",
        htu("https://evil.example.com/resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu other port",
        htu("https://api.example.com:8443/resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "request URI itself unparsable",
        good.clone(),
        R::ProofHtuMismatch,
    )
    .uri("not a uri");
    t.ok("query string ignored (request side)", good.clone())
        .uri("https://api.example.com/resource?a=1&b=2");
    t.ok(
        "query and fragment ignored (claim side)",
        htu("https://api.example.com/resource?x=y#frag"),
    );
    t.ok(
        "default port in htu",
        htu("https://api.example.com:443/resource"),
    );
    t.ok("default port in request", good.clone())
        .uri("https://api.example.com:443/resource");
    t.ok(
        "scheme and host case-insensitive",
        htu("HTTPS://API.Example.COM/resource"),
    );
    t.ok(
        "unreserved percent-encoding normalized",
        htu("https://api.example.com/%72esource"),
    );
    t.ok(
        "dot segments removed",
        htu("https://api.example.com/a/../resource"),
    );

    // ---- iat ---------------------------------------------------------------------------------
    let iat = |v: Value| c(&move |m| drop(m.insert("iat".into(), v.clone())));
    t.deny(
        "iat missing",
        c(&|m| drop(m.remove("iat"))),
        R::ProofIatMissing,
    );
    t.deny(
        "iat string",
        iat(json!(NOW.to_string())),
        R::ProofIatMissing,
    );
    t.deny("iat null", iat(Value::Null), R::ProofIatMissing);
    t.deny("iat bool", iat(json!(true)), R::ProofIatMissing);
    t.deny("iat huge float", iat(json!(1e300)), R::ProofIatMissing);
    t.deny(
        "iat too old by one second",
        iat(json!(NOW - 121)),
        R::ProofIatTooOld,
    );
    t.deny("iat zero", iat(json!(0)), R::ProofIatTooOld);
    t.deny("iat negative", iat(json!(-1)), R::ProofIatTooOld);
    t.deny("iat i64::MIN", iat(json!(i64::MIN)), R::ProofIatTooOld);
    t.deny(
        "iat in future by one second",
        iat(json!(NOW + 61)),
        R::ProofIatInFuture,
    );
    // Beyond i64 the value is kept as a float, and NumericDates ≥ 1e15 are refused as
    // not-a-date (reported with the iat-missing reason) rather than compared.
    t.deny("iat u64::MAX", iat(json!(u64::MAX)), R::ProofIatMissing);
    t.deny("iat i64::MAX", iat(json!(i64::MAX)), R::ProofIatInFuture);
    t.ok("iat exactly now - ttl", iat(json!(NOW - 120)));
    t.ok("iat exactly now + skew", iat(json!(NOW + 60)));
    t.ok(
        "iat fractional within window (floored)",
        iat(json!(NOW as f64 + 60.9)),
    );
    t.deny(
        "iat fractional past the skew",
        iat(json!(NOW as f64 + 61.0)),
        R::ProofIatInFuture,
    );
    t.ok("custom ttl 5s: now - 5", iat(json!(NOW - 5)))
        .policy(ProofPolicy {
            proof_ttl: 5,
            clock_skew: 0,
            ..ProofPolicy::default()
        });
    t.deny(
        "custom ttl 5s: now - 6",
        iat(json!(NOW - 6)),
        R::ProofIatTooOld,
    )
    .policy(ProofPolicy {
        proof_ttl: 5,
        clock_skew: 0,
        ..ProofPolicy::default()
    });
    t.deny(
        "zero skew: now + 1",
        iat(json!(NOW + 1)),
        R::ProofIatInFuture,
    )
    .policy(ProofPolicy {
        proof_ttl: 5,
        clock_skew: 0,
        ..ProofPolicy::default()
    });
    t.ok("extreme clock does not overflow", good.clone())
        .policy(ProofPolicy {
            proof_ttl: i64::MAX,
            clock_skew: i64::MAX,
            ..ProofPolicy::default()
        });

    // ---- ath ---------------------------------------------------------------------------------
    let ath = ath_for(TOKEN);
    t.deny("ath missing with token", good.clone(), R::ProofAthMissing)
        .token(TOKEN);
    t.deny(
        "ath of another token",
        c(&|m| drop(m.insert("ath".into(), json!(ath_for("other"))))),
        R::ProofAthMismatch,
    )
    .token(TOKEN);
    t.deny(
        "ath not a string",
        c(&|m| drop(m.insert("ath".into(), json!(1)))),
        R::ProofAthMismatch,
    )
    .token(TOKEN);
    t.deny(
        "ath padded",
        c(&|m| drop(m.insert("ath".into(), json!(format!("{}=", ath_for(TOKEN)))))),
        R::ProofAthMismatch,
    )
    .token(TOKEN);
    t.deny(
        "ath hex instead of base64url",
        c(&|m| {
            let hex = hex::encode(b64::decode(&ath_for(TOKEN)).unwrap());
            m.insert("ath".into(), json!(hex));
        }),
        R::ProofAthMismatch,
    )
    .token(TOKEN);
    t.deny(
        "ath wrong even when not required",
        c(&|m| drop(m.insert("ath".into(), json!(ath_for("other"))))),
        R::ProofAthMismatch,
    )
    .token(TOKEN)
    .policy(ProofPolicy {
        require_ath: false,
        ..ProofPolicy::default()
    });
    t.ok(
        "ath matches",
        c(&move |m| drop(m.insert("ath".into(), json!(ath.clone())))),
    )
    .token(TOKEN);
    t.ok("ath absent allowed when not required", good.clone())
        .token(TOKEN)
        .policy(ProofPolicy {
            require_ath: false,
            ..ProofPolicy::default()
        });
    t.ok(
        "ath ignored without a token (token endpoint)",
        c(&|m| drop(m.insert("ath".into(), json!("whatever")))),
    );

    // ---- nonce -------------------------------------------------------------------------------
    t.deny(
        "nonce number",
        c(&|m| drop(m.insert("nonce".into(), json!(5)))),
        R::NonceInvalid,
    );
    t.deny(
        "nonce object",
        c(&|m| drop(m.insert("nonce".into(), json!({"n": 1})))),
        R::NonceInvalid,
    );
    t.deny(
        "nonce null",
        c(&|m| drop(m.insert("nonce".into(), Value::Null))),
        R::NonceInvalid,
    );
    t.ok(
        "nonce string passed through",
        c(&|m| drop(m.insert("nonce".into(), json!("n-1")))),
    );

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

    t.0
}

#[test]
fn table() {
    let cases = cases();
    let neg = cases.iter().filter(|c| c.want.is_err()).count();
    let mut failures = Vec::new();
    for case in &cases {
        let req = RequestFacts {
            method: case.method,
            uri: &case.uri,
            access_token: case.token,
            now: case.now,
        };
        let got = verify_proof(&case.proof, &req, &case.policy).map(|_| ());
        if got != case.want {
            failures.push(format!(
                "{}: want {:?}, got {:?}",
                case.name, case.want, got
            ));
        }
    }
    println!(
        "{} cases ({} negative, {} positive)",
        cases.len(),
        neg,
        cases.len() - neg
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(neg >= 30);
}

/// Every proof-related deny reason `verify_proof` can return is exercised by the table.
#[test]
fn table_covers_every_proof_reason() {
    use DenyReason as R;
    let reachable = [
        R::ProofTooLarge,
        R::ProofMalformed,
        R::ProofHeaderInvalid,
        R::ProofTypInvalid,
        R::ProofAlgMissing,
        R::ProofAlgUnsupported,
        R::ProofAlgNotAllowed,
        R::ProofCritUnsupported,
        R::ProofJwkMissing,
        R::ProofJwkInvalid,
        R::ProofJwkPrivate,
        R::ProofAlgKeyMismatch,
        R::ProofSignatureInvalid,
        R::ProofClaimsInvalid,
        R::ProofJtiMissing,
        R::ProofJtiInvalid,
        R::ProofHtmMissing,
        R::ProofHtmMismatch,
        R::ProofHtuMissing,
        R::ProofHtuInvalid,
        R::ProofHtuMismatch,
        R::ProofIatMissing,
        R::ProofIatTooOld,
        R::ProofIatInFuture,
        R::ProofAthMissing,
        R::ProofAthMismatch,
        R::NonceInvalid,
    ];
    let cases = cases();
    for r in reachable {
        let n = cases.iter().filter(|c| c.want == Err(r)).count();
        assert!(n > 0, "no case for {r:?}");
    }
    // Every reason named Proof* is either reachable from verify_proof or decided elsewhere.
    let elsewhere = [R::ProofMissing, R::ProofMultiple, R::ProofReplayed];
    for r in DenyReason::ALL {
        let name = format!("{r:?}");
        if name.starts_with("Proof") {
            assert!(
                reachable.contains(r) || elsewhere.contains(r),
                "{name} not covered"
            );
        }
        if reachable.contains(r) {
            let slug = r.problem().slug();
            assert!(
                slug == "dpop-invalid" || slug == "use-dpop-nonce",
                "{name} maps to {slug}"
            );
        }
    }
}

#[test]
fn verified_fields_per_alg() {
    let rsa = TestKey::rsa();
    let keys: [(TestKey, &str); 6] = [
        (TestKey::ed25519(), "EdDSA"),
        (TestKey::p256(), "ES256"),
        (TestKey::p384(), "ES384"),
        (rsa.clone(), "RS256"),
        (rsa.clone(), "PS256"),
        (TestKey::ed25519_n(9), "EdDSA"),
    ];
    let policy = all_algs();
    for (key, alg) in keys {
        if alg == "ES384" && !cfg!(feature = "es384") {
            continue;
        }
        let claims = json!({"jti": "j-1", "htm": "POST", "htu": "https://as.example/token", "iat": NOW - 3, "nonce": "nn"}).to_string();
        let proof = make_proof(&header_for(alg, &key), &claims, &key);
        let req = RequestFacts {
            method: "POST",
            uri: "https://as.example/token",
            access_token: None,
            now: NOW,
        };
        let v = verify_proof(&proof, &req, &policy).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(v.alg, Alg::from_name(alg).unwrap());
        assert_eq!(v.jkt, key.jkt());
        let jwk = PublicJwk::from_json(key.public_jwk().as_bytes()).unwrap();
        assert_eq!(v.jkt, jwk.thumbprint());
        assert_eq!(v.jti, "j-1");
        assert_eq!(v.iat, NOW - 3);
        assert_eq!(v.nonce.as_deref(), Some("nn"));
        assert_eq!(v.replay_key, replay_key(&v.jkt, "j-1"));
        assert!(v.replay_key.starts_with("dpop:jti:"));
    }
}

/// Mutation loop: random byte edits of valid proofs, random claim/header value swaps (re-signed,
/// so they reach the claim checks), and random garbage must never panic; a proof that still
/// verifies after a byte edit must be the unmodified proof.
#[test]
fn mutations_never_panic() {
    let ed = TestKey::ed25519();
    let ec = TestKey::p256();
    let rsa = TestKey::rsa();
    let policy = all_algs();
    let base_claims = claims();
    let bases: Vec<(TestKey, &str)> = vec![
        (ed, "EdDSA"),
        (ec, "ES256"),
        (rsa.clone(), "RS256"),
        (rsa, "PS256"),
    ];
    let values = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5e308),
        json!(u64::MAX),
        json!(NOW),
        json!(""),
        json!("GET"),
        json!(URI),
        json!("é\u{0}\u{ffff}"),
        json!([]),
        json!({}),
        json!([URI]),
        json!({"kty": "EC", "crv": "P-256", "x": "", "y": ""}),
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    ];
    let header_names = ["typ", "alg", "jwk", "crit", "kid", "b64"];
    let claim_names = ["jti", "htm", "htu", "iat", "ath", "nonce", "exp"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ran = 0usize;
    let result = catch_unwind(AssertUnwindSafe(|| {
        for round in 0..600 {
            let (key, alg) = &bases[round % bases.len()];
            let mut header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk_value()});
            let mut claims = base_claims.clone();
            // Structured mutations, then sign.
            for _ in 0..rng.below(3) {
                let (target, names): (&mut Value, &[&str]) = if rng.below(2) == 0 {
                    (&mut header, &header_names)
                } else {
                    (&mut claims, &claim_names)
                };
                let name = names[rng.below(names.len())];
                let obj = target.as_object_mut().unwrap();
                if rng.below(4) == 0 {
                    obj.remove(name);
                } else {
                    obj.insert(name.to_owned(), values[rng.below(values.len())].clone());
                }
            }
            let proof = make_proof(&header.to_string(), &claims.to_string(), key);
            let token = if rng.below(2) == 0 { Some(TOKEN) } else { None };
            let req = RequestFacts {
                method: METHOD,
                uri: URI,
                access_token: token,
                now: NOW,
            };
            let _ = verify_proof(&proof, &req, &policy);
            ran += 1;
            // Byte-level mutations of the signed proof.
            for _ in 0..8 {
                let mut bytes = proof.clone().into_bytes();
                match rng.below(4) {
                    0 => {
                        let i = rng.below(bytes.len());
                        bytes[i] = b"ABCxyz019-_.=+/ \x00"[rng.below(17)];
                    }
                    1 => {
                        let i = rng.below(bytes.len());
                        bytes.remove(i);
                    }
                    2 => {
                        let i = rng.below(bytes.len() + 1);
                        bytes.insert(i, b"A.-_"[rng.below(4)]);
                    }
                    _ => {
                        let i = rng.below(bytes.len());
                        bytes.truncate(i);
                    }
                }
                let mutated = String::from_utf8_lossy(&bytes).into_owned();
                if let Ok(v) = verify_proof(&mutated, &req, &policy) {
                    assert_eq!(mutated, proof, "mutated proof verified: {v:?}");
                }
                ran += 1;
            }
        }
        // Raw garbage.
        for _ in 0..2000 {
            let len = rng.below(200);
            let s: String = (0..len)
                .map(|_| (b"eyJ.AZaz09-_={}\""[rng.below(16)]) as char)
                .collect();
            let req = RequestFacts {
                method: METHOD,
                uri: URI,
                access_token: None,
                now: NOW,
            };
            assert!(verify_proof(&s, &req, &policy).is_err());
            ran += 1;
        }
    }));
    assert!(result.is_ok(), "verify_proof panicked after {ran} inputs");
    println!("{ran} mutated/random inputs, no panic");
}

#[test]
fn typ_with_application_prefix_is_the_same_media_type() {
    let k = TestKey::ed25519();
    let now = 1_700_000_000;
    for (typ, ok) in [
        ("application/dpop+jwt", true),
        ("Application/DPoP+JWT", true),
        ("application/jwt", false),
        ("xapplication/dpop+jwt", false),
    ] {
        let header = format!(
            r#"{{"typ":"{typ}","alg":"EdDSA","jwk":{}}}"#,
            k.public_jwk()
        );
        let claims =
            format!(r#"{{"jti":"t","htm":"GET","htu":"https://a.example/x","iat":{now}}}"#);
        let p = make_proof(&header, &claims, &k);
        let facts = RequestFacts {
            method: "GET",
            uri: "https://a.example/x",
            access_token: None,
            now,
        };
        let r = verify_proof(&p, &facts, &ProofPolicy::default());
        assert_eq!(r.is_ok(), ok, "{typ}: {r:?}");
        if !ok {
            assert_eq!(r.unwrap_err(), DenyReason::ProofTypInvalid);
        }
    }
}

#[test]
fn key_cache_skips_header_work_but_never_the_signature() {
    use dpop_guard::proof::{verify_proof_cached, KeyCache};
    let k = TestKey::ed25519();
    let now = 1_700_000_000;
    let facts = RequestFacts {
        method: "GET",
        uri: "https://a.example/x",
        access_token: None,
        now,
    };
    let policy = ProofPolicy::default();
    let mut cache = KeyCache::new(2);
    let mk = |jti: &str| {
        make_proof(
            &header_for("EdDSA", &k),
            &format!(r#"{{"jti":"{jti}","htm":"GET","htu":"https://a.example/x","iat":{now}}}"#),
            &k,
        )
    };
    let first = verify_proof_cached(&mk("a"), &facts, &policy, &mut cache).unwrap();
    assert_eq!(cache.len(), 1);
    let second = verify_proof_cached(&mk("b"), &facts, &policy, &mut cache).unwrap();
    assert_eq!(cache.len(), 1, "same header, one entry");
    assert_eq!(first.jkt, second.jkt);
    assert_eq!(first.jkt, k.jkt());
    // a cached header does not vouch for a signature
    let (h, p, _) = segments(&mk("c"));
    let forged = format!("{h}.{p}.{}", b64::encode(&[0u8; 64]));
    assert_eq!(
        verify_proof_cached(&forged, &facts, &policy, &mut cache),
        Err(DenyReason::ProofSignatureInvalid)
    );
    // claims are still checked on a cache hit
    let stale = make_proof(
        &header_for("EdDSA", &k),
        &format!(
            r#"{{"jti":"d","htm":"GET","htu":"https://a.example/x","iat":{}}}"#,
            now - 1000
        ),
        &k,
    );
    assert_eq!(
        verify_proof_cached(&stale, &facts, &policy, &mut cache),
        Err(DenyReason::ProofIatTooOld)
    );
    // bounded: more keys than capacity evict the oldest
    for tag in 0..5u8 {
        let kk = TestKey::ed25519_n(100 + tag);
        let p = make_proof(
            &header_for("EdDSA", &kk),
            &format!(r#"{{"jti":"e","htm":"GET","htu":"https://a.example/x","iat":{now}}}"#),
            &kk,
        );
        assert!(verify_proof_cached(&p, &facts, &policy, &mut cache).is_ok());
        assert!(cache.len() <= 2);
    }
    // a header that failed its checks is never cached
    let mut empty = KeyCache::new(8);
    let bad = make_proof(r#"{"typ":"jwt","alg":"EdDSA"}"#, "{}", &k);
    assert!(verify_proof_cached(&bad, &facts, &policy, &mut empty).is_err());
    assert!(empty.is_empty());
}
