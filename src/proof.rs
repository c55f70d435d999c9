//! The DPoP proof check (RFC 9449 §4.2–4.3), pure: the caller supplies the request facts and
//! the current time; the result carries what the replay store and the binding check need.

use crate::b64;
use crate::htu;
use crate::jose::jws;
use crate::jose::{Alg, AlgSet, JwkError, JwsError, PublicJwk};
use crate::json::{parse_object, Json, Object};
use crate::reason::DenyReason;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// RFC 9449 leaves `jti` length open; we cap it so a proof cannot make us hash megabytes.
pub const MAX_JTI_BYTES: usize = 256;

/// Policy knobs from the plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPolicy {
    pub algorithms: AlgSet,
    /// Max age of `iat`, seconds.
    pub proof_ttl: i64,
    /// Max `iat` in the future, seconds.
    pub clock_skew: i64,
    pub max_proof_bytes: usize,
    /// A proof presented with an access token must carry `ath`.
    pub require_ath: bool,
}

impl Default for ProofPolicy {
    fn default() -> Self {
        ProofPolicy {
            algorithms: [Alg::EdDSA, Alg::ES256, Alg::RS256].into_iter().collect(),
            proof_ttl: 120,
            clock_skew: 60,
            max_proof_bytes: 8192,
            require_ath: true,
        }
    }
}

/// The facts about the HTTP request the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `:method`, compared case-sensitively with `htm`.
    pub method: &'a str,
    /// The target URI as the server sees it (scheme://authority/path; a query is ignored).
    pub uri: &'a str,
    /// The access token sent with the request, if any (exact bytes, for `ath`).
    pub access_token: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    pub alg: Alg,
    /// RFC 7638 thumbprint of the proof key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The `nonce` claim, when present.
    pub nonce: Option<String>,
    /// Replay key (README "Replay service"): `dpop:jti:` + base64url(SHA-256(jkt + "." + jti)).
    pub replay_key: String,
}

/// The replay key (README "Replay service"; defined once in the `replay-wire` crate).
pub use replay_wire::replay_key;

/// `ath` value for a token: base64url(SHA-256(ASCII(token))).
pub fn ath_for(token: &str) -> String {
    b64::encode(&Sha256::digest(token.as_bytes()))
}

/// A protected header that passed every header check: what the signature is checked with.
#[derive(Debug)]
pub struct ProofHeader {
    pub alg: Alg,
    pub jwk: PublicJwk,
    /// RFC 7638 thumbprint of `jwk`, computed once.
    pub jkt: String,
}

/// Header segments longer than this are verified but not cached (bounds the cache's memory:
/// an RSA-4096 JWK header is about 1 KiB of base64url).
pub const MAX_CACHED_HEADER: usize = 2048;

