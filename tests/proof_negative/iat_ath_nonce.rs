//! Table cases: `iat` (window edges, types, custom TTL and skew), `ath` (the token hash) and
//! `nonce` (type only).

use crate::common::make_proof;
use crate::negative::*;
use dpop_guard::b64;
use dpop_guard::proof::ath_for;
use dpop_guard::{DenyReason, ProofPolicy};
use serde_json::{json, Value};

/// iat, ath, nonce.
pub fn cases(t: &mut Table, fx: &Fixture) {
    use DenyReason as R;
    let Fixture { ed, ed_h, good, .. } = fx.clone();
    let c =
        |f: &dyn Fn(&mut serde_json::Map<String, Value>)| make_proof(&ed_h, &claims_with(f), &ed);
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
}
