//! The closed set of JWS algorithms we verify. The token never picks the verification path:
//! the algorithm must be allowed by configuration *and* match the key type before any crypto.

/// A JWS signature algorithm this crate can verify. `none` and HMAC are deliberately absent
/// from proofs (a proof signed with a shared secret proves possession of nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    EdDSA,
    ES256,
    ES384,
    RS256,
    PS256,
}

impl Alg {
    pub const ALL: [Alg; 5] = [Alg::EdDSA, Alg::ES256, Alg::ES384, Alg::RS256, Alg::PS256];

    /// The algorithm a JWS `alg` names. `Ed25519` (RFC 9864's fully-specified name, sent by
    /// e.g. oauth4webapi) is EdDSA over Ed25519, the only EdDSA curve we verify.
    pub fn from_name(name: &str) -> Option<Alg> {
        if name == "Ed25519" {
            return Some(Alg::EdDSA);
        }
        Alg::ALL.iter().copied().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Alg::EdDSA => 1,
            Alg::ES256 => 2,
            Alg::ES384 => 4,
            Alg::RS256 => 8,
            Alg::PS256 => 16,
        }
    }
}

/// A small set of algorithms (the configured allow-list), ordered as [`Alg::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgSet(u8);

impl AlgSet {
    pub fn empty() -> Self {
        AlgSet(0)
    }
    pub fn with(self, alg: Alg) -> Self {
        AlgSet(self.0 | alg.bit())
    }
    pub fn contains(self, alg: Alg) -> bool {
        self.0 & alg.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Alg> {
        Alg::ALL.into_iter().filter(move |a| self.contains(*a))
    }
    /// Space-separated names, for `WWW-Authenticate: DPoP algs="..."`.
    pub fn names(self) -> String {
        self.iter().map(Alg::name).collect::<Vec<_>>().join(" ")
    }
}

impl FromIterator<Alg> for AlgSet {
    fn from_iter<I: IntoIterator<Item = Alg>>(iter: I) -> Self {
        iter.into_iter().fold(AlgSet::empty(), AlgSet::with)
    }
}
