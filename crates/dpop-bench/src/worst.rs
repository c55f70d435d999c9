//! Worst case per input class (issue 11, defect 8): for each kind of input an attacker controls
//! before any signature is trusted, the most expensive request the filter still reads, and a
//! baseline or two. `make bench` (scripts/bench.py) replays each class against Envoy at the
//! same concurrency as the other scenarios (`dpop-bench run --worst ID`), and times the same
//! requests natively through `dpop_guard::authn::decide_headers_cached` (`dpop-bench
//! worst-native`), so the filter's own cost is separated from Envoy's.
//!
//! Sizes are the limits that apply in front of the filter: Envoy's default request-header limit
//! (`max_request_headers_kb` 60, ≈ 61,300 bytes of DPoP value with our request line and Host)
//! and header count (`max_headers_count` 100), the filter's `max_proof_bytes` (65536 where a
//! class needs a big proof; the default is 8192) and `MAX_TOKEN_BYTES` (16 KiB).
//!
//! JSON padding: the filter caps members per object (256) and elements per array (1024), not
//! the number of values. Measured natively, nested empty arrays (`[[[…]]]`, one allocation per
//! two input bytes) cost 2–5× more per byte than objects of 256 `"k":0` members, so the
//! "most expensive accepted" classes pad with arrays nested 100 deep (serde_json refuses 128);
//! one class pads with 256-member objects for comparison.

use crate::proofs::{now_secs, random_bytes, random_jti, ClientKey};
use dpop_client::{KeyKind, SigningKey};
use dpop_guard::authn::{decide_headers_cached, Decision};
use dpop_guard::b64;
use dpop_guard::config::Config;
use dpop_guard::jose::Alg;
use dpop_guard::proof::{ath_for, KeyCache};
use dpop_guard::reason::DenyReason;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The largest DPoP value we send: under Envoy's default 60 KiB header limit with room for
/// the request line, Host and Authorization (61,359 bytes passed in a probe).
pub const BIG_PROOF: usize = 60_000;
/// The filter's default `max_proof_bytes`.
pub const DEFAULT_PROOF: usize = 8192;
/// The filter's access token cap.
pub const MAX_TOKEN: usize = dpop_guard::token::MAX_TOKEN_BYTES;
/// Padding headers of the many-headers classes: with Host and up to two DPoP headers this stays
/// within Envoy's default `max_headers_count` (100).
pub const PAD_HEADERS: usize = 96;
pub const PAD_HEADER_BYTES: usize = 500;
/// Nesting depth of the array padding (serde_json refuses depth 128; the proof's own object
/// and the padding member take two levels).
const DEPTH: usize = 100;
/// Distinct requests in a replayed (cycled) pool: more than the filter's per-VM proof-header
/// cache (256 entries, FIFO), so cycling through them never hits the cache.
pub const CYCLE: usize = 1024;
/// The filter's per-VM proof-header cache size (`KEY_CACHE_ENTRIES` in src/host).
pub const FILTER_KEY_CACHE: usize = 256;
/// Client keys for the classes that send valid proofs (as the EdDSA scenario).
const KEYS: usize = 4;

/// What a request of the class must get.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// 200 from the route: the filter let it through.
    Allow,
    /// The filter's refusal with exactly this reason.
    Deny(DenyReason),
    /// No filter in the chain (baseline): 200.
    Plain,
}

