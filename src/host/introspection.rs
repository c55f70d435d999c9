//! The introspection callout's host side (README "Tokens"): dispatch, pause, and on the answer
//! cache it and decide the request again. Reading the answer is pure
//! ([`crate::introspection::parse_reply`]).

use super::abi::{self, now_secs};
use super::filter::{Filter, ReplyContext, Stage};
use super::metrics::bump;
use super::profile::Probe;
use crate::introspection::{self, Answer, IntrospectionConfig};
use crate::reason::DenyReason;
use proxy_wasm::traits::Context;
use proxy_wasm::types::Action;
use std::time::Duration;

/// Sends the introspection callout for `token` from context `ctx` (a request's, or the root's
/// for single-flight) and counts it.
pub(super) fn dispatch(
    ctx: &dyn Context,
    cfg: &IntrospectionConfig,
    metrics: &super::metrics::Metrics,
    token: &str,
) -> Result<u32, String> {
    let (extra, body) = introspection::request(cfg, token);
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", "POST"),
        (":path", cfg.path.as_str()),
        (":authority", cfg.authority.as_str()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    bump(metrics.introspection_requests);
    ctx.dispatch_http_call(
        &cfg.cluster,
        headers,
        Some(body.as_bytes()),
        vec![],
        Duration::from_millis(u64::from(cfg.timeout_ms)),
    )
    .map_err(|e| {
        log::warn!(
            "dpop_guard: introspection callout to cluster {} failed: {e:?}",
            cfg.cluster
        );
        format!("{e:?}")
    })
}

impl Filter {
    /// Asks the authorization server about `token`; the request pauses until the answer.
    pub(super) fn introspect(&mut self, token: &str, reply: &ReplyContext, now: i64) -> Action {
        let shared = self.shared.clone();
        // Single-flight: the root context asks once for every request with this token.
        if shared.single_flight {
            if let Some(action) = self.wait_for_introspection(token) {
                return action;
            }
        }
        let Some(cfg) = &shared.cfg.access_token.introspection else {
            return self.send_reply(DenyReason::TokenCheckFailed, reply, now);
        };
        match dispatch(self, cfg, &shared.metrics, token) {
            Ok(call) => {
                self.stage = Stage::AwaitingIntrospection {
                    token: call,
                    hash: introspection::token_hash(token),
                };
                Action::Pause
            }
            Err(_) => {
                // decide again with "no answer": on_error says what happens
                let hash = introspection::token_hash(token);
                self.answered(hash, Answer::Unavailable, false)
            }
        }
    }

    /// The introspection answer for the request's token: cache it (never an error), then run
    /// the whole check again with it. `resume`: the request is paused and must be continued
    /// if the check lets it through.
    pub(super) fn answered(&mut self, hash: [u8; 32], answer: Answer, resume: bool) -> Action {
        let now = now_secs();
        let shared = self.shared.clone();
        if answer == Answer::Unavailable {
            bump(shared.metrics.introspection_errors);
        }
        if let (Some(cfg), Ok(mut cache)) = (
            &shared.cfg.access_token.introspection,
            shared.token_cache.try_borrow_mut(),
        ) {
            cache.insert(cfg, hash, &answer, now);
        }
        self.stage = super::filter::Stage::Start;
        let mut probe = Probe::start();
        let action = self.request_headers(&mut probe, Some((hash, answer)));
        probe.finish();
        if resume && action == Action::Continue {
            if let Err(code) = abi::resume_request() {
                self.host_error("continue_stream", code);
                return self.send_reply(DenyReason::HostCallFailed, &ReplyContext::default(), now);
            }
        }
        action
    }

    /// The authorization server's reply to callout `token_id`, if it is ours.
    pub(super) fn on_introspection_reply(&mut self, token_id: u32, body_size: usize) {
        let Stage::AwaitingIntrospection { token, hash } = self.stage else {
            return;
        };
        if token != token_id {
            return;
        }
        let status = abi::http_call_response_header(":status");
        if let Err(code) = &status {
            self.host_error("get_header_map_value", *code);
        }
        // A reply over the cap is read truncated and then fails to parse: inactive.
        let body =
            match abi::http_call_response_body(body_size.min(introspection::MAX_REPLY_BYTES + 1)) {
                Ok(b) => Some(b),
                Err(code) => {
                    self.host_error("get_buffer_bytes", code);
                    None
                }
            };
        let answer = match body {
            Some(body) => {
                introspection::parse_reply(status.ok().flatten().as_deref(), &body, now_secs())
            }
            None => Answer::Unavailable,
        };
        if answer == Answer::Unavailable {
            log::warn!("dpop_guard: introspection failed (no answer, timeout or error status)");
        }
        self.answered(hash, answer, true);
    }
}
