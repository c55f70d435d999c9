//! Every host call the guest makes can fail: each call site of a few reference requests (and
//! of the VM start) is made to return each error status, one at a time. The guest must never
//! trap, never leave a request hanging, and never turn a refusal into a pass or send a request
//! upstream without the thumbprint it vouches for. A local reply (5xx) or a continue are both
//! fine otherwise; the table of what happened is printed (`--nocapture`).//!
//! The reference requests (scenarios and their baselines) are in fault_scenarios.rs; this file
//! runs them under each fault and judges what happened.

use crate::common::*;
use crate::fault_scenarios::{scenarios, Baseline, Scenario};
use proxy_wasm_emu::dpop::{check_reply_shape, reply_slug, Key};
use proxy_wasm_emu::host::{CallRecord, Fault};
use proxy_wasm_emu::{status, HostState, Outcome, Pairs, StartError, Vm};
use std::collections::BTreeMap;

const STATUSES: &[u32] = &[
    status::NOT_FOUND,
    status::BAD_ARGUMENT,
    status::INVALID_MEMORY_ACCESS,
    status::INTERNAL_FAILURE,
    status::UNIMPLEMENTED,
    99,
];

/// Calls where NotFound is a truthful answer ("no such key/property/header"): a different
/// decision under an injected NotFound is the host lying, not a glue bug.
const NOT_FOUND_IS_DATA: &[&str] = &[
    "env.proxy_get_shared_data",
    "env.proxy_get_property",
    "env.proxy_get_header_map_value",
];

/// What one run of a scenario came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Upstream { jkt: Vec<Vec<u8>>, forged: bool },
    Reply(u32, String),
    Closed,
    Stalled,
    Trap(String),
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Upstream { jkt, forged } => write!(
                f,
                "upstream jkt={:?}{}",
                jkt.iter()
                    .map(|j| String::from_utf8_lossy(j))
                    .collect::<Vec<_>>(),
                if *forged { " FORGED HEADER KEPT" } else { "" }
            ),
            Seen::Reply(s, slug) => write!(f, "{s} {slug}"),
            Seen::Closed => f.write_str("stream reset (proxy_close_stream)"),
            Seen::Stalled => f.write_str("STALLED (paused, no reply)"),
            Seen::Trap(t) => write!(f, "TRAP {t}"),
        }
    }
}

fn seen(outcome: &Outcome) -> Result<Seen, String> {
    Ok(match outcome {
        Outcome::Upstream(h) => Seen::Upstream {
            jkt: values(h, "x-dpop-jkt")
                .into_iter()
                .filter(|v| *v != b"forged")
                .map(<[u8]>::to_vec)
                .collect(),
            forged: h.iter().any(|(_, v)| v == b"forged"),
        },
        Outcome::LocalReply(r) => {
            check_reply_shape(r)?;
            Seen::Reply(r.status, reply_slug(r))
        }
        Outcome::Closed => Seen::Closed,
        Outcome::Stalled => Seen::Stalled,
        Outcome::Pending(_) => Seen::Stalled,
    })
}

struct Runner {
    vms: BTreeMap<&'static str, Vm>,
}

impl Runner {
    fn vm(&mut self, s: &Scenario) -> &mut Vm {
        let dead = self.vms.get(s.name).is_none_or(|vm| vm.dead().is_some());
        if dead {
            self.vms.insert(s.name, start(&s.config));
        }
        self.vms.get_mut(s.name).unwrap()
    }

    /// Run `s` with `faults` armed in phase `phase` (0: request headers, 1: callout answer).
    /// Returns what happened and the host calls of each phase.
    fn run(&mut self, s: &Scenario, faults: Vec<Fault>, phase: u8) -> (Seen, [Vec<CallRecord>; 2]) {
        let (prepare, request) = (s.make)();
        let vm = self.vm(s);
        if let Some(prep) = &prepare {
            let _ = vm.run(prep);
        }
        if let Some((payload, jkt)) = &s.jwt {
            let base: [&[u8]; 4] = [
                b"metadata",
                b"filter_metadata",
                b"envoy.filters.http.jwt_authn",
                b"payload",
            ];
            vm.host_mut().set_property(&base, payload);
            let mut path = base.to_vec();
            path.extend([&b"cnf"[..], b"jkt"]);
            vm.host_mut().set_property(&path, jkt);
        }
        let mut calls: [Vec<CallRecord>; 2] = [Vec::new(), Vec::new()];
        if phase == 0 {
            vm.host_mut().set_faults(faults.clone());
        }
        let ex = match vm.request_headers(&request) {
            Ok(ex) => ex,
            Err(t) => return (Seen::Trap(trap_line(&t)), calls),
        };
        calls[0] = ex.calls.clone();
        let mut outcome = ex.outcome.clone();
        if let (Outcome::Pending(tokens), Some(answer)) = (&ex.outcome, s.callout) {
            let token = tokens[0];
            if phase == 1 {
                vm.host_mut().set_faults(faults);
            }
            let headers: Pairs = vec![(b":status".to_vec(), answer.as_bytes().to_vec())];
            match vm.http_call_response(ex.context_id, token, headers, Vec::new()) {
                Ok(ex2) => {
                    calls[1] = ex2.calls.clone();
                    outcome = ex2.outcome;
                }
                Err(t) => return (Seen::Trap(trap_line(&t)), calls),
            }
        }
        vm.host_mut().clear_faults();
        let r = match vm.finish(ex.context_id) {
            Err(t) => Seen::Trap(format!("in finish: {}", trap_line(&t))),
            Ok(()) => seen(&outcome).unwrap_or_else(|e| Seen::Trap(format!("bad reply: {e}"))),
        };
        (r, calls)
    }
}

