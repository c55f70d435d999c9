//! Differential run of Wycheproof vectors through `PublicJwk::verify`: once with a host
//! verifier registered (inside Envoy: its foreign function `verify_signature`, BoringSSL), once
//! with none (dpop-guard's own verifiers). Both paths must give the same verdict on every
//! vector, and that verdict must be the vector's (README "Security notes"; the JOSE-level
//! checks run before the host call, so the host never decides what ours would not reach).
//!
//! Input (JSON): `{"mode": "wycheproof", "cases": [{"id": "...", "alg": "ES256"|"RS256",
//! "jwk": {...}, "msg": "<b64url>", "sig": "<b64url>", "want": true|false}]}`. A case whose
//! JWK `PublicJwk::from_json` refuses is counted as refused and not run.
//!
//! The host is called through [`counting_host`], which counts calls and errors: a host error
//! makes `PublicJwk::verify` fall back to our verifier, so it must be counted to be seen.

use dpop_guard::jose::host_crypto::{self, HostVerifier};
use dpop_guard::jose::{Alg, PublicJwk};
use std::cell::{Cell, RefCell};

/// At most this many disagreements (and host errors) are listed by id.
pub const MAX_LISTED: usize = 20;

/// The `mode` of an input that is a Wycheproof run.
pub const MODE: &str = "wycheproof";

/// The prefix of the summary line (followed by one JSON object).
pub const SUMMARY_PREFIX: &str = "verify-bench wycheproof ";

#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub alg: Alg,
    /// The JWK as JSON text.
    pub jwk: String,
    pub msg: Vec<u8>,
    pub sig: Vec<u8>,
    pub want: bool,
}

/// Whether a parsed input asks for this mode.
pub fn is_wycheproof(v: &serde_json::Value) -> bool {
    v.get("mode").and_then(|m| m.as_str()) == Some(MODE)
}

/// The cases of a parsed input.
pub fn parse_value(v: &serde_json::Value) -> Result<Vec<Case>, String> {
    let cases = v
        .get("cases")
        .and_then(|c| c.as_array())
        .ok_or("missing cases")?;
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = c
                .get("id")
                .and_then(|x| x.as_str())
                .map_or_else(|| format!("#{i}"), str::to_owned);
            let s = |k: &str| {
                c.get(k)
                    .and_then(|x| x.as_str())
                    .ok_or(format!("case {id}: missing {k}"))
            };
            let b64 = |k: &str| {
                s(k).and_then(|t| {
                    dpop_guard::b64::decode(t).ok_or(format!("case {id}: {k} is not base64url"))
                })
            };
            let alg = s("alg")?;
            Ok(Case {
                alg: Alg::from_name(alg).ok_or(format!("case {id}: unknown alg {alg}"))?,
                jwk: c
                    .get("jwk")
                    .filter(|j| j.is_object())
                    .ok_or(format!("case {id}: missing jwk"))?
                    .to_string(),
                msg: b64("msg")?,
                sig: b64("sig")?,
                want: c
                    .get("want")
                    .and_then(|x| x.as_bool())
                    .ok_or(format!("case {id}: missing want"))?,
                id,
            })
        })
        .collect()
}

/// What the run found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `ok` or the probe's failure.
    pub probe: String,
    pub total: usize,
    /// Cases whose JWK was refused (not run).
    pub refused: usize,
    /// Cases run (total − refused).
    pub run: usize,
    /// Cases run whose `want` is true.
    pub valid_run: usize,
    /// Cases accepted by the host path and by ours.
    pub accepted_host: usize,
    pub accepted_wasm: usize,
    pub host_calls: usize,
    pub host_errors: usize,
    /// Cases where the host path and ours differ.
    pub host_vs_wasm: usize,
    /// Cases where either path differs from `want`.
    pub vs_want: usize,
    /// Ids (with verdicts) of the disagreements, at most [`MAX_LISTED`].
    pub disagreements: Vec<String>,
    /// Ids of the cases where the host answered with an error, at most [`MAX_LISTED`].
    pub host_error_ids: Vec<String>,
    /// Milliseconds for the run (host clock; 0 when unknown).
    pub ms: u64,
}

