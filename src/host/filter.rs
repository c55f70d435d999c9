//! One HTTP request: gather the facts, call the pure core, carry out the plan
//! ([`crate::outcome::plan`]): publish filter state, then reply or continue with the edits.

use super::abi::{self, now_secs};
use super::metrics::bump;
use super::profile::Probe;
use super::Shared;
use crate::authn::{self, Decision, JwtAuthnView};
use crate::config::VerifyMode;
use crate::introspection::{Answer, IntrospectionView};
use crate::jose::AlgSet;
use crate::outcome::{self, Ending, Outcome, Plan, ProofKey};
use crate::problem::{self, ProblemContext};
use crate::proof::KeyCache;
use crate::reason::DenyReason;
use crate::upstream::UpstreamEdits;
use proxy_wasm::traits::HttpContext;
use proxy_wasm::types::Action;
use std::rc::Rc;

/// What ending a request needs from its headers, kept from the header read (a remote replay
/// check answers after they are gone).
#[derive(Default)]
pub(super) struct ReplyContext {
    /// Request path without query (problem `instance`).
    instance: String,
    request_id: Option<String>,
    /// A gRPC request: a refusal is a gRPC status.
    grpc: bool,
    /// The route is in shadow mode.
    shadow: bool,
    /// The upstream edits should the request be allowed.
    allow_edits: UpstreamEdits,
    /// `DPoP-Nonce` for the reply or, on a request that goes on, for the response.
    nonce: Option<String>,
    /// The route's algorithms (the challenge's `algs`).
    algorithms: Option<AlgSet>,
    /// RFC 9728 metadata URL for 401 challenges.
    resource_metadata: Option<String>,
}

/// Where a request is in the pipeline.
pub(super) enum Stage {
    Start,
    /// Waiting for the dpop-replay service; the callout is matched by its token.
    AwaitingReplay {
        token: u32,
        key: Option<ProofKey>,
        reply: ReplyContext,
    },
    /// Waiting for the authorization server's introspection answer about the token whose
    /// SHA-256 is `hash`; then the request is decided again with it.
    AwaitingIntrospection {
        token: u32,
        hash: [u8; 32],
    },
    /// Waiting for the JWKS fetched because the token's `kid` was unknown; then the request is
    /// decided again.
    AwaitingJwks {
        token: u32,
    },
    /// In a coalesced replay batch; the root context finishes it ([`super::coalesce`]).
    AwaitingBatch,
    Done,
}

pub(super) struct Filter {
    pub(super) shared: Rc<Shared>,
    pub(super) stage: Stage,
    /// This request's context id and its root context's (replay batching).
    pub(super) ctx: u32,
    pub(super) root: u32,
    /// The request joined a replay batch (its batch must forget it if it goes away).
    pub(super) batched: bool,
    /// The request's own replay check is in flight as a lone check ([`super::coalesce`]).
    pub(super) lone: bool,
    /// `DPoP-Nonce` to add to the upstream's response (README "Nonces": proactive rotation).
    pub(super) response_nonce: Option<String>,
}

impl Filter {
    /// The one place a request ends: the pure plan ([`outcome::plan`]) becomes host actions.
    pub(super) fn finish(&mut self, ending: Ending, reply: &ReplyContext, now: i64) -> Action {
        let plan = outcome::plan(ending, reply.shadow, reply.allow_edits.clone());
        self.stage = Stage::Done;
        let published = publish(&plan);
        crate::stage::mark("f.publish");
        if let Err(status) = published {
            // Filters after this one (RBAC on the jkt, the access log) read this state: a
            // request must not go on without it.
            self.host_error("set_property", status);
            return self.send_reply(DenyReason::HostCallFailed, reply, now);
        }
        if matches!(plan.outcome, Outcome::Allow | Outcome::ShadowDeny) {
            self.response_nonce = reply.nonce.clone();
        }
        match plan.outcome {
            Outcome::Pass => Action::Continue,
            Outcome::Deny => {
                let reason = plan.reply.unwrap_or(DenyReason::HostCallFailed);
                self.send_reply(reason, reply, now)
            }
            Outcome::ShadowDeny => {
                if let Some(reason) = plan.reason {
                    self.shared.metrics.refused(reason, true);
                    log::debug!("dpop_guard: shadow mode: would deny {}", reason.stat_name());
                }
                Action::Continue
            }
            Outcome::Allow => self.allow(&plan, reply, now),
        }
    }

