//! One closed list of reasons a request is refused. Each maps to exactly one problem
//! type, a short detail that is safe to send (never echoes client input), a stats name and the
//! RFC 6750/9449 `error` code for the challenge.

/// Problem types (README "Responses").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    DpopRequired,
    DpopInvalid,
    BindingMismatch,
    TokenNotDpopBound,
    TokenInvalid,
    UseDpopNonce,
    ReplayCheckUnavailable,
    DpopCheckUnavailable,
    TokenCheckUnavailable,
}

impl Problem {
    pub fn slug(self) -> &'static str {
        match self {
            Problem::DpopRequired => "dpop-required",
            Problem::DpopInvalid => "dpop-invalid",
            Problem::BindingMismatch => "dpop-binding-mismatch",
            Problem::TokenNotDpopBound => "token-not-dpop-bound",
            Problem::TokenInvalid => "token-invalid",
            Problem::UseDpopNonce => "use-dpop-nonce",
            Problem::ReplayCheckUnavailable => "replay-check-unavailable",
            Problem::DpopCheckUnavailable => "dpop-check-unavailable",
            Problem::TokenCheckUnavailable => "token-check-unavailable",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            Problem::DpopRequired => "DPoP Proof Required",
            Problem::DpopInvalid => "Invalid DPoP Proof",
            Problem::BindingMismatch => "DPoP Key Mismatch",
            Problem::TokenNotDpopBound => "Token Not DPoP Bound",
            Problem::TokenInvalid => "Invalid or Expired Token",
            Problem::UseDpopNonce => "DPoP Nonce Required",
            Problem::ReplayCheckUnavailable => "Replay Check Unavailable",
            Problem::DpopCheckUnavailable => "DPoP Check Unavailable",
            Problem::TokenCheckUnavailable => "Token Check Unavailable",
        }
    }
    pub fn status(self) -> u32 {
        match self {
            Problem::ReplayCheckUnavailable
            | Problem::DpopCheckUnavailable
            | Problem::TokenCheckUnavailable => 503,
            _ => 401,
        }
    }
}

macro_rules! deny_reasons {
    ($( $(#[$doc:meta])* $name:ident => ($problem:ident, $stat:literal, $error:expr, $detail:literal), )*) => {
        /// Why a request was refused. Closed: adding one means adding its slug, stat and detail.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DenyReason { $( $(#[$doc])* $name, )* }

        impl DenyReason {
            pub const ALL: &'static [DenyReason] = &[ $( DenyReason::$name, )* ];

            /// Position in [`DenyReason::ALL`] (per-reason counters are kept in that order).
            pub fn index(self) -> usize {
                self as usize
            }

            pub fn problem(self) -> Problem {
                match self { $( DenyReason::$name => Problem::$problem, )* }
            }
            /// Stats suffix: `dpop_guard.denied.<stat_name>`.
            pub fn stat_name(self) -> &'static str {
                match self { $( DenyReason::$name => $stat, )* }
            }
            /// The `error=` of the `WWW-Authenticate: DPoP` challenge, if any.
            pub fn error_code(self) -> Option<&'static str> {
                match self { $( DenyReason::$name => $error, )* }
            }
            /// Problem `detail` and challenge `error_description`: fixed text, no client input.
            pub fn detail(self) -> &'static str {
                match self { $( DenyReason::$name => $detail, )* }
            }
        }
    };
}

const INVALID_PROOF: Option<&str> = Some("invalid_dpop_proof");
const INVALID_TOKEN: Option<&str> = Some("invalid_token");