impl Expect {
    pub fn status(self) -> u16 {
        match self {
            Expect::Allow | Expect::Plain => 200,
            Expect::Deny(r) => u16::try_from(r.problem().status()).unwrap_or(500),
        }
    }
    /// Text the response body must contain (the problem `detail`).
    pub fn body_contains(self) -> Option<&'static str> {
        match self {
            Expect::Deny(r) => Some(r.detail()),
            _ => None,
        }
    }
    fn matches(self, d: &Decision) -> bool {
        match (self, d) {
            (Expect::Allow, Decision::Allow { .. }) => true,
            (Expect::Deny(r), Decision::Deny(got)) => r == *got,
            _ => false,
        }
    }
    fn describe(self) -> String {
        match self {
            Expect::Allow => "allowed (200)".into(),
            Expect::Plain => "200 (no filter)".into(),
            Expect::Deny(r) => format!("{} ({})", r.problem().status(), r.stat_name()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    HeaderNested,
    HeaderNestedDefault,
    HeaderMembers,
    HeaderOverCap,
    ClaimsNested,
    TokenUpstream,
    TokenKeys,
    Rsa4096,
    RsaRefused,
    Ed25519First,
    Ed25519Twice,
    P256First,
    HeadersDup,
    HeadersValid,
    PlainBigHeader,
    PlainHeaders,
    RefEddsa,
}

/// One input class.
pub struct Class {
    pub id: &'static str,
    pub label: &'static str,
    /// The request, in words.
    pub what: &'static str,
    /// Config note for the report.
    pub config_note: &'static str,
    /// Run behind the filter (false: plain Envoy baseline).
    pub filter: bool,
    /// Plugin configuration overrides, merged into the shipped configuration.
    pub config: Value,
    pub expect: Expect,
    /// Every request is used once (valid proofs: the replay store would refuse a second use);
    /// otherwise a pool of [`CYCLE`] distinct requests is replayed in turn.
    pub unique: bool,
    /// Upper estimate of req/s through one pinned Envoy worker (sizes a unique pool).
    pub rate: u32,
    /// Only timed natively (a reference, not an Envoy scenario).
    pub native_only: bool,
    shape: Shape,
}

impl Class {
    pub fn expect_text(&self) -> String {
        self.expect.describe()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "what": self.what,
            "config_note": self.config_note,
            "filter": self.filter,
            "config": self.config,
            "expect": self.expect.describe(),
            "expect_status": self.expect.status(),
            "expect_stat": match self.expect {
                Expect::Allow => Some("allowed".to_owned()),
                Expect::Deny(r) => Some(format!("denied.{}", r.stat_name())),
                Expect::Plain => None,
            },
            "unique": self.unique,
            "rate": self.rate,
            "native_only": self.native_only,
            "baseline": match self.shape {
                Shape::HeaderNested
                | Shape::HeaderMembers
                | Shape::HeaderOverCap
                | Shape::ClaimsNested => Some("worst_plain_big"),
                Shape::HeadersDup | Shape::HeadersValid => Some("worst_plain_headers"),
                Shape::PlainBigHeader | Shape::PlainHeaders | Shape::RefEddsa => None,
                _ => Some("plain"),
            },
        })
    }
}

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
            "6b. EdDSA proof, each fresh key used twice (the second use builds its comb), junk signature",
            "as 6a, but each key signs two consecutive requests (512 keys in turn): the second \
             finds the key in the header cache and builds its 25 KiB comb, which is evicted \
             before it is used again",
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

// ---- building blocks ---------------------------------------------------------------------

/// One request's headers beyond the request line and Host.
pub type Headers = Vec<(String, String)>;

/// Where the requests go (for `htu`).
pub struct Target {
    pub htu: String,
}

fn ed25519_public() -> Result<[u8; 32], String> {
    // A real public key (a point of large order): only the signature is junk.
    let key = SigningKey::generate(KeyKind::Ed25519).map_err(|e| e.0)?;
    let Some(x) = key
        .public_members()
        .map_err(|e| e.0)?
        .into_iter()
        .find(|(n, _)| *n == "x")
    else {
        return Err("Ed25519 JWK without x".into());
    };
    b64::decode(&x.1)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "Ed25519 x is not 32 bytes".into())
}

fn ed25519_jwk_json() -> Result<String, String> {
    Ok(format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
        b64::encode(&ed25519_public()?)
    ))
}

/// A well-formed Ed25519 signature that does not verify: R a canonical point of large order,
/// s < 2^252 < ℓ. Every byte-level check passes, so verification runs to the last comparison.
fn ed25519_junk_sig() -> Result<Vec<u8>, String> {
    let mut sig = ed25519_public()?.to_vec();
    let mut s = random_bytes(32)?;
    if let Some(top) = s.last_mut() {
        *top &= 0x0f;
    }
    sig.extend_from_slice(&s);
    Ok(sig)
}