    /// Counts the refusal and sends its local reply (problem+json, or a gRPC status).
    pub(super) fn send_reply(
        &mut self,
        reason: DenyReason,
        reply: &ReplyContext,
        now: i64,
    ) -> Action {
        let cfg = &self.shared.cfg;
        self.shared.metrics.refused(reason, false);
        self.stage = Stage::Done;
        let ctx = ProblemContext {
            instance: &reply.instance,
            request_id: reply.request_id.as_deref(),
            now,
            nonce: reply.nonce.as_deref(),
            grpc: reply.grpc,
            algorithms: reply.algorithms,
            resource_metadata: reply.resource_metadata.as_deref(),
        };
        let resp = problem::build(cfg, reason, &ctx);
        log::debug!(
            "dpop_guard: denied {} ({})",
            reason.stat_name(),
            resp.status
        );
        let headers: Vec<(&str, &str)> =
            resp.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Err(status) = abi::send_local_response(
            resp.status,
            &headers,
            resp.body.as_bytes(),
            resp.grpc_status,
        ) {
            // The request stays paused: Envoy times it out. Never let it through.
            self.host_error("send_local_response", status);
        }
        Action::Pause
    }

    /// Continue upstream with the thumbprint header set and the hand-off edits made. If the
    /// host refuses any of them, the request is refused: the upstream must never see a request
    /// without the header we vouch for (a token endpoint binds what it receives).
    fn allow(&mut self, plan: &Plan, reply: &ReplyContext, now: i64) -> Action {
        let name = &self.shared.cfg.forward_jkt_header;
        let mut edits: Vec<(&str, Result<(), u32>)> = Vec::new();
        if let Some(jkt) = &plan.jkt_header {
            edits.push((
                "replace_header_map_value",
                abi::replace_request_header(name, jkt),
            ));
        }
        if plan.edits.remove_dpop {
            edits.push((
                "remove_header_map_value",
                abi::remove_request_header("dpop"),
            ));
        }
        if let Some(value) = &plan.edits.authorization {
            edits.push((
                "replace_header_map_value",
                abi::replace_request_header("authorization", value),
            ));
        }
        if let Some((call, Err(status))) = edits.into_iter().find(|(_, r)| r.is_err()) {
            self.host_error(call, status);
            return self.send_reply(DenyReason::HostCallFailed, reply, now);
        }
        bump(self.shared.metrics.allowed);
        Action::Continue
    }

    pub(super) fn host_error(&self, call: &str, status: u32) {
        bump(self.shared.metrics.host_errors);
        log::warn!("dpop_guard: host call {call} failed with status {status}");
    }

    /// What jwt_authn left in dynamic metadata. `Err` when the host fails to answer (not
    /// "absent": that would read as "no token").
    fn jwt_authn_view(&self) -> Result<JwtAuthnView, u32> {
        let at = &self.shared.cfg.access_token;
        let base = [
            "metadata",
            "filter_metadata",
            at.metadata_namespace.as_str(),
            at.payload_key.as_str(),
        ];
        let payload_present = abi::property(&base)?.is_some_and(|v| !v.is_empty());
        if !payload_present {
            return Ok(JwtAuthnView::default());
        }
        let mut path = base.to_vec();
        path.extend(["cnf", "jkt"]);
        // A jkt that is not UTF-8 still names a key — one no proof can match — never "unbound".
        let jkt = abi::property(&path)?
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(JwtAuthnView {
            payload_present,
            jkt,
        })
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let mut probe = Probe::start();
        let action = self.request_headers(&mut probe, None);
        probe.finish();
        action
    }

