//! The JWKS fetch's host side (README "Tokens: JWKS URI"): the root context fetches on a 1 s
//! tick when [`crate::jwks::RemoteJwks::due`] says so; a request whose token names an unknown
//! `kid` fetches once itself (at most every 30 s per VM), pauses, and is decided again.

use super::abi::{self, now_secs};
use super::filter::{Filter, ReplyContext, Stage};
use super::metrics::bump;
use super::profile::Probe;
use super::{Root, Shared};
use crate::jwks::{JwksSource, MAX_JWKS_BYTES};
use crate::reason::DenyReason;
use proxy_wasm::traits::Context;
use proxy_wasm::types::Action;
use std::time::Duration;

/// Dispatches the fetch from whichever context `ctx` is; `Err` when the host refuses.
fn dispatch(ctx: &dyn Context, src: &JwksSource) -> Result<u32, String> {
    let headers = vec![
        (":method", "GET"),
        (":path", src.path.as_str()),
        (":authority", src.authority.as_str()),
        ("accept", "application/jwk-set+json, application/json"),
    ];
    ctx.dispatch_http_call(
        &src.cluster,
        headers,
        None,
        vec![],
        Duration::from_millis(u64::from(src.timeout_ms)),
    )
    .map_err(|e| format!("{e:?}"))
}

/// Records the answer of a fetch (callout response being delivered) in the shared key set.
fn record(shared: &Shared, src: &JwksSource) {
    let now = now_secs();
    let status = abi::http_call_response_header(":status").ok().flatten();
    let body = abi::http_call_response_body(MAX_JWKS_BYTES + 1).ok();
    let reply = match (&status, &body) {
        (Some(s), Some(b)) => Some((s.as_slice(), b.as_slice())),
        _ => None,
    };
    let Ok(mut remote) = shared.remote_jwks.try_borrow_mut() else {
        return;
    };
    if remote.finished(reply, now) {
        log::info!(
            "dpop_guard: fetched {} keys from {}",
            remote.keys.len(),
            src.uri
        );
    } else {
        bump(shared.metrics.jwks_errors);
        log::warn!(
            "dpop_guard: JWKS fetch from {} failed (status {}); keeping {} keys",
            src.uri,
            status
                .as_deref()
                .map_or("none".into(), String::from_utf8_lossy),
            remote.keys.len()
        );
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        if self.on_batch_reply(token_id, body_size)
            || self.on_introspection_reply(token_id, body_size)
            || self.on_foreign_reply(token_id, body_size)
        {
            return;
        }
        if self.jwks_call != Some(token_id) {
            return;
        }
        self.jwks_call = None;
        if let Some(shared) = &self.shared {
            if let Some(src) = &shared.cfg.access_token.jwks_uri {
                record(shared, src);
            }
        }
    }

    fn on_grpc_stream_message(&mut self, token_id: u32, message_size: usize) {
        self.on_stream_message(token_id, message_size);
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        self.on_stream_close(token_id, status_code);
    }
}

impl Root {
    /// The 1 s tick: start a JWKS fetch when one is due.
    pub(super) fn jwks_tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Some(src) = &shared.cfg.access_token.jwks_uri else {
            return;
        };
        let now = now_secs();
        let Ok(mut remote) = shared.remote_jwks.try_borrow_mut() else {
            return;
        };
        if !remote.due(src, now) {
            return;
        }
        remote.started(now, false);
        bump(shared.metrics.jwks_fetches);
        match dispatch(self, src) {
            Ok(call) => self.jwks_call = Some(call),
            Err(e) => {
                remote.finished(None, now);
                bump(shared.metrics.jwks_errors);
                log::warn!(
                    "dpop_guard: JWKS fetch to cluster {} failed: {e}",
                    src.cluster
                );
            }
        }
    }
}

impl Filter {
    /// The token's `kid` is unknown: fetch the JWKS now, pause, then decide again.
    pub(super) fn refresh_jwks(&mut self, now: i64) -> Action {
        let shared = self.shared.clone();
        let Some(src) = &shared.cfg.access_token.jwks_uri else {
            return self.send_reply(DenyReason::TokenKeyUnknown, &ReplyContext::default(), now);
        };
        if let Ok(mut remote) = shared.remote_jwks.try_borrow_mut() {
            remote.started(now, true);
        }
        bump(shared.metrics.jwks_fetches);
        match dispatch(self, src) {
            Ok(call) => {
                self.stage = Stage::AwaitingJwks { token: call };
                Action::Pause
            }
            Err(e) => {
                if let Ok(mut remote) = shared.remote_jwks.try_borrow_mut() {
                    remote.finished(None, now);
                }
                bump(shared.metrics.jwks_errors);
                log::warn!(
                    "dpop_guard: JWKS fetch to cluster {} failed: {e}",
                    src.cluster
                );
                self.decide_again(false)
            }
        }
    }

    /// The answer to this request's JWKS fetch.
    pub(super) fn on_jwks_reply(&mut self, token_id: u32) {
        let Stage::AwaitingJwks { token } = self.stage else {
            return;
        };
        if token != token_id {
            return;
        }
        let shared = self.shared.clone();
        if let Some(src) = &shared.cfg.access_token.jwks_uri {
            record(&shared, src);
        }
        self.decide_again(true);
    }

    /// Runs the whole check again (the key set changed, or could not); `resume` continues the
    /// paused request if it is let through.
    fn decide_again(&mut self, resume: bool) -> Action {
        self.stage = Stage::Start;
        let mut probe = Probe::start();
        let action = self.request_headers(&mut probe, None);
        probe.finish();
        if resume && action == Action::Continue {
            if let Err(code) = abi::resume_request() {
                self.host_error("continue_stream", code);
                return self.send_reply(
                    DenyReason::HostCallFailed,
                    &ReplyContext::default(),
                    now_secs(),
                );
            }
        }
        action
    }
}