fn trap_line(t: &proxy_wasm_emu::Trap) -> String {
    format!(
        "{} in {}{}",
        t.message,
        t.call,
        t.panic
            .as_ref()
            .map(|p| format!(" — {}", p.replace('\n', " ")))
            .unwrap_or_default()
    )
}

/// The call sites of a run: (function, occurrence) for each call, deduplicated.
fn sites(calls: &[CallRecord]) -> Vec<(String, usize)> {
    let mut n: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for c in calls {
        let name = c.name.rsplit('.').next().unwrap().to_owned();
        let i = n.entry(name.clone()).or_insert(0);
        out.push((name, *i));
        *i += 1;
    }
    out
}

/// Answers Envoy never gives on the two calls the proxy-wasm SDK still makes for the filter
/// (its context dispatcher): `proxy_http_call` only answers Ok, BadArgument or
/// InternalFailure, and `proxy_set_effective_context` fails only for a context Envoy has
/// already destroyed, whose callouts it cancels first. The SDK traps on these; the README
/// (Security notes) lists it as the one known limit. Listed here, not hidden.
fn sdk_contract_violation(function: &str, st: u32) -> bool {
    match function {
        "proxy_http_call" => !matches!(
            st,
            status::OK | status::BAD_ARGUMENT | status::INTERNAL_FAILURE
        ),
        "proxy_set_effective_context" => st != status::OK,
        _ => false,
    }
}

/// Checks a faulty run against the scenario's baseline; `Err` is a glue bug.
fn judge(s: &Scenario, function: &str, st: u32, r: &Seen) -> Result<(), String> {
    let qualified = format!("env.{function}");
    let truthful_not_found =
        st == status::NOT_FOUND && NOT_FOUND_IS_DATA.contains(&qualified.as_str());
    match (r, s.baseline) {
        (Seen::Trap(_), _) if sdk_contract_violation(function, st) => Ok(()),
        (Seen::Trap(_), _) => Err("trap".into()),
        // When the refusal itself cannot be sent, waiting for Envoy's stream timeout is the
        // only fail-closed move short of proxy_close_stream. Anywhere else a 503 is possible.
        (Seen::Stalled, _) if function == "proxy_send_local_response" => Ok(()),
        (Seen::Stalled, _) => Err("request left hanging (a 503 reply was possible)".into()),
        (Seen::Upstream { forged: true, .. }, _) => {
            Err("the client's x-dpop-jkt went upstream".into())
        }
        (Seen::Upstream { .. }, Baseline::Deny) if !truthful_not_found => {
            Err("a refused request went upstream".into())
        }
        (Seen::Upstream { jkt, .. }, Baseline::Allow(k)) => {
            if *jkt == vec![Key::new(k).jkt().into_bytes()] {
                Ok(())
            } else {
                Err(format!("upstream without the right thumbprint: {jkt:?}"))
            }
        }
        (Seen::Upstream { jkt, .. }, Baseline::Pass) if !jkt.is_empty() => {
            Err(format!("a thumbprint on a pass: {jkt:?}"))
        }
        _ => Ok(()),
    }
}