fn p256_point() -> Result<([u8; 32], [u8; 32]), String> {
    let key = SigningKey::generate(KeyKind::P256).map_err(|e| e.0)?;
    let members = key.public_members().map_err(|e| e.0)?;
    let coordinate = |name: &str| -> Result<[u8; 32], String> {
        members
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| b64::decode(v))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("P-256 JWK without a 32-byte {name}"))
    };
    Ok((coordinate("x")?, coordinate("y")?))
}

fn p256_jwk() -> Result<Value, String> {
    let (x, y) = p256_point()?;
    Ok(json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&x), "y": b64::encode(&y)}))
}

/// r ‖ s, both in [1, n): the top byte below 0x7f keeps each under the group order.
fn p256_junk_sig() -> Result<Vec<u8>, String> {
    let mut sig = random_bytes(64)?;
    for i in [0usize, 32] {
        if let Some(b) = sig.get_mut(i) {
            *b = (*b & 0x7f) | 0x01;
        }
    }
    Ok(sig)
}

/// Arrays nested `DEPTH` deep, as many as fit in `budget` bytes: `[[[…]]],[[[…]]],…` inside
/// one array (at most 1024 elements).
fn nested_pad(budget: usize) -> String {
    let one = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let n = (budget.saturating_sub(2) / (one.len() + 1)).clamp(1, 1024);
    format!("[{}]", vec![one; n].join(","))
}

/// Objects of 256 members `"k":0` (hex names), as many as fit in `budget` bytes, in one array.
fn members_pad(budget: usize) -> String {
    let full: Vec<String> = (0..256).map(|i| format!("\"{i:x}\":0")).collect();
    let obj = |k: usize| format!("{{{}}}", full.get(..k).unwrap_or_default().join(","));
    let one = obj(256);
    let mut parts = Vec::new();
    let mut len = 2;
    while len + one.len() < budget && parts.len() < 1024 {
        len += one.len() + 1;
        parts.push(one.clone());
    }
    // a last, partial object for the rest
    let left = budget.saturating_sub(len + 1 + 2);
    if left > 8 {
        parts.push(obj((left / 7).min(256)));
    }
    format!("[{}]", parts.join(","))
}

/// `,"m0":0,"m1":0,…` (flat members, thousands) within `budget` bytes.
fn flat_members(budget: usize) -> String {
    let mut out = String::with_capacity(budget);
    let mut i = 0usize;
    loop {
        let m = format!(",\"m{i:x}\":0");
        if out.len() + m.len() > budget {
            break;
        }
        out.push_str(&m);
        i += 1;
    }
    out
}

/// The largest padding `budget` (within a padding unit) for which `make(budget)` is at most
/// `target` bytes long. The random parts of a request have fixed lengths, so one budget fits
/// every request of a class.
fn fit(target: usize, make: &dyn Fn(usize) -> Result<String, String>) -> Result<usize, String> {
    let mut budget = target * 3 / 4;
    for _ in 0..64 {
        let len = make(budget)?.len();
        if len <= target {
            return Ok(budget);
        }
        budget = budget.saturating_sub((len - target) * 3 / 4 + 16);
    }
    Err(format!("cannot fit the padding into {target} bytes"))
}

fn compact(header_json: &str, claims_json: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(header_json.as_bytes()),
        b64::encode(claims_json.as_bytes()),
        b64::encode(sig)
    )
}

fn small_claims(htu: &str) -> Result<String, String> {
    Ok(json!({"jti": random_jti()?, "htm": "GET", "htu": htu, "iat": now_secs()?}).to_string())
}

/// Shared material of one class's pool.
struct Ctx {
    keys: Vec<ClientKey>,
    /// Per key: the 16 KiB token bound to it (4a).
    tokens: Vec<String>,
    /// The JSON padding, sized once for the class.
    pad: String,
    /// Ed25519 JWKs used twice each (6b).
    jwks: Vec<String>,
}