impl Summary {
    /// One JSON object (one line).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "probe": self.probe,
            "total": self.total,
            "refused": self.refused,
            "run": self.run,
            "valid_run": self.valid_run,
            "accepted_host": self.accepted_host,
            "accepted_wasm": self.accepted_wasm,
            "host_calls": self.host_calls,
            "host_errors": self.host_errors,
            "host_vs_wasm": self.host_vs_wasm,
            "vs_want": self.vs_want,
            "disagreements": self.disagreements,
            "host_error_ids": self.host_error_ids,
            "ms": self.ms,
        })
        .to_string()
    }

    /// The summary line: [`SUMMARY_PREFIX`] and the JSON object.
    pub fn line(&self) -> String {
        format!("{SUMMARY_PREFIX}{}", self.to_json())
    }
}

thread_local! {
    // A VM is one thread, as for the filter's own registration.
    static INNER: Cell<Option<HostVerifier>> = const { Cell::new(None) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
    static ERRORS: Cell<usize> = const { Cell::new(0) };
    static CURRENT: RefCell<String> = const { RefCell::new(String::new()) };
    static ERROR_IDS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The registered host verifier: calls the real one ([`run`]'s `host`), counting calls and
/// errors. An error is returned as is (`PublicJwk::verify` then verifies itself; the count
/// is what shows it).
pub fn counting_host(spki: &[u8], signature: &[u8], text: &[u8]) -> Result<bool, u32> {
    CALLS.with(|c| c.set(c.get() + 1));
    let r = INNER
        .with(Cell::get)
        .map_or(Err(u32::MAX), |host| host(spki, signature, text));
    if r.is_err() {
        ERRORS.with(|c| c.set(c.get() + 1));
        let id = CURRENT.with(|c| c.borrow().clone());
        ERROR_IDS.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() < MAX_LISTED {
                v.push(id);
            }
        });
    }
    r
}

/// The probe's outcome as text.
pub fn probe_text(host: HostVerifier) -> String {
    match host_crypto::probe(host) {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

/// Runs every case with `host` registered (counted), then with no host verifier, and
/// compares. `host = None` (natively) runs our verifiers on both sides. Leaves no host
/// verifier registered.
pub fn run(cases: &[Case], host: Option<HostVerifier>) -> Summary {
    INNER.with(|c| c.set(host));
    CALLS.with(|c| c.set(0));
    ERRORS.with(|c| c.set(0));
    ERROR_IDS.with(|v| v.borrow_mut().clear());
    let mut s = Summary {
        total: cases.len(),
        ..Summary::default()
    };
    for case in cases {
        let Ok(key) = PublicJwk::from_json(case.jwk.as_bytes()) else {
            s.refused += 1;
            continue;
        };
        s.run += 1;
        s.valid_run += usize::from(case.want);
        CURRENT.with(|c| c.borrow_mut().clone_from(&case.id));
        host_crypto::set_host_verifier(host.map(|_| counting_host as HostVerifier));
        let on_host = key.verify(case.alg, &case.msg, &case.sig);
        host_crypto::set_host_verifier(None);
        let ours = key.verify(case.alg, &case.msg, &case.sig);
        s.accepted_host += usize::from(on_host);
        s.accepted_wasm += usize::from(ours);
        let differs = on_host != ours;
        let wrong = on_host != case.want || ours != case.want;
        s.host_vs_wasm += usize::from(differs);
        s.vs_want += usize::from(wrong);
        if (differs || wrong) && s.disagreements.len() < MAX_LISTED {
            s.disagreements.push(format!(
                "{} host={on_host} wasm={ours} want={}",
                case.id, case.want
            ));
        }
    }
    host_crypto::set_host_verifier(None);
    INNER.with(|c| c.set(None));
    s.host_calls = CALLS.with(Cell::get);
    s.host_errors = ERRORS.with(Cell::get);
    s.host_error_ids = ERROR_IDS.with(|v| v.borrow().clone());
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use dpop_guard::b64;

    /// The probe key and signature of `host_crypto`: a valid ES256 case.
    fn probe_jwk() -> serde_json::Value {
        serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": b64::encode(&host_crypto::PROBE_P256_X),
            "y": b64::encode(&host_crypto::PROBE_P256_Y),
        })
    }

    fn input() -> serde_json::Value {
        let sig = b64::encode(&host_crypto::PROBE_P256_SIG);
        let mut zero_r = host_crypto::PROBE_P256_SIG;
        zero_r[..32].fill(0);
        serde_json::json!({"mode": "wycheproof", "cases": [
            {"id": "valid", "alg": "ES256", "jwk": probe_jwk(),
             "msg": b64::encode(host_crypto::PROBE_TEXT), "sig": sig, "want": true},
            {"id": "other-text", "alg": "ES256", "jwk": probe_jwk(),
             "msg": b64::encode(b"other"), "sig": sig, "want": false},
            // r = 0: refused before the host is asked
            {"id": "r-zero", "alg": "ES256", "jwk": probe_jwk(),
             "msg": b64::encode(host_crypto::PROBE_TEXT), "sig": b64::encode(&zero_r),
             "want": false},
            {"id": "bad-key", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
             "msg": "", "sig": sig, "want": false},
        ]})
    }

    fn always_true(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, u32> {
        Ok(true)
    }

    fn failing(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, u32> {
        Err(1)
    }

    /// A host that answers as ours does (our P-256 verifier on the DER it was given).
    fn faithful(spki: &[u8], der: &[u8], text: &[u8]) -> Result<bool, u32> {
        let x: [u8; 32] = spki[27..59].try_into().unwrap();
        let y: [u8; 32] = spki[59..91].try_into().unwrap();
        // DER SEQUENCE { INTEGER r, INTEGER s } back to r ‖ s
        let mut jose = Vec::new();
        let mut rest = &der[2..];
        for _ in 0..2 {
            let len = usize::from(rest[1]);
            let digits = &rest[2..2 + len];
            let digits = digits.strip_prefix(&[0]).unwrap_or(digits);
            jose.extend(std::iter::repeat_n(0, 32 - digits.len()));
            jose.extend_from_slice(digits);
            rest = &rest[2 + len..];
        }
        let key = jose_verify::p256::P256VerifyingKey::from_affine(&x, &y).unwrap();
        Ok(key.verify_sha256(text, &jose))
    }

    #[test]
    fn parses_and_dispatches_on_mode() {
        let v = input();
        assert!(is_wycheproof(&v));
        assert!(!is_wycheproof(&serde_json::json!({"cases": []})));
        let cases = parse_value(&v).unwrap();
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[0].alg, Alg::ES256);
        assert_eq!(cases[0].msg, host_crypto::PROBE_TEXT);
        let bad = serde_json::json!({"cases": [{"id": "x", "alg": "HS256"}]});
        assert!(parse_value(&bad).unwrap_err().contains("unknown alg"));
    }

    #[test]
    fn a_faithful_host_agrees_everywhere() {
        let cases = parse_value(&input()).unwrap();
        let s = run(&cases, Some(faithful));
        assert_eq!(
            (s.total, s.refused, s.run, s.valid_run),
            (4, 1, 3, 1),
            "{s:?}"
        );
        // r = 0 never reaches the host
        assert_eq!((s.host_calls, s.host_errors), (2, 0));
        assert_eq!((s.host_vs_wasm, s.vs_want), (0, 0));
        assert_eq!((s.accepted_host, s.accepted_wasm), (1, 1));
        assert!(s.disagreements.is_empty());
        assert_eq!(probe_text(faithful), "ok");
        assert!(dpop_guard::jose::host_crypto::host_verifier().is_none());
    }

    #[test]
    fn a_lying_host_is_seen() {
        let cases = parse_value(&input()).unwrap();
        let s = run(&cases, Some(always_true));
        assert_eq!((s.host_calls, s.host_errors), (2, 0));
        assert_eq!((s.host_vs_wasm, s.vs_want), (1, 1));
        assert_eq!(
            s.disagreements,
            ["other-text host=true wasm=false want=false"]
        );
        assert_eq!(probe_text(always_true), "AcceptedForgery");
    }

    #[test]
    fn host_errors_are_counted_not_hidden() {
        let cases = parse_value(&input()).unwrap();
        let s = run(&cases, Some(failing));
        // verify falls back to ours: same verdicts, but every call counted as an error
        assert_eq!((s.host_calls, s.host_errors), (2, 2));
        assert_eq!(s.host_error_ids, ["valid", "other-text"]);
        assert_eq!((s.host_vs_wasm, s.vs_want), (0, 0));
        let line = s.line();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix(SUMMARY_PREFIX).unwrap()).unwrap();
        assert_eq!(json["host_errors"], 2);
        assert_eq!(probe_text(failing), "Unavailable(1)");
    }

    #[test]
    fn without_a_host_both_sides_are_ours() {
        let cases = parse_value(&input()).unwrap();
        let s = run(&cases, None);
        assert_eq!((s.host_calls, s.host_vs_wasm, s.vs_want), (0, 0, 0));
    }
}