/// Per-VM cache of validated proof headers. A DPoP client signs every proof with one key, so
/// its protected header (typ, alg, jwk) repeats byte for byte: the cache skips the header's
/// JSON parsing, JWK validation, point decoding, key preparation and thumbprint. The signature
/// is still verified on every proof. Bounded (`capacity` entries, FIFO eviction); only headers
/// that passed every check under the policy the cache was made for are stored.
#[derive(Debug)]
pub struct KeyCache {
    // BTreeMap, not HashMap: std's HashMap seeds itself from the host's random_get, and a
    // host that refuses it would make the constructor panic.
    map: BTreeMap<String, Rc<ProofHeader>>,
    order: VecDeque<String>,
    capacity: usize,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            map: BTreeMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// A cache that stores nothing.
    pub fn disabled() -> Self {
        KeyCache::new(0)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn get(&self, header_b64: &str) -> Option<Rc<ProofHeader>> {
        self.map.get(header_b64).cloned()
    }

    fn insert(&mut self, header_b64: &str, header: Rc<ProofHeader>) {
        if self.capacity == 0 || header_b64.len() > MAX_CACHED_HEADER {
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(header_b64.to_owned());
        self.map.insert(header_b64.to_owned(), header);
    }
}

/// Checks a decoded protected header (RFC 9449 §4.3 checks 3–6) under `policy`.
pub fn check_header(header: &Object, policy: &ProofPolicy) -> Result<ProofHeader, DenyReason> {
    use DenyReason as R;
    // typ (§4.2): a media type, compared case-insensitively; RFC 7515 §4.1.9 lets the
    // "application/" prefix be omitted, so both spellings name the same type.
    match header.str("typ") {
        Ok(Some(t)) => {
            let t = t
                .get(..12)
                .filter(|p| p.eq_ignore_ascii_case("application/"))
                .map_or(t, |_| t.get(12..).unwrap_or(""));
            if !t.eq_ignore_ascii_case("dpop+jwt") {
                return Err(R::ProofTypInvalid);
            }
        }
        _ => return Err(R::ProofTypInvalid),
    }
    let alg_name = header
        .str("alg")
        .map_err(|_| R::ProofAlgMissing)?
        .ok_or(R::ProofAlgMissing)?;
    let alg = Alg::from_name(alg_name).ok_or(R::ProofAlgUnsupported)?;
    if !policy.algorithms.contains(alg) {
        return Err(R::ProofAlgNotAllowed);
    }
    if header.contains("crit") {
        return Err(R::ProofCritUnsupported);
    }
    let jwk = match header.get("jwk") {
        None => return Err(R::ProofJwkMissing),
        Some(Json::Object(o)) => PublicJwk::from_object(o).map_err(|e| match e {
            JwkError::Private => R::ProofJwkPrivate,
            JwkError::Invalid => R::ProofJwkInvalid,
        })?,
        Some(_) => return Err(R::ProofJwkInvalid),
    };
    // The key type decides which algorithms are possible; checked before any crypto.
    if !jwk.accepts(alg) {
        return Err(R::ProofAlgKeyMismatch);
    }
    if let Ok(Some(jwk_alg)) = jwk_alg(header) {
        if Alg::from_name(jwk_alg) != Some(alg) {
            return Err(R::ProofAlgKeyMismatch);
        }
    }
    let jkt = jwk.thumbprint();
    Ok(ProofHeader { alg, jwk, jkt })
}

/// Verifies one DPoP proof (the caller has already ensured there is exactly one).
pub fn verify_proof(
    proof: &str,
    req: &RequestFacts<'_>,
    policy: &ProofPolicy,
) -> Result<VerifiedProof, DenyReason> {
    verify_proof_cached(proof, req, policy, &mut KeyCache::disabled())
}

/// [`verify_proof`] with a cache of validated headers (one per VM and configuration).
pub fn verify_proof_cached(
    proof: &str,
    req: &RequestFacts<'_>,
    policy: &ProofPolicy,
    cache: &mut KeyCache,
) -> Result<VerifiedProof, DenyReason> {
    verify_proof_digested(proof, req, policy, cache, None)
}

/// [`verify_proof_cached`] given SHA-256 of `req.access_token` when the caller already has it
/// (introspection keys its cache by that digest): one SHA-256 of a token costs ≈ 3.5 µs in V8.
/// `token_sha256` must be the digest of exactly `req.access_token`.
pub fn verify_proof_digested(
    proof: &str,
    req: &RequestFacts<'_>,
    policy: &ProofPolicy,
    cache: &mut KeyCache,
    token_sha256: Option<&[u8; 32]>,
) -> Result<VerifiedProof, DenyReason> {
    use DenyReason as R;
    let (h, p, s) = jws::split(proof, policy.max_proof_bytes).map_err(|e| match e {
        JwsError::TooLarge => R::ProofTooLarge,
        JwsError::Malformed | JwsError::HeaderJson => R::ProofMalformed,
    })?;
    let cached = cache.get(h);
    crate::stage::mark("p.split+cache");
    let header_bytes = match cached {
        Some(_) => None,
        None => Some(b64::decode(h).ok_or(R::ProofMalformed)?),
    };
    let payload = b64::decode(p).ok_or(R::ProofMalformed)?;
    let signature = b64::decode(s).ok_or(R::ProofMalformed)?;
    crate::stage::mark("p.b64");
    let header = match (cached, header_bytes) {
        // Cached under the algorithms of the route that first saw it: routes may allow fewer.
        (Some(hdr), _) if !policy.algorithms.contains(hdr.alg) => {
            return Err(R::ProofAlgNotAllowed)
        }
        (Some(hdr), _) => hdr,
        (None, bytes) => {
            let object = parse_object(&bytes.unwrap_or_default()).ok_or(R::ProofHeaderInvalid)?;
            let hdr = Rc::new(check_header(&object, policy)?);
            cache.insert(h, hdr.clone());
            hdr
        }
    };
    crate::stage::mark("p.header");
    let signing_input = proof
        .get(..h.len() + 1 + p.len())
        .ok_or(R::ProofMalformed)?;
    if !header
        .jwk
        .verify(header.alg, signing_input.as_bytes(), &signature)
    {
        return Err(R::ProofSignatureInvalid);
    }
    let alg = header.alg;
    crate::stage::mark("p.signature");

    let claims = parse_object(&payload).ok_or(R::ProofClaimsInvalid)?;
    crate::stage::mark("p.claims_json");
    let jti = match claims.str("jti") {
        Ok(Some(j)) if !j.is_empty() && j.len() <= MAX_JTI_BYTES => j,
        Ok(Some(_)) | Err(crate::json::WrongType) => return Err(R::ProofJtiInvalid),
        Ok(None) => return Err(R::ProofJtiMissing),
    };
    match claims.str("htm") {
        Ok(Some(m)) if m == req.method => {}
        Ok(Some(_)) | Err(crate::json::WrongType) => return Err(R::ProofHtmMismatch),
        Ok(None) => return Err(R::ProofHtmMissing),
    }
    match claims.str("htu") {
        Ok(Some(u)) => match htu::normalize(u) {
            None => return Err(R::ProofHtuInvalid),
            // A client normally sends the very URI the server computes: normalization is a
            // function of the bytes, so equal bytes need only the one (validity) above.
            Some(_) if u == req.uri => {}
            Some(claim) => {
                if htu::normalize(req.uri).as_deref() != Some(claim.as_str()) {
                    return Err(R::ProofHtuMismatch);
                }
            }
        },
        Err(crate::json::WrongType) => return Err(R::ProofHtuInvalid),
        Ok(None) => return Err(R::ProofHtuMissing),
    }
    crate::stage::mark("p.jti_htm_htu");
    let iat = claims
        .numeric_date("iat")
        .map_err(|_| R::ProofIatMissing)?
        .ok_or(R::ProofIatMissing)?;
    if iat < req.now.saturating_sub(policy.proof_ttl) {
        return Err(R::ProofIatTooOld);
    }
    if iat > req.now.saturating_add(policy.clock_skew) {
        return Err(R::ProofIatInFuture);
    }
    if let Some(token) = req.access_token {
        match claims.str("ath") {
            Ok(Some(ath)) => {
                let want = match token_sha256 {
                    Some(digest) => b64::encode(digest),
                    None => ath_for(token),
                };
                if ath != want {
                    return Err(R::ProofAthMismatch);
                }
            }
            Ok(None) if !policy.require_ath => {}
            Ok(None) => return Err(R::ProofAthMissing),
            Err(crate::json::WrongType) => return Err(R::ProofAthMismatch),
        }
    }
    let nonce = match claims.str("nonce") {
        Ok(n) => n.map(str::to_owned),
        Err(crate::json::WrongType) => return Err(R::NonceInvalid),
    };
    let jkt = header.jkt.clone();
    crate::stage::mark("p.iat_ath_nonce");
    let replay_key = replay_key(&jkt, jti);
    crate::stage::mark("p.replay_key");
    Ok(VerifiedProof {
        alg,
        jkt,
        jti: jti.to_owned(),
        iat,
        nonce,
        replay_key,
    })
}

fn jwk_alg(header: &Object) -> Result<Option<&str>, crate::json::WrongType> {
    match header.get("jwk") {
        Some(Json::Object(o)) => o.str("alg"),
        _ => Ok(None),
    }
}