    fn on_http_request_body(&mut self, _: usize, _: bool) -> Action {
        if matches!(self.stage, Stage::AwaitingBatch) && self.batch_settled() {
            return Action::Continue;
        }
        match self.stage {
            Stage::AwaitingBatch
            | Stage::AwaitingReplay { .. }
            | Stage::AwaitingIntrospection { .. }
            | Stage::AwaitingJwks { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if matches!(self.stage, Stage::AwaitingBatch) && self.batch_settled() {
            return Action::Continue;
        }
        match self.stage {
            Stage::AwaitingBatch
            | Stage::AwaitingReplay { .. }
            | Stage::AwaitingIntrospection { .. }
            | Stage::AwaitingJwks { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }

    /// Proactive nonce rotation: the next nonce rides on the upstream's response. A response
    /// carrying a nonce must not be cached (RFC 9449 §8.2 nonces are per client and moment).
    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if matches!(self.stage, Stage::AwaitingBatch) {
            self.batch_settled();
        }
        if let Some(nonce) = self.response_nonce.take() {
            for (name, value) in [
                ("dpop-nonce", nonce.as_str()),
                ("cache-control", "no-store"),
            ] {
                if let Err(status) = abi::replace_response_header(name, value) {
                    // The response is already the upstream's: it goes on without the nonce,
                    // and the client gets one from a use_dpop_nonce reply later.
                    self.host_error("replace_header_map_value", status);
                }
            }
        }
        Action::Continue
    }
}

impl Filter {
    /// The whole check from the request headers. `fresh`: the introspection answer just
    /// received for this request's token (the second pass, [`Stage::AwaitingIntrospection`]).
    #[inline(never)]
    pub(super) fn request_headers(
        &mut self,
        probe: &mut Probe,
        fresh: Option<([u8; 32], Answer)>,
    ) -> Action {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let now = now_secs();
        // Read as bytes and parsed by our own code: no header value can panic the VM.
        let map = abi::request_header_map();
        let pairs = map.as_deref().ok().and_then(crate::headers::parse_map);
        let Some(pairs) = pairs else {
            self.host_error("get_header_map_pairs", map.err().unwrap_or(0));
            return self.send_reply(DenyReason::HostCallFailed, &ReplyContext::default(), now);
        };
        let h = crate::headers::gather(&pairs, &cfg.forward_jkt_header);
        probe.mark("get_headers");
        let mut reply = ReplyContext {
            instance: authn::path_only(h.path).to_owned(),
            request_id: h.request_id.map(str::to_owned),
            grpc: h.grpc,
            ..ReplyContext::default()
        };
        // Never trust a client-sent thumbprint, in any spelling (`x_dpop_jkt` reaches WSGI
        // apps as `x-dpop-jkt`), whatever the route or mode. The removal hostcall is only made
        // when there is something to remove.
        for name in &h.forged_jkt {
            if let Err(status) = abi::remove_request_header(name) {
                self.host_error("remove_header_map_value", status);
                return self.send_reply(DenyReason::HostCallFailed, &reply, now);
            }
        }
        if !cfg.enabled {
            return self.finish(Ending::Pass, &reply, now);
        }
        let jwt_view = if cfg.access_token.verify == VerifyMode::JwtAuthn {
            match self.jwt_authn_view() {
                Ok(v) => Some(v),
                Err(status) => {
                    self.host_error("get_property", status);
                    return self.send_reply(DenyReason::HostCallFailed, &reply, now);
                }
            }
        } else {
            None
        };
        probe.mark("facts");
        // A VM is single-threaded and nothing re-enters here, so the borrow always succeeds;
        // if it ever did not, deciding without the cache is still correct.
        let token_cache = shared.token_cache.borrow();
        let introspection =
            (cfg.access_token.verify == VerifyMode::Introspection).then(|| IntrospectionView {
                cache: &token_cache,
                fresh: fresh.as_ref().map(|(h, a)| (h, a)),
            });
        let remote_jwks = shared.remote_jwks.borrow();
        let remote = cfg.access_token.jwks_uri.as_ref().map(|_| &*remote_jwks);
        let checked = match shared.key_cache.try_borrow_mut() {
            Ok(mut cache) => authn::check_gathered(
                cfg,
                &h,
                jwt_view.as_ref(),
                introspection,
                remote,
                now,
                &mut cache,
            ),
            Err(_) => authn::check_gathered(
                cfg,
                &h,
                jwt_view.as_ref(),
                introspection,
                remote,
                now,
                &mut KeyCache::disabled(),
            ),
        };
        drop(remote_jwks);
        drop(token_cache);
        if checked.introspection_cache_hit {
            bump(shared.metrics.introspection_cache_hits);
        }
        probe.mark("decide");
        reply.shadow = checked.shadow;
        reply.nonce = checked.nonce;
        reply.algorithms = Some(checked.algorithms);
        reply.resource_metadata = checked.resource_metadata;
        match checked.decision {
            Decision::Pass => self.finish(Ending::Pass, &reply, now),
            Decision::Metadata(doc) => self.metadata(&doc, &reply, now),
            Decision::Introspect(token) => self.introspect(&token, &reply, now),
            Decision::RefreshJwks => self.refresh_jwks(now),
            Decision::Deny(reason) => self.finish(Ending::Deny { reason, key: None }, &reply, now),
            Decision::Allow {
                jkt,
                alg,
                replay_key,
                replay_ttl,
            } => {
                let key = jkt.zip(alg).map(|(jkt, alg)| ProofKey { jkt, alg });
                reply.allow_edits = outcome::allow_edits(cfg, key.is_some(), &h.authorization);
                let action = match replay_key {
                    None => self.finish(Ending::Allow(key), &reply, now),
                    Some(replay_key) => self.check_replay(key, &replay_key, replay_ttl, reply, now),
                };
                probe.mark("replay+allow");
                action
            }
        }
    }
}

impl Filter {
    /// Answers an RFC 9728 metadata request (README "Discovery") with the document.
    fn metadata(&mut self, doc: &str, reply: &ReplyContext, now: i64) -> Action {
        let plan = outcome::plan(Ending::Pass, false, UpstreamEdits::default());
        self.stage = Stage::Done;
        if let Err(status) = publish(&plan) {
            self.host_error("set_property", status);
            return self.send_reply(DenyReason::HostCallFailed, reply, now);
        }
        bump(self.shared.metrics.metadata);
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", "max-age=300"),
        ];
        if let Err(status) = abi::send_local_response(200, &headers, doc.as_bytes(), None) {
            self.host_error("send_local_response", status);
        }
        Action::Pause
    }
}

/// Publishes the plan's filter state (`wasm.dpop_guard.*`).
fn publish(plan: &Plan) -> Result<(), u32> {
    for (name, value) in plan.state() {
        abi::set_property(name, value.as_bytes())?;
    }
    Ok(())
}