impl Ctx {
    fn new(shape: Shape, t: &Target) -> Result<Ctx, String> {
        let needs_keys = matches!(
            shape,
            Shape::ClaimsNested | Shape::TokenUpstream | Shape::HeadersValid | Shape::RefEddsa
        );
        let keys = if needs_keys {
            (0..KEYS)
                .map(|_| ClientKey::generate(Alg::EdDSA))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let pad_fn: fn(usize) -> String = match shape {
            Shape::HeaderMembers => members_pad,
            Shape::HeaderOverCap => flat_members,
            _ => nested_pad,
        };
        let jwks = if shape == Shape::Ed25519Twice {
            (0..CYCLE / 2)
                .map(|_| ed25519_jwk_json())
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let mut ctx = Ctx {
            keys,
            tokens: Vec::new(),
            pad: String::new(),
            jwks,
        };
        let budget = match shape {
            Shape::HeaderNested | Shape::PlainBigHeader | Shape::HeaderMembers => {
                Some(fit(BIG_PROOF, &|b| big_junk_header_proof(t, &pad_fn(b)))?)
            }
            Shape::HeaderNestedDefault => Some(fit(DEFAULT_PROOF, &|b| {
                big_junk_header_proof(t, &pad_fn(b))
            })?),
            Shape::HeaderOverCap => Some(fit(BIG_PROOF, &|b| over_cap_proof(t, &pad_fn(b)))?),
            Shape::ClaimsNested => {
                let key = ctx.key(0)?;
                Some(fit(BIG_PROOF, &|b| big_claims_proof(key, t, &pad_fn(b)))?)
            }
            // a thumbprint is 43 characters
            Shape::TokenUpstream => Some(fit(MAX_TOKEN, &|b| {
                upstream_token(&"x".repeat(43), &pad_fn(b))
            })?),
            Shape::TokenKeys => Some(fit(MAX_TOKEN, &|b| keys_token(&pad_fn(b)))?),
            _ => None,
        };
        ctx.pad = budget.map(pad_fn).unwrap_or_default();
        if shape == Shape::TokenUpstream {
            ctx.tokens = ctx
                .keys
                .iter()
                .map(|k| upstream_token(&k.public.thumbprint(), &ctx.pad))
                .collect::<Result<Vec<_>, _>>()?;
        }
        Ok(ctx)
    }

    fn key(&self, i: usize) -> Result<&ClientKey, String> {
        self.keys
            .get(i % self.keys.len().max(1))
            .ok_or_else(|| "no client keys".to_owned())
    }
}

/// A 16 KiB JWT (junk ES256 signature) carrying `cnf.jkt` and the padding in its payload:
/// `upstream` mode decodes and parses the whole payload.
fn upstream_token(jkt: &str, pad: &str) -> Result<String, String> {
    let header = r#"{"alg":"ES256","typ":"at+jwt"}"#;
    let claims = format!(
        r#"{{"iss":"https://issuer.bench.local","sub":"bench","exp":{},"cnf":{{"jkt":"{jkt}"}},"pad":{pad}}}"#,
        now_secs()? + 3600,
    );
    Ok(compact(header, &claims, &p256_junk_sig()?))
}

/// A 16 KiB JWT whose protected header carries the padding, with a junk ES256 signature:
/// `keys` mode parses the header, then verifies (and refuses) the signature.
fn keys_token(pad: &str) -> Result<String, String> {
    let claims =
        json!({"iss": "https://issuer.bench.local", "sub": "bench", "exp": now_secs()? + 3600})
            .to_string();
    let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","pad":{pad}}}"#);
    Ok(compact(&header, &claims, &p256_junk_sig()?))
}

/// A proof whose protected header is {typ, alg, fresh jwk, "pad": pad}, junk signature.
fn big_junk_header_proof(t: &Target, pad: &str) -> Result<String, String> {
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{},"pad":{pad}}}"#,
        ed25519_jwk_json()?
    );
    Ok(compact(
        &header,
        &small_claims(&t.htu)?,
        &ed25519_junk_sig()?,
    ))
}

/// A proof whose protected header is {typ, alg, jwk} followed by thousands of flat members.
fn over_cap_proof(t: &Target, members: &str) -> Result<String, String> {
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}{members}}}"#,
        ed25519_jwk_json()?
    );
    Ok(compact(
        &header,
        &small_claims(&t.htu)?,
        &ed25519_junk_sig()?,
    ))
}

