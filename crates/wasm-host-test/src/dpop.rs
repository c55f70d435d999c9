//! dpop-guard specifics: proofs and tokens made natively, the guest's action read back as a
//! [`Verdict`], and [`Differential`]: one request through the built wasm and through the pure
//! core (`dpop_guard::authn::decide_headers`), compared.

mod keys;
pub use keys::{bound_token, upstream_token, AlgKey, Key, ProofClaims};

use crate::abi::Pairs;
use crate::host::LocalResponse;
use crate::vm::{Exchange, Outcome, Request, StartError, Trap, Vm, Wasm};
use dpop_guard::authn::{decide_headers, Decision, JwtAuthnView};
use dpop_guard::config::{Config, ReplayConfig, VerifyMode};
use std::collections::HashSet;
use std::fmt;

/// What happened to a request, in terms both sides can be compared on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Upstream; `jkt` = every value of the forwarded thumbprint header (any spelling of its
    /// name: ASCII case, `_` for `-`) in the headers that go upstream.
    Upstream {
        jkt: Vec<Vec<u8>>,
    },
    /// A local reply: status and problem `type` slug.
    Reply {
        status: u32,
        slug: String,
    },
    Pending,
    /// Reset by the guest (`proxy_close_stream`).
    Closed,
    Stalled,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Upstream { jkt } => {
                let j: Vec<_> = jkt.iter().map(|v| String::from_utf8_lossy(v)).collect();
                write!(f, "upstream with jkt {j:?}")
            }
            Verdict::Reply { status, slug } => write!(f, "{status} {slug}"),
            Verdict::Pending => f.write_str("pending"),
            Verdict::Closed => f.write_str("stream reset by the guest"),
            Verdict::Stalled => f.write_str("stalled (paused, no reply, nothing pending)"),
        }
    }
}

/// The pure core's decision as a verdict (before the replay store).
pub fn expected_verdict(d: &Decision) -> Verdict {
    match d {
        Decision::Pass => Verdict::Upstream { jkt: vec![] },
        Decision::Allow { jkt, .. } => Verdict::Upstream {
            jkt: jkt.iter().map(|j| j.as_bytes().to_vec()).collect(),
        },
        Decision::Deny(r) => Verdict::Reply {
            status: r.problem().status(),
            slug: r.problem().slug().to_owned(),
        },
        // a callout to the authorization server: answered by the test, not predicted here
        Decision::Introspect(_) | Decision::RefreshJwks => Verdict::Pending,
        // the RFC 9728 document: JSON without a problem type
        Decision::Metadata(_) => Verdict::Reply {
            status: 200,
            slug: "<no type>".into(),
        },
    }
}

fn same_header_name(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| match c.to_ascii_lowercase() {
        b'_' => b'-',
        c => c,
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(*x) == norm(*y))
}

/// The problem `type` slug of a local reply body (`<not json>` / `<no type>` otherwise).
pub fn reply_slug(r: &LocalResponse) -> String {
    match serde_json::from_slice::<serde_json::Value>(&r.body) {
        Err(_) => "<not json>".into(),
        Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
            Some(t) => t.rsplit('/').next().unwrap_or(t).to_owned(),
            None => "<no type>".into(),
        },
    }
}

/// The guest's action as a verdict.
pub fn observed_verdict(outcome: &Outcome, forward_jkt_header: &str) -> Verdict {
    match outcome {
        Outcome::Upstream(h) => Verdict::Upstream {
            jkt: h
                .iter()
                .filter(|(k, _)| same_header_name(k, forward_jkt_header.as_bytes()))
                .map(|(_, v)| v.clone())
                .collect(),
        },
        Outcome::LocalReply(r) => Verdict::Reply {
            status: r.status,
            slug: reply_slug(r),
        },
        Outcome::Pending(_) => Verdict::Pending,
        Outcome::Closed => Verdict::Closed,
        Outcome::Stalled => Verdict::Stalled,
    }
}

/// What every rejection must look like: problem+json body that parses, with `type`, `status`
/// equal to the HTTP status, and a `WWW-Authenticate: DPoP algs="..."` challenge.
pub fn check_reply_shape(r: &LocalResponse) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
        format!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&r.body)
        )
    })?;
    if v.get("type").and_then(|t| t.as_str()).is_none() {
        return Err(format!("no problem type in {v}"));
    }
    if v.get("status").and_then(serde_json::Value::as_u64) != Some(u64::from(r.status)) {
        return Err(format!("body status differs from {}: {v}", r.status));
    }
    let Some(headers) = &r.headers else {
        return Err("response headers are not a valid serialized map".into());
    };
    let www = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"www-authenticate"))
        .map(|(_, v)| v.as_slice());
    match www {
        Some(w) if w.starts_with(b"DPoP algs=\"") => {}
        other => {
            return Err(format!(
                "www-authenticate is {:?}",
                other.map(String::from_utf8_lossy)
            ))
        }
    }
    match r.header("content-type") {
        Some(b"application/problem+json") => Ok(()),
        other => Err(format!(
            "content-type is {:?}",
            other.map(String::from_utf8_lossy)
        )),
    }
}

