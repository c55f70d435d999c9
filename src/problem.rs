//! Rejection responses (README "Responses"): RFC 9457 problem+json plus an RFC 9449 §7.1 challenge.

use crate::config::Config;
use crate::jose::AlgSet;
use crate::reason::DenyReason;

/// A local reply, ready for `send_http_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemResponse {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// For a gRPC request: the `grpc-status` (Envoy then answers trailers-only, HTTP 200, with
    /// `body` as `grpc-message`).
    pub grpc_status: Option<u32>,
}

/// gRPC UNAUTHENTICATED: every refusal of a credential or proof.
pub const GRPC_UNAUTHENTICATED: u32 = 16;
/// gRPC UNAVAILABLE: the 503 refusals (the check itself could not be made).
pub const GRPC_UNAVAILABLE: u32 = 14;

/// Context that goes into the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemContext<'a> {
    /// Request path without query.
    pub instance: &'a str,
    pub request_id: Option<&'a str>,
    pub now: i64,
    /// `DPoP-Nonce` to send (a fresh nonce for `use_dpop_nonce` replies).
    pub nonce: Option<&'a str>,
    /// The request is gRPC (`content-type: application/grpc*`).
    pub grpc: bool,
    /// The route's algorithms for `algs` (`None`: the top-level ones).
    pub algorithms: Option<AlgSet>,
    /// RFC 9728 §5.1 `resource_metadata` URL for 401 challenges.
    pub resource_metadata: Option<&'a str>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Whether the client presented credentials (then the challenge carries `error=`).
pub fn build(cfg: &Config, reason: DenyReason, ctx: &ProblemContext<'_>) -> ProblemResponse {
    let problem = reason.problem();
    let status = problem.status();
    let algs = ctx.algorithms.unwrap_or(cfg.proof.algorithms);
    let mut challenge = format!("DPoP algs=\"{}\"", algs.names());
    if let (Some(url), 401) = (ctx.resource_metadata, status) {
        challenge.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    if let Some(code) = reason.error_code() {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            reason.detail()
        ));
    }
    let mut body = format!(
        "{{\"type\":{},\"title\":{},\"status\":{status},\"detail\":{},\"instance\":{},\"timestamp\":{}",
        json_str(&format!("{}/{}", cfg.problem_base_uri, problem.slug())),
        json_str(problem.title()),
        json_str(reason.detail()),
        json_str(ctx.instance),
        json_str(&rfc3339(ctx.now)),
    );
    if let Some(id) = ctx.request_id {
        body.push_str(&format!(",\"request_id\":{}", json_str(id)));
    }
    body.push('}');
    let mut headers = vec![
        ("content-type", "application/problem+json".to_owned()),
        ("cache-control", "no-store".to_owned()),
        ("www-authenticate", challenge),
    ];
    if let Some(n) = ctx.nonce {
        headers.push(("dpop-nonce", n.to_owned()));
    }
    if ctx.grpc {
        // A gRPC client reads grpc-status and grpc-message, never a JSON body: the title is
        // the message, and Envoy sets the gRPC content-type itself.
        headers.retain(|(name, _)| *name != "content-type");
        return ProblemResponse {
            status,
            headers,
            body: problem.title().to_owned(),
            grpc_status: Some(if status == 503 {
                GRPC_UNAVAILABLE
            } else {
                GRPC_UNAUTHENTICATED
            }),
        };
    }
    ProblemResponse {
        status,
        headers,
        body,
        grpc_status: None,
    }
}

/// RFC 3339 UTC timestamp from Unix seconds (civil-from-days, H. Hinnant).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_562_262_616), "2019-07-04T17:50:16Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn body_and_challenge() {
        let cfg = Config::parse(b"").unwrap();
        let ctx = ProblemContext {
            instance: "/api/x",
            request_id: Some("r\"1"),
            now: 0,
            nonce: None,
            grpc: false,
            algorithms: None,
            resource_metadata: None,
        };
        let r = build(&cfg, DenyReason::ProofReplayed, &ctx);
        assert_eq!(r.grpc_status, None);
        assert_eq!(r.status, 401);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v["type"],
            "https://arcp.0x001.tech/docs/problems/dpop-invalid"
        );
        assert_eq!(v["detail"], "DPoP jti already used (replay attack)");
        assert_eq!(v["request_id"], "r\"1");
        assert_eq!(v["instance"], "/api/x");
        let www = &r
            .headers
            .iter()
            .find(|h| h.0 == "www-authenticate")
            .unwrap()
            .1;
        assert!(www.starts_with("DPoP algs=\"EdDSA ES256 RS256\", error=\"invalid_dpop_proof\""));
        let r = build(&cfg, DenyReason::ProofMissing, &ctx);
        let www = &r
            .headers
            .iter()
            .find(|h| h.0 == "www-authenticate")
            .unwrap()
            .1;
        assert_eq!(www, "DPoP algs=\"EdDSA ES256 RS256\"");
        let r = build(&cfg, DenyReason::ReplayCheckFailed, &ctx);
        assert_eq!(r.status, 503);
    }

    #[test]
    fn grpc_refusals_are_statuses_with_the_title() {
        let cfg = Config::parse(b"").unwrap();
        let ctx = ProblemContext {
            instance: "/pkg.Svc/Call",
            grpc: true,
            ..ProblemContext::default()
        };
        let r = build(&cfg, DenyReason::ProofMissing, &ctx);
        assert_eq!(r.grpc_status, Some(GRPC_UNAUTHENTICATED));
        assert_eq!(r.body, DenyReason::ProofMissing.problem().title());
        assert!(r.headers.iter().all(|(k, _)| *k != "content-type"));
        assert!(r.headers.iter().any(|(k, _)| *k == "www-authenticate"));
        for reason in DenyReason::ALL {
            let r = build(&cfg, *reason, &ctx);
            let want = if r.status == 503 {
                GRPC_UNAVAILABLE
            } else {
                GRPC_UNAUTHENTICATED
            };
            assert_eq!(r.grpc_status, Some(want), "{reason:?}");
        }
    }
}
