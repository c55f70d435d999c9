//! Shared fixture of the `verify_proof` suites (tests/proof_negative.rs and its case groups in
//! tests/proof_negative/, tests/proof_properties.rs): the fixed request and clock, claim/header/JWK
//! builders, the case table (`Case`, `Table`) and the keys and valid proofs the cases start from
//! (`Fixture`). Included with `#[path = "common/negative.rs"] mod negative;` next to `mod common;`.
#![allow(dead_code)]

use crate::common::{header_for, make_proof, segments, TestKey};
use dpop_guard::b64;
use dpop_guard::jose::Alg;
use dpop_guard::{DenyReason, ProofPolicy};
use serde_json::{json, Value};

pub const NOW: i64 = 1_700_000_000;
pub const METHOD: &str = "GET";
pub const URI: &str = "https://api.example.com/resource";
pub const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

pub fn claims() -> Value {
    json!({"jti": "jti-0001", "htm": METHOD, "htu": URI, "iat": NOW})
}

pub fn claims_with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c.to_string()
}

pub fn header_with(
    alg: &str,
    key: &TestKey,
    f: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    let mut h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk_value()});
    f(h.as_object_mut().unwrap());
    h.to_string()
}

pub fn jwk_with(key: &TestKey, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut j = key.public_jwk_value();
    f(j.as_object_mut().unwrap());
    j
}

pub fn b64_bytes(v: &Value) -> Vec<u8> {
    b64::decode(v.as_str().unwrap()).unwrap()
}

pub fn all_algs() -> ProofPolicy {
    ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect(),
        ..ProofPolicy::default()
    }
}

pub struct Case {
    pub name: String,
    pub proof: String,
    pub method: &'static str,
    pub uri: String,
    pub token: Option<&'static str>,
    pub now: i64,
    pub policy: ProofPolicy,
    pub want: Result<(), DenyReason>,
}

/// Collects cases; defaults: GET URI, no token, NOW, default policy.
#[derive(Default)]
pub struct Table(pub Vec<Case>);

impl Table {
    pub fn deny(&mut self, name: &str, proof: String, want: DenyReason) -> &mut Case {
        self.push(name, proof, Err(want))
    }
    pub fn ok(&mut self, name: &str, proof: String) -> &mut Case {
        self.push(name, proof, Ok(()))
    }
    pub fn push(&mut self, name: &str, proof: String, want: Result<(), DenyReason>) -> &mut Case {
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
    pub fn policy(&mut self, p: ProofPolicy) -> &mut Case {
        self.policy = p;
        self
    }
    pub fn token(&mut self, t: &'static str) -> &mut Case {
        self.token = Some(t);
        self
    }
    pub fn uri(&mut self, u: &str) -> &mut Case {
        self.uri = u.to_owned();
        self
    }
    pub fn method(&mut self, m: &'static str) -> &mut Case {
        self.method = m;
        self
    }
}

/// The keys and valid proofs the cases start from (one Ed25519, P-256, RSA proof of the fixed
/// request; `gh`, `gp`, `gs`: the segments of the Ed25519 one). Each case group destructures a
/// clone, so its cases read as they did in one function.
#[derive(Clone)]
pub struct Fixture {
    pub ed: TestKey,
    pub ed_b: TestKey,
    pub ec: TestKey,
    pub ec_b: TestKey,
    pub ec384: TestKey,
    pub rsa: TestKey,
    pub good_claims: String,
    pub ed_h: String,
    pub ec_h: String,
    pub good: String,
    pub gh: String,
    pub gp: String,
    pub gs: String,
    pub ec_good: String,
    pub rs_h: String,
    pub ps_h: String,
    pub rs_good: String,
}

impl Fixture {
    pub fn new() -> Fixture {
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
        let ec_good = make_proof(&ec_h, &good_claims, &ec);
        let rs_h = header_for("RS256", &rsa);
        let ps_h = header_for("PS256", &rsa);
        let rs_good = make_proof(&rs_h, &good_claims, &rsa);
        Fixture {
            ed,
            ed_b,
            ec,
            ec_b,
            ec384,
            rsa,
            good_claims,
            ed_h,
            ec_h,
            good,
            gh,
            gp,
            gs,
            ec_good,
            rs_h,
            ps_h,
            rs_good,
        }
    }
}