/// jwt_authn's dynamic metadata for one request (`None` fields: property absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtMetadata {
    /// `metadata.filter_metadata.<ns>.<payload_key>` (Envoy serializes the Struct).
    pub payload: Option<Vec<u8>>,
    /// `metadata.filter_metadata.<ns>.<payload_key>.cnf.jkt`.
    pub jkt: Option<Vec<u8>>,
}

/// One differential case.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub headers: Pairs,
    pub jwt: Option<JwtMetadata>,
    /// Seconds since the epoch.
    pub now: i64,
}

/// A disagreement or a broken guest.
#[derive(Debug, Clone)]
pub enum Failure {
    Trap(Trap),
    Mismatch {
        expected: Verdict,
        observed: Verdict,
        decision: String,
        transcript: String,
    },
    BadReply {
        problem: String,
        reply: Box<LocalResponse>,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Trap(t) => t.fmt(f),
            Failure::Mismatch {
                expected,
                observed,
                decision,
                transcript,
            } => write!(
                f,
                "guest: {observed}\ncore:  {expected} (decision {decision})\n{transcript}"
            ),
            Failure::BadReply { problem, reply } => {
                write!(f, "malformed local reply: {problem}\n{reply:?}")
            }
        }
    }
}

/// One plugin configuration of a [`Differential`] (a root context of its VM).
pub struct Plugin {
    pub root: u32,
    pub config_json: Vec<u8>,
    pub cfg: Config,
}

/// The built wasm and the pure core, fed the same requests: one VM with a root context per
/// configuration (so the VM-wide warm-up is paid once).
pub struct Differential<'w> {
    wasm: &'w Wasm,
    vm: Vm,
    pub plugins: Vec<Plugin>,
    /// Replay keys the guest's local store has accepted (shared data is VM-wide).
    seen: HashSet<String>,
    /// Root-context callouts (replay batches) already answered.
    answered: HashSet<u32>,
    /// Requests run on the current VM.
    pub requests: u64,
}

