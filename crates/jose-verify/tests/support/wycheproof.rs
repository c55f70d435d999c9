//! The Wycheproof verdict loop, included by `#[path]` in the verifier tests of this crate
//! (`tests/{ed25519,p256,rsa}.rs`) and in the JWK-level tests of the root crate
//! (`tests/vectors.rs`). They run the same files (`tests/vectors/wycheproof` at the root)
//! through different layers, so the reading, the tallies, the policy for `acceptable`
//! results and the final checks live here once; each caller brings its group key and its
//! verification.
// Not every includer uses every helper. (The includers' crate roots allow the panicking
// clippy lints for the tests.)
#![allow(dead_code)]

use serde_json::Value;

/// Our policy for Wycheproof `acceptable` results, per flag: `false` = we reject.
/// - `MissingNull` (PKCS#1 v1.5 DigestInfo without the NULL parameter): rejected. RFC 8017
///   §9.2 note 1 allows verifiers to accept it, but JWS RS256 signers always emit the NULL
///   and accepting two encodings buys nothing; the `rsa` crate compares the full encoded
///   message, so the stricter choice is also the one we get.
///
/// Any other flag on an `acceptable` vector (or an `acceptable` vector without flags) fails
/// the test until a decision is written here.
pub const ACCEPTABLE_POLICY: &[(&str, bool)] = &[("MissingNull", false)];

/// A vector file, parsed.
pub fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A raw key coordinate (`publicKey.wx`/`wy`: hex, possibly with a leading zero octet or
/// shorter than the field) left-padded to `size` octets, as JWKs carry it (RFC 7518 §6.2.1.2).
pub fn padded_coordinate(public_key: &Value, name: &str, size: usize) -> Vec<u8> {
    let raw = hex::decode(public_key[name].as_str().unwrap()).unwrap();
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    assert!(trimmed.len() <= size, "{name} longer than {size} octets");
    let mut out = vec![0u8; size - trimmed.len()];
    out.extend(trimmed);
    out
}

/// One test vector, decoded, with the verdict we owe it.
pub struct Case<'a> {
    pub id: u64,
    pub msg: Vec<u8>,
    pub sig: Vec<u8>,
    /// `valid`, `invalid` or `acceptable`.
    pub result: &'a str,
    pub flags: Vec<&'a str>,
    pub comment: &'a str,
    /// `true` for `valid`, and for `acceptable` when [`ACCEPTABLE_POLICY`] accepts every flag.
    pub want: bool,
}

#[derive(Default, Debug)]
pub struct Tally {
    /// Every vector of the file, run or not.
    pub total: usize,
    pub valid: usize,
    pub invalid: usize,
    pub acceptable: usize,
    pub groups: usize,
    /// Vectors of groups whose key the caller refused by policy (counted, not run).
    pub refused: usize,
}

/// What a verifier answered for one vector: one verdict, or one per verification path (all
/// of which must be the vector's).
pub trait Verdict: std::fmt::Debug {
    fn is(&self, want: bool) -> bool;
}

impl Verdict for bool {
    fn is(&self, want: bool) -> bool {
        *self == want
    }
}

impl<const N: usize> Verdict for [bool; N] {
    fn is(&self, want: bool) -> bool {
        self.iter().all(|v| *v == want)
    }
}

/// Runs every vector of the file at `path`. `key` makes the verifier of a group (given its
/// index), or `None` when the group's key is refused by policy: its vectors are then counted
/// in [`Tally::refused`] and not run. `verify` answers one vector. Fails the test on any
/// disagreement (listing them all), on a vector count other than `numberOfTests`, and when
/// the file ran no `valid` or no `invalid` vector.
pub fn run<K, V: Verdict>(
    path: &str,
    mut key: impl FnMut(usize, &Value) -> Option<K>,
    mut verify: impl FnMut(&K, &Case) -> V,
) -> Tally {
    let file = path.rsplit('/').next().unwrap_or(path);
    let doc = load(path);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for (gi, group) in doc["testGroups"].as_array().unwrap().iter().enumerate() {
        tally.groups += 1;
        let tests = group["tests"].as_array().unwrap();
        tally.total += tests.len();
        let Some(k) = key(gi, group) else {
            tally.refused += tests.len();
            continue;
        };
        for t in tests {
            let case = decode(file, t, &mut tally);
            let got = verify(&k, &case);
            if !got.is(case.want) {
                failures.push(format!(
                    "tc {} ({}; {:?}; {}): want {}, got {got:?}",
                    case.id, case.result, case.flags, case.comment, case.want
                ));
            }
        }
    }
    println!(
        "{file}: {} vectors in {} groups: {} valid, {} invalid, {} acceptable, {} not run (key refused)",
        tally.total, tally.groups, tally.valid, tally.invalid, tally.acceptable, tally.refused
    );
    assert!(
        failures.is_empty(),
        "{file}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let expected = doc["numberOfTests"].as_u64().unwrap() as usize;
    assert_eq!(tally.total, expected, "{file}: vectors vs numberOfTests");
    assert!(
        tally.valid > 0 && tally.invalid > 0,
        "{file}: no valid or no invalid vector ran"
    );
    tally
}

/// Decodes a vector and counts its result.
fn decode<'a>(file: &str, t: &'a Value, tally: &mut Tally) -> Case<'a> {
    let id = t["tcId"].as_u64().unwrap();
    let flags: Vec<&str> = t["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let result = t["result"].as_str().unwrap();
    let want = match result {
        "valid" => {
            tally.valid += 1;
            true
        }
        "invalid" => {
            tally.invalid += 1;
            false
        }
        "acceptable" => {
            tally.acceptable += 1;
            assert!(
                !flags.is_empty(),
                "{file} tc {id}: acceptable without flags"
            );
            // Every flag needs a decision (collected first, so that an unknown flag fails
            // even next to a rejected one); accept only when every decision accepts.
            let decisions: Vec<bool> = flags
                .iter()
                .map(|f| {
                    ACCEPTABLE_POLICY
                        .iter()
                        .find(|(name, _)| name == f)
                        .map(|(_, accept)| *accept)
                        .unwrap_or_else(|| {
                            panic!("{file} tc {id}: no policy for acceptable flag {f}")
                        })
                })
                .collect();
            decisions.iter().all(|d| *d)
        }
        other => panic!("{file} tc {id}: unknown result {other}"),
    };
    Case {
        id,
        msg: hex::decode(t["msg"].as_str().unwrap()).unwrap(),
        sig: hex::decode(t["sig"].as_str().unwrap()).unwrap(),
        result,
        flags,
        comment: t["comment"].as_str().unwrap_or(""),
        want,
    }
}
