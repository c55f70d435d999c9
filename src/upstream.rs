//! The upstream hand-off (README `upstream`): what an allowed request looks like when it
//! leaves the filter. The upstream always gets the verified thumbprint in
//! `forward_jkt_header`; these settings also drop the proof and turn a verified
//! `Authorization: DPoP <t>` into `Bearer <t>` for upstreams that only know Bearer.

use crate::config::reader::{ConfigError, Section};
use crate::token::{self, Scheme};

/// `upstream.authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorizationHandOff {
    /// Forward the Authorization header as the client sent it.
    #[default]
    Keep,
    /// `DPoP <t>` becomes `Bearer <t>` once the proof for `<t>` is verified.
    Bearer,
}

/// The `upstream` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamConfig {
    /// Remove the `DPoP` header from allowed requests.
    pub strip_dpop_header: bool,
    pub authorization: AuthorizationHandOff,
}

impl UpstreamConfig {
    /// The keys of the `upstream` section (README configuration table, `upstream.*`).
    pub const KEYS: &'static [&'static str] = &["strip_dpop_header", "authorization"];

    pub fn read(s: &Section<'_>) -> Result<UpstreamConfig, ConfigError> {
        s.only(Self::KEYS)?;
        Ok(UpstreamConfig {
            strip_dpop_header: s.bool("strip_dpop_header")?.unwrap_or(false),
            authorization: s
                .choice(
                    "authorization",
                    &[
                        ("keep", AuthorizationHandOff::Keep),
                        ("bearer", AuthorizationHandOff::Bearer),
                    ],
                )?
                .unwrap_or_default(),
        })
    }
}

/// Header edits for an allowed request, beyond the thumbprint header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamEdits {
    pub remove_dpop: bool,
    /// The new `Authorization` value, when it is rewritten.
    pub authorization: Option<String>,
}

/// The edits for a request allowed with a verified proof (`proof_verified`) and these
/// `Authorization` values. Without a verified proof nothing is rewritten: a `DPoP` credential
/// only becomes Bearer once its proof has been checked.
pub fn edits(cfg: &UpstreamConfig, proof_verified: bool, authorization: &[&[u8]]) -> UpstreamEdits {
    let authorization = match (cfg.authorization, proof_verified) {
        (AuthorizationHandOff::Bearer, true) => match token::extract(authorization) {
            Ok(Some(c)) if c.scheme == Scheme::DPoP => Some(format!("Bearer {}", c.token)),
            _ => None,
        },
        _ => None,
    };
    UpstreamEdits {
        remove_dpop: cfg.strip_dpop_header && proof_verified,
        authorization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEARER: UpstreamConfig = UpstreamConfig {
        strip_dpop_header: true,
        authorization: AuthorizationHandOff::Bearer,
    };

    #[test]
    fn dpop_credential_becomes_bearer_only_after_a_verified_proof() {
        let dpop: &[&[u8]] = &[b"DPoP abc.def.ghi"];
        let e = edits(&BEARER, true, dpop);
        assert_eq!(e.authorization.as_deref(), Some("Bearer abc.def.ghi"));
        assert!(e.remove_dpop);
        assert_eq!(edits(&BEARER, false, dpop), UpstreamEdits::default());
    }

    #[test]
    fn bearer_or_absent_or_odd_credentials_are_left_alone() {
        for values in [
            &[b"Bearer abc".as_slice()][..],
            &[],
            &[b"Basic dXNlcjpwYXNz".as_slice()],
            &[b"DPoP a".as_slice(), b"DPoP b".as_slice()],
        ] {
            assert_eq!(edits(&BEARER, true, values).authorization, None);
        }
    }

    #[test]
    fn defaults_keep_everything() {
        let e = edits(&UpstreamConfig::default(), true, &[b"DPoP abc"]);
        assert_eq!(e, UpstreamEdits::default());
    }
}