/// A valid proof with {jti, htm, htu, iat, "pad": pad} as claims.
fn big_claims_proof(key: &ClientKey, t: &Target, pad: &str) -> Result<String, String> {
    let claims = format!(
        r#"{{"jti":"{}","htm":"GET","htu":"{}","iat":{},"pad":{pad}}}"#,
        random_jti()?,
        t.htu,
        now_secs()?
    );
    key.sign_claims(&claims)
}

/// One request of the class (`i`: its index in the pool).
fn one(shape: Shape, ctx: &Ctx, t: &Target, i: usize) -> Result<Headers, String> {
    let dpop = |v: String| vec![("DPoP".to_owned(), v)];
    Ok(match shape {
        Shape::HeaderNested
        | Shape::HeaderNestedDefault
        | Shape::PlainBigHeader
        | Shape::HeaderMembers => dpop(big_junk_header_proof(t, &ctx.pad)?),
        Shape::HeaderOverCap => dpop(over_cap_proof(t, &ctx.pad)?),
        Shape::ClaimsNested => dpop(big_claims_proof(ctx.key(i)?, t, &ctx.pad)?),
        Shape::TokenUpstream => {
            let key = ctx.key(i)?;
            let token = ctx
                .tokens
                .get(i % KEYS)
                .ok_or_else(|| "no token".to_owned())?;
            let claims = json!({
                "jti": random_jti()?, "htm": "GET", "htu": t.htu, "iat": now_secs()?,
                "ath": ath_for(token),
            });
            vec![
                ("Authorization".to_owned(), format!("Bearer {token}")),
                ("DPoP".to_owned(), key.sign_claims(&claims.to_string())?),
            ]
        }
        Shape::TokenKeys => vec![(
            "Authorization".to_owned(),
            format!("Bearer {}", keys_token(&ctx.pad)?),
        )],
        Shape::Rsa4096 => {
            let mut n = random_bytes(512)?;
            if let Some(b) = n.first_mut() {
                *b |= 0x80;
            }
            if let Some(b) = n.last_mut() {
                *b |= 0x01;
            }
            let mut sig = random_bytes(512)?;
            if let Some(b) = sig.first_mut() {
                *b &= 0x7f; // < n
            }
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"RS256","jwk":{{"kty":"RSA","n":"{}","e":"AQAB"}}}}"#,
                b64::encode(&n)
            );
            dpop(compact(&header, &small_claims(&t.htu)?, &sig))
        }
        Shape::RsaRefused => {
            // in turn: 8192 bits with e = 2^32 - 1 (the old worst case), 2048 bits with e = 3
            let (bytes, e) = if i.is_multiple_of(2) {
                (1024, "_____w")
            } else {
                (256, "Aw")
            };
            let mut n = random_bytes(bytes)?;
            if let Some(b) = n.first_mut() {
                *b |= 0x80;
            }
            if let Some(b) = n.last_mut() {
                *b |= 0x01;
            }
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"RS256","jwk":{{"kty":"RSA","n":"{}","e":"{e}"}}}}"#,
                b64::encode(&n)
            );
            dpop(compact(
                &header,
                &small_claims(&t.htu)?,
                &random_bytes(bytes)?,
            ))
        }
        Shape::Ed25519First => {
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#,
                ed25519_jwk_json()?
            );
            dpop(compact(
                &header,
                &small_claims(&t.htu)?,
                &ed25519_junk_sig()?,
            ))
        }
        Shape::Ed25519Twice => {
            let jwk = ctx
                .jwks
                .get((i / 2) % ctx.jwks.len().max(1))
                .ok_or_else(|| "no keys".to_owned())?;
            let header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{jwk}}}"#);
            dpop(compact(
                &header,
                &small_claims(&t.htu)?,
                &ed25519_junk_sig()?,
            ))
        }
        Shape::P256First => {
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                p256_jwk()?
            );
            dpop(compact(&header, &small_claims(&t.htu)?, &p256_junk_sig()?))
        }
        Shape::HeadersDup | Shape::PlainHeaders => {
            let mut h = Vec::new();
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#,
                ed25519_jwk_json()?
            );
            let p = compact(&header, &small_claims(&t.htu)?, &ed25519_junk_sig()?);
            h.push(("DPoP".to_owned(), p.clone()));
            h.push(("DPoP".to_owned(), p));
            h
        }
        Shape::HeadersValid => dpop(ctx.key(i)?.proof("GET", &t.htu)?),
        Shape::RefEddsa => dpop(ctx.key(i)?.proof("GET", &t.htu)?),
    })
}