#[test]
fn every_request_host_call_can_fail() {
    let mut runner = Runner {
        vms: BTreeMap::new(),
    };
    let mut table = Vec::new();
    let mut bugs = Vec::new();
    for s in scenarios() {
        let (base, calls) = runner.run(&s, Vec::new(), 0);
        let expected_ok = match (&base, s.baseline) {
            (Seen::Upstream { jkt, forged: false }, Baseline::Allow(k)) => {
                *jkt == vec![Key::new(k).jkt().into_bytes()]
            }
            (Seen::Upstream { jkt, forged: false }, Baseline::Pass) => jkt.is_empty(),
            (Seen::Reply(..), Baseline::Deny) => true,
            _ => false,
        };
        assert!(
            expected_ok,
            "{}: baseline is {base}, expected {:?}",
            s.name, s.baseline
        );
        for (phase, phase_calls) in calls.iter().enumerate() {
            let mut cases: Vec<Fault> = Vec::new();
            for (function, n) in sites(phase_calls) {
                for &st in STATUSES {
                    cases.push(Fault::nth(&function, n, st));
                }
            }
            let mut functions: Vec<String> =
                sites(phase_calls).into_iter().map(|(f, _)| f).collect();
            functions.dedup();
            for f in functions {
                cases.push(Fault::always(&f, status::INTERNAL_FAILURE));
            }
            for fault in cases {
                let (r, _) = runner.run(&s, vec![fault.clone()], phase as u8);
                let verdict = judge(&s, &fault.function, fault.status, &r);
                let what = format!(
                    "{:<18} phase {phase} {:<32} {:>6} {:<22} -> {r}",
                    s.name,
                    fault.function,
                    fault
                        .times
                        .map_or("always".to_owned(), |_| format!("#{}", fault.skip)),
                    status::status_name(fault.status).to_owned() + &format!("({})", fault.status),
                );
                if let Err(e) = verdict {
                    bugs.push(format!("{what}   <-- {e}"));
                }
                table.push(what);
            }
        }
    }
    eprintln!(
        "fault injection, {} runs:\n{}",
        table.len(),
        table.join("\n")
    );
    assert!(
        bugs.is_empty(),
        "{} glue bugs:\n{}",
        bugs.len(),
        bugs.join("\n")
    );
}

#[test]
fn every_start_host_call_can_fail() {
    // The VM start: a fault may make the configuration refused (Envoy then rejects it) or be
    // survived; a VM that starts must still enforce the configuration it was given.
    let config = r#"{"required": true}"#;
    let baseline = Vm::start(wasm(), config.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let calls = baseline.host().calls.clone();
    let mut sites_seen = sites(&calls);
    // 45 counters, ~180 shared-data buckets: the first two and the last call of each function
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for (f, n) in &sites_seen {
        last.insert(f.clone(), *n);
    }
    sites_seen.retain(|(f, n)| *n < 2 || last.get(f) == Some(n));
    let mut table = Vec::new();
    let mut bugs = Vec::new();
    let mut faults: Vec<Fault> = Vec::new();
    for (function, n) in &sites_seen {
        for &st in &[status::NOT_FOUND, status::INTERNAL_FAILURE, 99] {
            faults.push(Fault::nth(function, *n, st));
        }
    }
    let mut functions: Vec<String> = sites_seen.iter().map(|(f, _)| f.clone()).collect();
    functions.sort();
    functions.dedup();
    for f in functions {
        faults.push(Fault::always(&f, status::INTERNAL_FAILURE));
    }
    for fault in faults {
        let mut host = HostState::new(config.as_bytes());
        host.set_faults(vec![fault.clone()]);
        let what = format!(
            "start {:<32} {:>6} {}({})",
            fault.function,
            fault
                .times
                .map_or("always".to_owned(), |_| format!("#{}", fault.skip)),
            status::status_name(fault.status),
            fault.status
        );
        match Vm::start_with(wasm(), host) {
            Err(StartError::Trap(t)) => {
                bugs.push(format!("{what} -> TRAP {}", trap_line(&t)));
            }
            Err(StartError::ConfigureRefused(_)) => {
                table.push(format!("{what} -> configuration refused"))
            }
            Err(StartError::VmStartRefused(_)) => table.push(format!("{what} -> vm start refused")),
            Ok(mut vm) => {
                vm.host_mut().clear_faults();
                set_now(&mut vm, NOW);
                match vm.run(&get(b"/api", &[])) {
                    Err(t) => bugs.push(format!("{what} -> started, then TRAP {}", trap_line(&t))),
                    Ok(ex) => {
                        let r = seen(&ex.outcome).unwrap_or_else(Seen::Trap);
                        let line = format!("{what} -> started; request without proof: {r}");
                        if !matches!(r, Seen::Reply(401, _) | Seen::Reply(503, _)) {
                            bugs.push(format!("{line}   <-- the configuration is not enforced"));
                        }
                        table.push(line);
                    }
                }
            }
        }
    }
    eprintln!("start fault injection:\n{}", table.join("\n"));
    assert!(
        bugs.is_empty(),
        "{} glue bugs:\n{}",
        bugs.len(),
        bugs.join("\n")
    );
}