impl<'w> Differential<'w> {
    pub fn new(wasm: &'w Wasm, configs: &[&[u8]]) -> Result<Differential<'w>, String> {
        let (vm, plugins) = Self::boot(wasm, configs)?;
        Ok(Differential {
            wasm,
            vm,
            plugins,
            seen: HashSet::new(),
            answered: HashSet::new(),
            requests: 0,
        })
    }

    fn boot(wasm: &Wasm, configs: &[&[u8]]) -> Result<(Vm, Vec<Plugin>), String> {
        let mut plugins = Vec::new();
        let mut vm: Option<Vm> = None;
        for (i, json) in configs.iter().enumerate() {
            let cfg = Config::parse(json).map_err(|e| format!("config #{i}: {e}"))?;
            let root = match vm.as_mut() {
                None => {
                    let v = Vm::start(wasm, json).map_err(|e| format!("config #{i}: {e}"))?;
                    let root = v.root_context();
                    vm = Some(v);
                    root
                }
                Some(v) => v
                    .add_root(json)
                    .map_err(|e: StartError| format!("config #{i}: {e}"))?,
            };
            plugins.push(Plugin {
                root,
                config_json: json.to_vec(),
                cfg,
            });
        }
        let vm = vm.ok_or("no configuration")?;
        Ok((vm, plugins))
    }

    pub fn vm(&mut self) -> &mut Vm {
        &mut self.vm
    }

    /// A fresh VM (after a trap): new shared data, new replay store.
    pub fn restart(&mut self) -> Result<(), String> {
        let configs: Vec<Vec<u8>> = self.plugins.iter().map(|p| p.config_json.clone()).collect();
        let refs: Vec<&[u8]> = configs.iter().map(Vec::as_slice).collect();
        let (vm, plugins) = Self::boot(self.wasm, &refs)?;
        self.vm = vm;
        self.plugins = plugins;
        self.seen.clear();
        self.requests = 0;
        Ok(())
    }

    fn jwt_view(cfg: &Config, jwt: Option<&JwtMetadata>) -> Option<JwtAuthnView> {
        if cfg.access_token.verify != VerifyMode::JwtAuthn {
            return None;
        }
        // The glue's contract: the payload is there when non-empty; its cnf.jkt is read only
        // then, and a jkt that is not UTF-8 still names a key (one no proof matches).
        let jwt = jwt.cloned().unwrap_or_default();
        let payload_present = jwt.payload.as_ref().is_some_and(|p| !p.is_empty());
        Some(JwtAuthnView {
            payload_present,
            jkt: jwt
                .jkt
                .filter(|j| payload_present && !j.is_empty())
                .map(|j| String::from_utf8_lossy(&j).into_owned()),
        })
    }

    fn set_metadata(&mut self, cfg: &Config, jwt: Option<&JwtMetadata>) {
        let at = &cfg.access_token;
        let base: Vec<Vec<u8>> = vec![
            b"metadata".to_vec(),
            b"filter_metadata".to_vec(),
            at.metadata_namespace.as_bytes().to_vec(),
            at.payload_key.as_bytes().to_vec(),
        ];
        let host = self.vm.host_mut();
        host.properties.clear();
        if let Some(j) = jwt {
            if let Some(p) = &j.payload {
                host.properties.insert(base.clone(), p.clone());
            }
            if let Some(k) = &j.jkt {
                let mut path = base;
                path.push(b"cnf".to_vec());
                path.push(b"jkt".to_vec());
                host.properties.insert(path, k.clone());
            }
        }
    }

    /// Run `case` through both, on plugin `plugin`; `Ok` with the exchange when they agree.
    pub fn run(&mut self, plugin: usize, case: &Case) -> Result<Exchange, Failure> {
        let Some(p) = self.plugins.get(plugin) else {
            return Err(Failure::Mismatch {
                expected: Verdict::Stalled,
                observed: Verdict::Stalled,
                decision: format!("no plugin #{plugin}"),
                transcript: String::new(),
            });
        };
        let (root, cfg) = (p.root, p.cfg.clone());
        let pairs: Vec<(&[u8], &[u8])> = case
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let view = Self::jwt_view(&cfg, case.jwt.as_ref());
        let decision = decide_headers(&cfg, &pairs, view.as_ref(), case.now);
        let replay_key = match (&decision, &cfg.replay) {
            (
                Decision::Allow {
                    replay_key: Some(k),
                    ..
                },
                ReplayConfig::Local { .. },
            ) => Some(k.clone()),
            _ => None,
        };
        let mut expected = expected_verdict(&decision);
        if replay_key.as_ref().is_some_and(|k| self.seen.contains(k)) {
            expected = Verdict::Reply {
                status: 401,
                slug: "dpop-invalid".into(),
            };
        }

        self.set_metadata(&cfg, case.jwt.as_ref());
        self.vm.host_mut().now_nanos =
            (case.now.max(0) as u64).saturating_mul(1_000_000_000) + 123_456_789;
        self.vm.host_mut().calls.clear();
        self.vm.host_mut().logs.clear();
        self.requests += 1;
        let req = Request {
            headers: case.headers.clone(),
            raw_headers: None,
            end_of_stream: true,
        };
        let mut ex = self
            .vm
            .request_headers_on(root, &req)
            .map_err(Failure::Trap)?;
        // the remote replay service says "fresh" to every callout and every batch entry
        loop {
            match &ex.outcome {
                Outcome::Pending(tokens) => {
                    let Some(token) = tokens.first().copied() else {
                        break;
                    };
                    ex = self
                        .vm
                        .http_call_response(
                            ex.context_id,
                            token,
                            vec![(b":status".to_vec(), b"201".to_vec())],
                            Vec::new(),
                        )
                        .map_err(Failure::Trap)?;
                }
                Outcome::Stalled => {
                    // a coalesced check: wake the root context, answer its batch
                    let woken = self.vm.deliver_queue_ready().map_err(Failure::Trap)?;
                    let calls: Vec<_> = self
                        .vm
                        .host()
                        .http_calls
                        .iter()
                        .filter(|c| c.context == root && !self.answered.contains(&c.token))
                        .cloned()
                        .collect();
                    if woken == 0 && calls.is_empty() {
                        break;
                    }
                    for call in &calls {
                        self.answered.insert(call.token);
                        let n = serde_json::from_slice::<serde_json::Value>(&call.body)
                            .ok()
                            .and_then(|v| v.get("entries").and_then(|e| e.as_array()).map(Vec::len))
                            .unwrap_or(0);
                        let body = format!(r#"{{"results":[{}]}}"#, vec!["201"; n].join(","));
                        ex = self
                            .vm
                            .http_call_response(
                                ex.context_id,
                                call.token,
                                vec![(b":status".to_vec(), b"200".to_vec())],
                                body.into_bytes(),
                            )
                            .map_err(Failure::Trap)?;
                    }
                    if calls.is_empty() {
                        ex.outcome = self.vm.outcome_of(ex.context_id);
                    }
                }
                _ => break,
            }
        }
        self.vm.finish(ex.context_id).map_err(Failure::Trap)?;

        let observed = observed_verdict(&ex.outcome, &cfg.forward_jkt_header);
        if let Outcome::LocalReply(r) = &ex.outcome {
            check_reply_shape(r).map_err(|problem| Failure::BadReply {
                problem,
                reply: Box::new(r.clone()),
            })?;
        }
        if let (Some(k), Verdict::Upstream { .. }) = (replay_key, &observed) {
            self.seen.insert(k);
        }
        if observed != expected {
            return Err(Failure::Mismatch {
                expected,
                observed,
                decision: format!("{decision:?}"),
                transcript: self.vm.host().transcript(),
            });
        }
        Ok(ex)
    }
}