/// A class's requests: headers every request carries, then each request's own.
pub struct Pool {
    pub common: Headers,
    pub items: Vec<Headers>,
}

/// The headers every request of the class carries (sent first).
fn common(shape: Shape) -> Headers {
    let mut h = Vec::new();
    if matches!(
        shape,
        Shape::HeadersDup | Shape::HeadersValid | Shape::PlainHeaders
    ) {
        let value: String = "abcdefghijklmnopqrstuvwxyz0123456789"
            .chars()
            .cycle()
            .take(PAD_HEADER_BYTES)
            .collect();
        for i in 0..PAD_HEADERS {
            h.push((format!("x-pad-{i}"), value.clone()));
        }
    }
    h
}

/// `n` requests of the class, generated on `threads` threads.
pub fn generate(class: &Class, t: &Target, n: usize, threads: usize) -> Result<Pool, String> {
    let ctx = Ctx::new(class.shape, t)?;
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    let started = Instant::now();
    let parts: Vec<Result<Vec<Headers>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|th| {
                let ctx = &ctx;
                s.spawn(move || {
                    let (lo, hi) = (th * chunk, ((th + 1) * chunk).min(n));
                    (lo..hi)
                        .map(|i| one(class.shape, ctx, t, i))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("generator thread panicked".into()))
            })
            .collect()
    });
    let mut items = Vec::with_capacity(n);
    for p in parts {
        items.extend(p?);
    }
    let common = common(class.shape);
    let size = |h: &Headers| -> usize { h.iter().map(|(k, v)| k.len() + v.len() + 4).sum() };
    eprintln!(
        "dpop-bench: {} {} requests ({} header bytes each) in {:.1} s",
        items.len(),
        class.id,
        size(&common) + items.first().map_or(0, size),
        started.elapsed().as_secs_f64()
    );
    Ok(Pool { common, items })
}

// ---- native timing -----------------------------------------------------------------------

/// Native cost of one class: the filter's pure pipeline (`decide_headers_cached`, header
/// gathering included, with a proof-header cache of the filter's size) on the class's requests
/// in turn, after one warm-up pass; thread CPU time per call.
pub struct Native {
    pub calls: u64,
    pub us_per_call: f64,
}

pub fn native(
    class: &Class,
    cfg: &Config,
    authority: &str,
    path: &str,
    t: &Target,
    seconds: f64,
) -> Result<Native, String> {
    // Valid proofs can be reused natively (no replay store here): a few hundred unique ones.
    let n = if class.unique { 256 } else { CYCLE };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    native_on(
        class,
        cfg,
        authority,
        path,
        &generate(class, t, n, threads)?,
        seconds,
    )
}

