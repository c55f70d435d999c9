//! How a request ends (README "Filter state" and "Shadow mode"), pure: the one place where a
//! decision, the replay verdict, shadow mode and the upstream settings become what the glue
//! does and what it publishes — like jwt_authn's `onComplete`.

use crate::config::Config;
use crate::jose::Alg;
use crate::reason::DenyReason;
use crate::upstream::{self, UpstreamEdits};

/// `wasm.dpop_guard.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The checks passed; the request goes upstream with the thumbprint header.
    Allow,
    /// Refused with a local reply.
    Deny,
    /// Would have been refused; shadow mode let it through unchanged.
    ShadowDeny,
    /// Not checked: route `off`, or the filter is disabled.
    Pass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::ShadowDeny => "shadow_deny",
            Outcome::Pass => "pass",
        }
    }
}

/// The key that signed a verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofKey {
    pub jkt: String,
    pub alg: Alg,
}

/// Where the checks ended, before shadow mode and the hand-off are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Pass,
    Allow(Option<ProofKey>),
    /// `key` is known when the proof verified and a later step refused it (the replay check).
    Deny {
        reason: DenyReason,
        key: Option<ProofKey>,
    },
}

/// The filter-state names (each published as `wasm.dpop_guard.<name>`).
pub const STATE_OUTCOME: &str = "dpop_guard.outcome";
pub const STATE_REASON: &str = "dpop_guard.reason";
pub const STATE_JKT: &str = "dpop_guard.jkt";
pub const STATE_ALG: &str = "dpop_guard.alg";

/// What the glue does for one request, in this order: publish `state`, then either send the
/// local reply for `reply`, or set the thumbprint header, apply `edits` and continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub outcome: Outcome,
    /// The refusal (Deny and ShadowDeny).
    pub reason: Option<DenyReason>,
    pub key: Option<ProofKey>,
    /// Send this refusal as a local reply (Deny only).
    pub reply: Option<DenyReason>,
    /// Set `forward_jkt_header` to this thumbprint (Allow with a verified proof).
    pub jkt_header: Option<String>,
    pub edits: UpstreamEdits,
}

impl Plan {
    /// (name, value) pairs to publish as filter state.
    pub fn state(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![(STATE_OUTCOME, self.outcome.as_str())];
        if let Some(r) = self.reason {
            out.push((STATE_REASON, r.stat_name()));
        }
        // The key only when the request was allowed: a filter after this one (RBAC pinning a
        // route to a key) must never see a key on a request that was refused or only shadowed
        // — a replayed proof names a real key.
        if let (Outcome::Allow, Some(k)) = (self.outcome, &self.key) {
            out.push((STATE_JKT, k.jkt.as_str()));
            out.push((STATE_ALG, k.alg.name()));
        }
        out
    }
}

/// Host-call failures are never shadowed: they mean the proxy could not do what the filter
/// needs (read the request, strip a forged thumbprint header), and letting such a request
/// through unchanged would forward what was never checked.
fn shadowable(reason: DenyReason) -> bool {
    reason != DenyReason::HostCallFailed
}

/// The plan for a request that ended at `ending` on a route in (or not in) shadow mode.
/// `allow_edits` are the upstream edits should it be allowed ([`allow_edits`]).
pub fn plan(ending: Ending, shadow: bool, allow_edits: UpstreamEdits) -> Plan {
    let nothing = Plan {
        outcome: Outcome::Pass,
        reason: None,
        key: None,
        reply: None,
        jkt_header: None,
        edits: UpstreamEdits::default(),
    };
    match ending {
        Ending::Pass => nothing,
        Ending::Allow(key) => Plan {
            outcome: Outcome::Allow,
            jkt_header: key.as_ref().map(|k| k.jkt.clone()),
            edits: allow_edits,
            key,
            ..nothing
        },
        Ending::Deny { reason, key } if shadow && shadowable(reason) => Plan {
            outcome: Outcome::ShadowDeny,
            reason: Some(reason),
            key,
            ..nothing
        },
        Ending::Deny { reason, key } => Plan {
            outcome: Outcome::Deny,
            reason: Some(reason),
            reply: Some(reason),
            key,
            ..nothing
        },
    }
}

/// The upstream edits for a request allowed with (`proof_verified`) or without a verified
/// proof, computed from the request's `Authorization` values while they are at hand (a
/// remote replay check answers later).
pub fn allow_edits(cfg: &Config, proof_verified: bool, authorization: &[&[u8]]) -> UpstreamEdits {
    upstream::edits(&cfg.upstream, proof_verified, authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ProofKey {
        ProofKey {
            jkt: "jkt-1".into(),
            alg: Alg::EdDSA,
        }
    }

    fn bearer() -> UpstreamEdits {
        UpstreamEdits {
            remove_dpop: true,
            authorization: Some("Bearer t".into()),
        }
    }

    #[test]
    fn allow_sets_the_header_applies_edits_and_publishes_the_key() {
        let p = plan(Ending::Allow(Some(key())), false, bearer());
        assert_eq!(p.outcome, Outcome::Allow);
        assert_eq!(p.jkt_header.as_deref(), Some("jkt-1"));
        assert_eq!(p.edits, bearer());
        assert_eq!(p.reply, None);
        assert_eq!(
            p.state(),
            vec![
                (STATE_OUTCOME, "allow"),
                (STATE_JKT, "jkt-1"),
                (STATE_ALG, "EdDSA")
            ]
        );
    }

    #[test]
    fn shadow_turns_a_refusal_into_a_published_shadow_deny_with_no_changes() {
        let ending = Ending::Deny {
            reason: DenyReason::ProofReplayed,
            key: Some(key()),
        };
        let p = plan(ending.clone(), true, bearer());
        assert_eq!(p.outcome, Outcome::ShadowDeny);
        assert_eq!(p.reply, None);
        assert_eq!(p.jkt_header, None);
        assert_eq!(p.edits, UpstreamEdits::default());
        assert!(p.state().contains(&(STATE_REASON, "proof_replayed")));
        // a refused request never names a key, even when its proof verified
        assert!(p.state().iter().all(|(name, _)| *name != STATE_JKT));
        let enforced = plan(ending, false, bearer());
        assert_eq!(enforced.outcome, Outcome::Deny);
        assert_eq!(enforced.reply, Some(DenyReason::ProofReplayed));
        assert_eq!(enforced.edits, UpstreamEdits::default());
    }

    #[test]
    fn host_failures_are_never_shadowed() {
        let p = plan(
            Ending::Deny {
                reason: DenyReason::HostCallFailed,
                key: None,
            },
            true,
            UpstreamEdits::default(),
        );
        assert_eq!(p.outcome, Outcome::Deny);
        assert_eq!(p.reply, Some(DenyReason::HostCallFailed));
    }

    #[test]
    fn pass_publishes_only_the_outcome_and_allow_without_proof_sets_no_header() {
        assert_eq!(
            plan(Ending::Pass, true, bearer()).state(),
            vec![(STATE_OUTCOME, "pass")]
        );
        let p = plan(Ending::Allow(None), false, UpstreamEdits::default());
        assert_eq!(p.jkt_header, None);
        assert_eq!(p.state(), vec![(STATE_OUTCOME, "allow")]);
    }
}