deny_reasons! {
    /// No `DPoP` header where a proof is required.
    ProofMissing => (DpopRequired, "proof_missing", None, "DPoP proof required"),
    /// A DPoP-bound token (`cnf.jkt`) presented without a proof: a downgrade attempt.
    BoundTokenWithoutProof => (DpopRequired, "bound_token_without_proof", INVALID_TOKEN, "DPoP-bound access token presented without a DPoP proof"),
    /// More than one `DPoP` header (RFC 9449 §4.3 check 1).
    ProofMultiple => (DpopInvalid, "proof_multiple", INVALID_PROOF, "More than one DPoP header"),
    ProofTooLarge => (DpopInvalid, "proof_too_large", INVALID_PROOF, "DPoP proof exceeds the size limit"),
    ProofMalformed => (DpopInvalid, "proof_malformed", INVALID_PROOF, "DPoP proof is not a well-formed compact JWS"),
    ProofHeaderInvalid => (DpopInvalid, "proof_header_invalid", INVALID_PROOF, "DPoP proof header is not a valid JSON object"),
    ProofTypInvalid => (DpopInvalid, "proof_typ_invalid", INVALID_PROOF, "DPoP proof typ must be dpop+jwt"),
    ProofAlgMissing => (DpopInvalid, "proof_alg_missing", INVALID_PROOF, "DPoP proof alg missing"),
    /// `none`, HMAC, or an algorithm we do not implement.
    ProofAlgUnsupported => (DpopInvalid, "proof_alg_unsupported", INVALID_PROOF, "DPoP proof alg is not supported"),
    /// Implemented but not in the configured `algorithms`.
    ProofAlgNotAllowed => (DpopInvalid, "proof_alg_not_allowed", INVALID_PROOF, "DPoP proof alg is not allowed"),
    ProofCritUnsupported => (DpopInvalid, "proof_crit_unsupported", INVALID_PROOF, "DPoP proof uses unsupported critical header parameters"),
    ProofJwkMissing => (DpopInvalid, "proof_jwk_missing", INVALID_PROOF, "DPoP proof jwk missing"),
    ProofJwkInvalid => (DpopInvalid, "proof_jwk_invalid", INVALID_PROOF, "DPoP proof jwk is not a valid public key"),
    ProofJwkPrivate => (DpopInvalid, "proof_jwk_private", INVALID_PROOF, "DPoP proof jwk contains private key material"),
    ProofAlgKeyMismatch => (DpopInvalid, "proof_alg_key_mismatch", INVALID_PROOF, "DPoP proof alg does not match the jwk key type"),
    ProofSignatureInvalid => (DpopInvalid, "proof_signature_invalid", INVALID_PROOF, "DPoP proof signature is invalid"),
    ProofClaimsInvalid => (DpopInvalid, "proof_claims_invalid", INVALID_PROOF, "DPoP proof claims are not a valid JSON object"),
    ProofJtiMissing => (DpopInvalid, "proof_jti_missing", INVALID_PROOF, "DPoP proof jti missing"),
    ProofJtiInvalid => (DpopInvalid, "proof_jti_invalid", INVALID_PROOF, "DPoP proof jti is empty or too long"),
    ProofHtmMissing => (DpopInvalid, "proof_htm_missing", INVALID_PROOF, "DPoP proof htm missing"),
    ProofHtmMismatch => (DpopInvalid, "proof_htm_mismatch", INVALID_PROOF, "DPoP proof htm does not match the request method"),
    ProofHtuMissing => (DpopInvalid, "proof_htu_missing", INVALID_PROOF, "DPoP proof htu missing"),
    ProofHtuInvalid => (DpopInvalid, "proof_htu_invalid", INVALID_PROOF, "DPoP proof htu is not a valid http(s) URI"),
    ProofHtuMismatch => (DpopInvalid, "proof_htu_mismatch", INVALID_PROOF, "DPoP proof htu does not match the request URI"),
    ProofIatMissing => (DpopInvalid, "proof_iat_missing", INVALID_PROOF, "DPoP proof iat missing or not a number"),
    ProofIatTooOld => (DpopInvalid, "proof_iat_too_old", INVALID_PROOF, "DPoP proof is too old"),
    ProofIatInFuture => (DpopInvalid, "proof_iat_in_future", INVALID_PROOF, "DPoP proof iat is in the future"),
    ProofAthMissing => (DpopInvalid, "proof_ath_missing", INVALID_PROOF, "DPoP proof ath missing for a request with an access token"),
    ProofAthMismatch => (DpopInvalid, "proof_ath_mismatch", INVALID_PROOF, "DPoP proof ath does not match the access token"),
    ProofReplayed => (DpopInvalid, "proof_replayed", INVALID_PROOF, "DPoP jti already used (replay attack)"),
    NonceMissing => (UseDpopNonce, "nonce_missing", Some("use_dpop_nonce"), "Authorization server requires nonce in DPoP proof"),
    NonceInvalid => (UseDpopNonce, "nonce_invalid", Some("use_dpop_nonce"), "DPoP proof nonce is invalid or stale"),
    AuthorizationMultiple => (TokenInvalid, "authorization_multiple", INVALID_TOKEN, "More than one Authorization header"),
    AuthorizationMalformed => (TokenInvalid, "authorization_malformed", INVALID_TOKEN, "Authorization header is not a valid DPoP or Bearer credential"),
    TokenMissing => (DpopRequired, "token_missing", None, "Access token required"),
    TokenMalformed => (TokenInvalid, "token_malformed", INVALID_TOKEN, "Access token is not a well-formed JWT"),
    TokenSignatureInvalid => (TokenInvalid, "token_signature_invalid", INVALID_TOKEN, "Access token signature is invalid"),
    TokenAlgUnsupported => (TokenInvalid, "token_alg_unsupported", INVALID_TOKEN, "Access token alg is not accepted"),
    TokenKeyUnknown => (TokenInvalid, "token_key_unknown", INVALID_TOKEN, "Access token signing key is unknown"),
    TokenExpired => (TokenInvalid, "token_expired", INVALID_TOKEN, "Access token has expired"),
    TokenNotYetValid => (TokenInvalid, "token_not_yet_valid", INVALID_TOKEN, "Access token is not yet valid"),
    TokenIssuerInvalid => (TokenInvalid, "token_issuer_invalid", INVALID_TOKEN, "Access token issuer is not accepted"),
    TokenAudienceInvalid => (TokenInvalid, "token_audience_invalid", INVALID_TOKEN, "Access token audience is not accepted"),
    TokenCnfInvalid => (TokenInvalid, "token_cnf_invalid", INVALID_TOKEN, "Access token cnf claim is malformed"),
    /// Introspection: the authorization server says the token is not active (or its reply is
    /// not RFC 7662).
    TokenInactive => (TokenInvalid, "token_inactive", INVALID_TOKEN, "Access token is not active"),
    /// Introspection unreachable, timed out or failed, with `on_error: deny`.
    TokenCheckFailed => (TokenCheckUnavailable, "token_check_unavailable", None, "Token check service unavailable"),
    TokenNotBound => (TokenNotDpopBound, "token_not_bound", INVALID_TOKEN, "Access token is not DPoP-bound (no cnf.jkt)"),
    BindingMismatch => (BindingMismatch, "binding_mismatch", INVALID_TOKEN, "DPoP proof key does not match the access token cnf.jkt"),
    ReplayStoreFull => (ReplayCheckUnavailable, "replay_store_full", None, "Replay store is full; try again later"),
    ReplayCheckFailed => (ReplayCheckUnavailable, "replay_unavailable", None, "Replay check service unavailable"),
    /// The proxy refused a call the check needs (reading headers or metadata, setting the
    /// thumbprint header): the request is refused, never let through unchecked.
    HostCallFailed => (DpopCheckUnavailable, "host_error", None, "The proxy could not complete the DPoP check"),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn stat_names_unique_and_safe() {
        let mut seen = HashSet::new();
        for r in DenyReason::ALL {
            assert!(
                seen.insert(r.stat_name()),
                "duplicate stat {}",
                r.stat_name()
            );
            assert!(r
                .stat_name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!r.detail().contains('"'), "detail must be header-safe");
        }
        assert!(DenyReason::ALL.len() >= 30);
        for (i, r) in DenyReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
