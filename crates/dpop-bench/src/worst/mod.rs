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
//!
//! This file holds the class type and what a request of a class must get (constants, `Expect`,
//! `Shape`, `Class`); the rest of the module:
//! - `classes.rs`: the class table (`classes`, `find`) and the configuration `merge`;
//! - `material.rs`: building blocks (junk keys and signatures, JSON padding, compact JWS);
//! - `requests.rs`: one class's requests (`generate`: the shared context, each request);
//! - `native.rs`: the native timing through `decide_headers_cached`;
//! - `tests.rs`: the unit tests.

mod classes;
mod material;
mod native;
mod requests;
#[cfg(test)]
mod tests;

pub use classes::{classes, find, merge};
pub use material::Target;
pub use native::native;
pub use requests::generate;

use dpop_guard::authn::Decision;
use dpop_guard::reason::DenyReason;
use serde_json::{json, Value};

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
