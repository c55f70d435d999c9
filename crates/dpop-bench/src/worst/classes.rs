//! The worst-case class table, in report order (`classes`, `find` by id), and the deep `merge`
//! of a class's plugin-configuration overrides into the base configuration.

use super::material::p256_jwk;
use super::{Class, Expect, Shape};
use dpop_guard::reason::DenyReason;
use serde_json::{json, Value};

/// The classes, in report order. `jwks_key` is the issuer key configured for `keys` mode (any
/// P-256 public key: the class never sends a valid token).
pub fn classes() -> Result<Vec<Class>, String> {
    let big = json!({"max_proof_bytes": 65536});
    let shipped = json!({});
    let issuer = p256_jwk()?;
    let c = |id, label, what, config_note, config: &Value, expect, unique, rate, shape| Class {
        id,
        label,
        what,
        config_note,
        filter: !matches!(shape, Shape::PlainBigHeader | Shape::PlainHeaders),
        config: config.clone(),
        expect,
        unique,
        rate,
        native_only: shape == Shape::RefEddsa,
        shape,
    };
    use DenyReason as R;
    // Since the 2048-value cap on every parsed JSON document (src/json.rs MAX_VALUES), the
    // padded classes 1a-1c, 3, 4a and 4b are refused when the parser reaches the cap: what
    // they measure is now the cost of that refusal (the descriptions say what was sent).
    Ok(vec![
        c(
            "worst_header_nested",
            "1a. DPoP header at the size cap: header JSON padded with nested arrays, junk signature",
            "60,000-byte DPoP value; protected header {typ, alg EdDSA, fresh jwk, pad} where pad \
             is ~220 arrays nested 100 deep (~45 KB of JSON); well-formed signature that does not \
             verify",
            "max_proof_bytes 65536",
            &big,
            Expect::Deny(R::ProofHeaderInvalid),
            false,
            2_000,
            Shape::HeaderNested,
        ),
        c(
            "worst_header_members",
            "1b. DPoP header at the size cap: header JSON padded with 256-member objects, junk signature",
            "60,000-byte DPoP value; protected header {typ, alg EdDSA, fresh jwk, pad} where pad \
             is an array of ~25 objects of 256 members each; well-formed signature that does not \
             verify",
            "max_proof_bytes 65536",
            &big,
            Expect::Deny(R::ProofHeaderInvalid),
            false,
            2_000,
            Shape::HeaderMembers,
        ),
        c(
            "worst_header_default",
            "1c. DPoP header at the default cap (8,192 bytes), padded as 1a, junk signature",
            "8,192-byte DPoP value (the shipped max_proof_bytes); protected header as in 1a with \
             ~30 nested arrays",
            "shipped (max_proof_bytes 8192)",
            &shipped,
            Expect::Deny(R::ProofHeaderInvalid),
            false,
            5_000,
            Shape::HeaderNestedDefault,
        ),
        c(
            "worst_header_over_cap",
            "2. DPoP header over the member cap (thousands of members)",
            "60,000-byte DPoP value; protected header {typ, alg, jwk, m0..m4600}: one flat \
             object of ~4,600 members, refused when the 257th is read",
            "max_proof_bytes 65536",
            &big,
            Expect::Deny(R::ProofHeaderInvalid),
            false,
            5_000,
            Shape::HeaderOverCap,
        ),
        c(
            "worst_claims",
            "3. Valid EdDSA proof with ~45 KB of claims (nested arrays)",
            "60,000-byte DPoP value, validly signed (4 keys, unique jti): claims {jti, htm, htu, \
             iat, pad} with pad as in 1a; accepted",
            "max_proof_bytes 65536",
            &big,
            Expect::Deny(R::ProofClaimsInvalid),
            true,
            600,
            Shape::ClaimsNested,
        ),
        c(
            "worst_token_upstream",
            "4a. 16 KiB Bearer token, `upstream` mode (payload decoded), valid proof",
            "Authorization: Bearer <16,384-byte unsigned JWT whose payload is {cnf.jkt, pad} with \
             pad as in 1a> + a valid EdDSA proof with ath (4 keys, unique jti); accepted (the \
             upstream verifies the token)",
            "shipped (access_token.verify upstream)",
            &shipped,
            Expect::Deny(R::TokenMalformed),
            true,
            3_000,
            Shape::TokenUpstream,
        ),
        c(
            "worst_token_keys",
            "4b. 16 KiB Bearer token, `keys` mode (header parsed, ES256 signature checked)",
            "Authorization: Bearer <16,384-byte JWT whose protected header is {alg ES256, pad} \
             with pad as in 1a, no kid; well-formed ES256 signature that does not verify>; no proof",
            "access_token.verify keys, one ES256 key in jwks",
            &json!({"access_token": {"verify": "keys", "jwks": {"keys": [issuer]}}}),
            Expect::Deny(R::TokenMalformed),
            false,
            4_000,
            Shape::TokenKeys,
        ),
        c(
            "worst_rsa4096",
            "5a. RS256 proof, 4096-bit key (e = 65537) seen for the first time, junk signature",
            "~2 KB DPoP value; jwk a fresh random odd 4096-bit modulus per request (1,024 in \
             turn, more than the header cache holds), signature < n that does not verify",
            "shipped",
            &shipped,
            Expect::Deny(R::ProofSignatureInvalid),
            false,
            5_000,
            Shape::Rsa4096,
        ),
        c(
            "worst_rsa_refused",
            "5b. RS256 proof, 8192-bit key with e = 2³²−1, or 2048-bit with e = 3 (refused at the JWK)",
            "~3.5 KB (8192-bit) or ~1 KB (e = 3) DPoP value, in turn; before issue 11 the 8192-bit \
             key with e = 2^32-1 cost 6.9 ms per proof; now refused before any arithmetic",
            "shipped",
            &shipped,
            Expect::Deny(R::ProofJwkInvalid),
            false,
            10_000,
            Shape::RsaRefused,
        ),
        c(
            "worst_ed25519_first",
            "6a. EdDSA proof, key seen for the first time, junk signature",
            "normal-size proof; fresh Ed25519 key per request (1,024 in turn); R a valid point \
             and s < ℓ, so the whole verification runs and fails",
            "shipped",
            &shipped,
            Expect::Deny(R::ProofSignatureInvalid),
            false,
            10_000,
            Shape::Ed25519First,
        ),
        c(
            "worst_ed25519_twice",
            "6b. EdDSA proof, each fresh key used twice, junk signature (builds no comb since junk earns no tables)",
            "as 6a, but each key signs two consecutive requests (512 keys in turn): the second \
             finds the key in the header cache; before 2026-11-30 it built the key's 25 KiB \
             comb (evicted before any use), now only a successful verification earns one",
            "shipped",
            &shipped,
            Expect::Deny(R::ProofSignatureInvalid),
            false,
            10_000,
            Shape::Ed25519Twice,
        ),
        c(
            "worst_p256_first",
            "6c. ES256 proof, key seen for the first time, junk signature",
            "normal-size proof; fresh P-256 key per request (1,024 in turn); r, s in [1, n), so \
             the whole verification runs and fails",
            "shipped",
            &shipped,
            Expect::Deny(R::ProofSignatureInvalid),
            false,
            10_000,
            Shape::P256First,
        ),
        c(
            "worst_headers_dup",
            "7a. 96 headers of 500 bytes + the DPoP header twice",
            "96 × `x-pad-N: <500 bytes>` (48 KB) + two DPoP headers; refused as proof_multiple",
            "shipped",
            &shipped,
            Expect::Deny(R::ProofMultiple),
            false,
            10_000,
            Shape::HeadersDup,
        ),
        c(
            "worst_headers_valid",
            "7b. 96 headers of 500 bytes + a valid EdDSA proof",
            "96 × `x-pad-N: <500 bytes>` (48 KB) + one valid EdDSA proof (4 keys, unique jti); \
             accepted",
            "shipped",
            &shipped,
            Expect::Allow,
            true,
            6_000,
            Shape::HeadersValid,
        ),
        c(
            "worst_plain_big",
            "B1. plain Envoy (no filter), the requests of 1a (60 KB DPoP header)",
            "the requests of 1a through plain Envoy (router → direct_response 200)",
            "no filter",
            &shipped,
            Expect::Plain,
            false,
            20_000,
            Shape::PlainBigHeader,
        ),
        c(
            "worst_plain_headers",
            "B2. plain Envoy (no filter), the requests of 7a (96 headers of 500 bytes)",
            "the requests of 7a through plain Envoy (router → direct_response 200)",
            "no filter",
            &shipped,
            Expect::Plain,
            false,
            20_000,
            Shape::PlainHeaders,
        ),
        c(
            "ref_eddsa",
            "R. normal EdDSA proof (4 keys), as scenario 3",
            "one unique EdDSA proof per request, 4 client keys",
            "shipped",
            &shipped,
            Expect::Allow,
            true,
            12_000,
            Shape::RefEddsa,
        ),
    ])
}

pub fn find(id: &str) -> Result<Class, String> {
    classes()?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| format!("unknown worst-case class {id:?}"))
}

/// Deep-merges `over` into `base` (objects merge, anything else replaces).
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}