/// [`native`] on a given pool.
fn native_on(
    class: &Class,
    cfg: &Config,
    authority: &str,
    path: &str,
    pool: &Pool,
    seconds: f64,
) -> Result<Native, String> {
    let fixed: Vec<(String, String)> = vec![
        (":authority".into(), authority.into()),
        (":path".into(), path.into()),
        (":method".into(), "GET".into()),
        (":scheme".into(), "http".into()),
        ("x-forwarded-proto".into(), "http".into()),
        (
            "x-request-id".into(),
            "6c9a0a7b-3211-412f-aff6-8914cebe4d4e".into(),
        ),
    ];
    // Envoy hands header names over lowercased.
    let owned: Vec<Vec<(Vec<u8>, &[u8])>> = pool
        .items
        .iter()
        .map(|h| {
            fixed
                .iter()
                .chain(pool.common.iter())
                .chain(h.iter())
                .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v.as_bytes()))
                .collect()
        })
        .collect();
    let requests: Vec<Vec<(&[u8], &[u8])>> = owned
        .iter()
        .map(|r| r.iter().map(|(k, v)| (k.as_slice(), *v)).collect())
        .collect();
    let mut cache = KeyCache::new(FILTER_KEY_CACHE);
    let now = now_secs()?;
    let check = |d: &Decision| -> Result<(), String> {
        if class.expect.matches(d) {
            Ok(())
        } else {
            Err(format!(
                "{}: expected {}, the filter decided {d:?}",
                class.id,
                class.expect.describe()
            ))
        }
    };
    for r in &requests {
        check(&decide_headers_cached(cfg, r, None, now, &mut cache))?;
    }
    let budget = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(1));
    let started = Instant::now();
    let cpu0 = crate::sys::thread_cpu_secs();
    let mut calls = 0u64;
    'outer: loop {
        for r in &requests {
            let d = decide_headers_cached(cfg, std::hint::black_box(r), None, now, &mut cache);
            calls += 1;
            if !class.expect.matches(&d) {
                check(&d)?;
            }
            if calls.is_multiple_of(8) && started.elapsed() >= budget {
                break 'outer;
            }
        }
    }
    // CPU time of this thread, as Envoy's column is CPU time: a share of the core taken by
    // another process is not counted.
    let cpu = crate::sys::thread_cpu_secs() - cpu0;
    Ok(Native {
        calls,
        us_per_call: cpu * 1e6 / calls.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            htu: "http://127.0.0.1:10000/bench".into(),
        }
    }

    #[test]
    fn sizes_are_at_the_limits() {
        let t = target();
        for shape in [
            Shape::HeaderNested,
            Shape::HeaderMembers,
            Shape::HeaderOverCap,
            Shape::ClaimsNested,
        ] {
            let ctx = Ctx::new(shape, &t).unwrap();
            let h = one(shape, &ctx, &t, 0).unwrap();
            let len = h[0].1.len();
            assert!(
                (BIG_PROOF - 400..=BIG_PROOF).contains(&len),
                "{shape:?}: {len}"
            );
        }
        let ctx = Ctx::new(Shape::HeaderNestedDefault, &t).unwrap();
        let len = one(Shape::HeaderNestedDefault, &ctx, &t, 0).unwrap()[0]
            .1
            .len();
        assert!(
            (DEFAULT_PROOF - 400..=DEFAULT_PROOF).contains(&len),
            "{len}"
        );
        for shape in [Shape::TokenUpstream, Shape::TokenKeys] {
            let ctx = Ctx::new(shape, &t).unwrap();
            let h = one(shape, &ctx, &t, 0).unwrap();
            let tok = h[0].1.strip_prefix("Bearer ").unwrap();
            assert!(
                (MAX_TOKEN - 400..=MAX_TOKEN).contains(&tok.len()),
                "{shape:?}: {}",
                tok.len()
            );
        }
        let ctx = Ctx::new(Shape::HeadersDup, &t).unwrap();
        let h = one(Shape::HeadersDup, &ctx, &t, 0).unwrap();
        assert_eq!(common(Shape::HeadersDup).len() + h.len(), PAD_HEADERS + 2);
    }

    #[test]
    fn every_class_gets_its_expected_decision() {
        let t = target();
        for class in classes().unwrap() {
            if !class.filter {
                continue;
            }
            let mut cfg = json!({"required": true, "access_token": {"verify": "upstream"}});
            merge(&mut cfg, &class.config);
            let cfg = Config::parse(cfg.to_string().as_bytes()).unwrap();
            // a few requests (and the 1a/2 shapes' sizes) are enough to check the answers
            let pool = generate(&class, &t, 3, 1).unwrap();
            let r = native_on(&class, &cfg, "127.0.0.1:10000", "/bench", &pool, 0.0);
            assert!(r.is_ok(), "{}: {:?}", class.id, r.err());
        }
    }

    #[test]
    fn merge_is_deep() {
        let mut a = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge(&mut a, &json!({"a": {"b": 5}, "e": 6}));
        assert_eq!(a, json!({"a": {"b": 5, "c": 2}, "d": 3, "e": 6}));
    }
}
