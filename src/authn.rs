//! The per-request decision (README "How a request is checked"), pure: request facts in, [`Decision`] out. The host
//! glue gathers the facts, then applies the decision (local reply, replay check, headers).

use crate::config::{Config, OnError, RoutePolicy, RouteSettings, VerifyMode};
use crate::introspection::{self, IntrospectionView};
use crate::jose::{Alg, AlgSet};
use crate::nonce::{self, NonceCheck};
use crate::proof::{verify_proof_digested, KeyCache, RequestFacts};
use crate::reason::DenyReason;
use crate::routes::RouteMatch;
use crate::token::{self, Scheme};

/// What Envoy's jwt_authn left in dynamic metadata (only used in `jwt_authn` mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtAuthnView {
    /// jwt_authn verified a token and wrote its payload.
    pub payload_present: bool,
    /// `cnf.jkt` from that payload.
    pub jkt: Option<String>,
}

/// Request facts gathered by the host.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// `:authority`, used for route matching (its host).
    pub authority: &'a str,
    /// `:path` (with query), used for route matching and `instance`.
    pub path: &'a str,
    /// Target URI for `htu`: scheme://authority + path.
    pub uri: &'a str,
    /// All `DPoP` header values, as bytes (a value that is not UTF-8 is a malformed proof).
    pub dpop: &'a [&'a [u8]],
    /// All `Authorization` header values, as bytes.
    pub authorization: &'a [&'a [u8]],
    pub jwt_authn: Option<&'a JwtAuthnView>,
    /// `introspection` mode: the VM's cache of answers (and the answer just received).
    /// `None` in that mode: the token cannot be checked (`token-check-unavailable`).
    pub introspection: Option<IntrospectionView<'a>>,
    /// `keys` mode with `jwks_uri`: the keys fetched so far (`None`: none can be).
    pub remote_jwks: Option<&'a crate::jwks::RemoteJwks>,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Route is `off`: no checks.
    Pass,
    /// Continue upstream, after the replay check when `replay_key` is set.
    Allow {
        jkt: Option<String>,
        /// The verified proof's algorithm (with `jkt`).
        alg: Option<Alg>,
        replay_key: Option<String>,
        /// Seconds the replay entry must live ([`Config::replay_ttl`]); 0 without a key.
        replay_ttl: i64,
    },
    Deny(DenyReason),
    /// An RFC 9728 metadata request (README "Discovery"): answer 200 with this JSON document.
    Metadata(String),
    /// `introspection` mode: ask the authorization server about this token, then decide again
    /// with its answer ([`IntrospectionView::fresh`]).
    Introspect(String),
    /// `keys` mode with `jwks_uri`: the token's `kid` is unknown; fetch the JWKS, then decide
    /// again.
    RefreshJwks,
}

/// The request's target URI for the `htu` check, for a request with this method, authority
/// and path (no query): the matching route's `public_origin` (with its path prefix) + path when
/// configured, else [`request_origin`] + path.
pub fn target_uri(
    cfg: &Config,
    method: &str,
    scheme: Option<&str>,
    forwarded_proto: Option<&str>,
    authority: &str,
    path: &str,
) -> String {
    let route = cfg.routes.lookup(authority, method, path);
    target_uri_for(
        cfg,
        route.settings,
        scheme,
        forwarded_proto,
        authority,
        path,
    )
}

/// [`target_uri`] for a route already looked up.
pub fn target_uri_for(
    cfg: &Config,
    settings: &RouteSettings,
    scheme: Option<&str>,
    forwarded_proto: Option<&str>,
    authority: &str,
    path: &str,
) -> String {
    match &settings.public_origin {
        Some(origin) => format!("{}{path}", origin.base()),
        None => format!(
            "{}{path}",
            request_origin(cfg, scheme, forwarded_proto, authority)
        ),
    }
}

/// `scheme://authority` as this proxy received the request: `:scheme` (or the first
/// `x-forwarded-proto` value, only when `trust_forwarded_proto`) and `:authority`.
pub fn request_origin(
    cfg: &Config,
    scheme: Option<&str>,
    forwarded_proto: Option<&str>,
    authority: &str,
) -> String {
    let forwarded = forwarded_proto
        .filter(|_| cfg.trust_forwarded_proto)
        .and_then(|p| p.split(',').next())
        .map(|p| p.trim().to_ascii_lowercase());
    match forwarded {
        Some(scheme) => format!("{scheme}://{authority}"),
        None => format!("{}://{authority}", scheme.unwrap_or("http")),
    }
}

/// Path without query or fragment (route matching, problem `instance`).
pub fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

pub fn decide(cfg: &Config, req: &Request<'_>) -> Decision {
    decide_cached(cfg, req, &mut KeyCache::disabled())
}

/// [`decide`] with the VM's cache of validated proof headers (made for this `cfg`).
pub fn decide_cached(cfg: &Config, req: &Request<'_>, cache: &mut KeyCache) -> Decision {
    let route = cfg.routes.lookup(req.authority, req.method, req.path);
    check_cached(cfg, req, route, None, cache).decision
}

/// A decision and what the response needs from the route it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    /// The route is in shadow mode (README "Shadow mode").
    pub shadow: bool,
    /// `DPoP-Nonce` for the response: a fresh nonce with `use_dpop_nonce`, or the next one for
    /// an allowed request whose nonce is about to run out (README "Nonces").
    pub nonce: Option<String>,
    /// The route's algorithms, for the challenge's `algs`.
    pub algorithms: AlgSet,
    /// RFC 9728 metadata URL for the challenge's `resource_metadata` (when configured).
    pub resource_metadata: Option<String>,
    /// The token's introspection answer came from the VM's cache.
    pub introspection_cache_hit: bool,
}

/// What the decision noted on the way, for the response and the stats.
#[derive(Debug, Default)]
struct Notes {
    nonce: Option<String>,
    introspection_cache_hit: bool,
}

fn check_cached(
    cfg: &Config,
    req: &Request<'_>,
    route: RouteMatch<'_>,
    request_origin: Option<&str>,
    cache: &mut KeyCache,
) -> Checked {
    let mut notes = Notes::default();
    let decision = match decide_inner(cfg, req, route, cache, &mut notes) {
        Ok(d) => d,
        Err(r) => Decision::Deny(r),
    };
    let resource_metadata = match (&cfg.resource_metadata, request_origin) {
        (Some(md), Some(origin)) => crate::metadata::url(md, route.settings, origin),
        _ => None,
    };
    Checked {
        decision,
        shadow: route.shadow,
        nonce: notes.nonce,
        algorithms: route.settings.proof.algorithms,
        resource_metadata,
        introspection_cache_hit: notes.introspection_cache_hit,
    }
}

fn decide_inner(
    cfg: &Config,
    req: &Request<'_>,
    route: RouteMatch<'_>,
    cache: &mut KeyCache,
    notes: &mut Notes,
) -> Result<Decision, DenyReason> {
    use DenyReason as R;
    let policy = route.policy;
    let settings = route.settings;
    if policy == RoutePolicy::Off {
        return Ok(Decision::Pass);
    }
    let proof = match req.dpop {
        [] => None,
        // a comma: several proofs joined into one value by a proxy on the way
        [p] if p.contains(&b',') => return Err(R::ProofMultiple),
        [p] => Some(std::str::from_utf8(p).map_err(|_| R::ProofMalformed)?),
        _ => return Err(R::ProofMultiple),
    };

    // jwt_authn mode: jwt_authn's dynamic metadata is the truth. It finds a token wherever its
    // own extraction rules do (another header, a query parameter, `X Bearer <t>`); if it verified
    // one, the filter treats that token as presented, whatever the Authorization header says.
    let jwt_authn_token = match (cfg.access_token.verify, req.jwt_authn) {
        (VerifyMode::JwtAuthn, Some(v)) if v.payload_present => Some(v.jkt.clone()),
        _ => None,
    };

    // Token endpoint: a proof and nothing else; the jkt goes upstream for binding at issuance.
    let credential = if policy == RoutePolicy::ProofOnly {
        None
    } else {
        token::extract(req.authorization)?
    };

    // introspection with `on_error: allow` and no answer: the binding cannot be checked
    let mut binding_unchecked = false;
    // SHA-256 of the token when introspection computed it (its cache key): reused for `ath`
    let mut token_digest: Option<[u8; 32]> = None;
    let token_jkt: Option<String> = match credential {
        None => jwt_authn_token.clone().flatten(),
        Some(c) => match cfg.access_token.verify {
            VerifyMode::Upstream => token::inspect_unverified(c.token)?.jkt,
            VerifyMode::Keys => {
                let remote = req.remote_jwks.map_or(&[][..], |r| r.keys.as_slice());
                match token::verify(
                    c.token,
                    &cfg.access_token,
                    remote,
                    req.now,
                    settings.proof.clock_skew,
                ) {
                    Ok(info) => info.jkt,
                    Err(R::TokenKeyUnknown) if cfg.access_token.jwks_uri.is_some() => {
                        return match req.remote_jwks {
                            // nothing fetched yet: the check cannot be made
                            Some(r) if r.fetched_at.is_none() => Err(R::TokenCheckFailed),
                            None => Err(R::TokenCheckFailed),
                            Some(r) if r.may_refresh_for_unknown_kid(req.now) => {
                                Ok(Decision::RefreshJwks)
                            }
                            Some(_) => Err(R::TokenKeyUnknown),
                        };
                    }
                    Err(e) => return Err(e),
                }
            }
            VerifyMode::JwtAuthn => match req.jwt_authn {
                Some(v) if v.payload_present => v.jkt.clone(),
                // jwt_authn (allow_missing_or_failed) let a token through that it did not verify
                _ => return Err(R::TokenSignatureInvalid),
            },
            VerifyMode::Introspection => {
                let Some(view) = &req.introspection else {
                    return Err(R::TokenCheckFailed);
                };
                let digest = token_digest.insert(introspection::token_hash(c.token));
                let answer = introspection::lookup_digest(view, digest, req.now);
                notes.introspection_cache_hit = answer.is_some() && view.fresh.is_none();
                match answer {
                    None => return Ok(Decision::Introspect(c.token.to_owned())),
                    Some(introspection::Answer::Active { jkt, .. }) => jkt,
                    Some(introspection::Answer::Inactive) => return Err(R::TokenInactive),
                    Some(introspection::Answer::Unavailable) => {
                        let on_error = cfg
                            .access_token
                            .introspection
                            .as_ref()
                            .map_or(OnError::Deny, |i| i.on_error);
                        if on_error == OnError::Deny {
                            return Err(R::TokenCheckFailed);
                        }
                        binding_unchecked = true;
                        None
                    }
                }
            }
        },
    };

    let Some(proof) = proof else {
        if token_jkt.is_some() {
            return Err(R::BoundTokenWithoutProof);
        }
        return match policy {
            RoutePolicy::Required | RoutePolicy::ProofOnly => Err(R::ProofMissing),
            // A DPoP-scheme credential without a proof is malformed DPoP usage (RFC 9449 §7.1).
            RoutePolicy::Optional if credential.map(|c| c.scheme) == Some(Scheme::DPoP) => {
                Err(R::ProofMissing)
            }
            _ => Ok(Decision::Allow {
                jkt: None,
                alg: None,
                replay_key: None,
                replay_ttl: 0,
            }),
        };
    };

    crate::stage::mark("a.token");
    let facts = RequestFacts {
        method: req.method,
        uri: req.uri,
        access_token: credential.map(|c| c.token),
        now: req.now,
    };
    let verified =
        verify_proof_digested(proof, &facts, &settings.proof, cache, token_digest.as_ref())?;

    // A token is presented when the header carried one, or (jwt_authn mode) when jwt_authn
    // verified one from wherever it looked.
    let presented_scheme = match (credential, &jwt_authn_token) {
        (Some(c), _) => Some(Some(c.scheme)),
        (None, Some(_)) => Some(None),
        (None, None) => None,
    };
    if let Some(scheme) = presented_scheme {
        match &token_jkt {
            Some(jkt) if *jkt != verified.jkt => return Err(R::BindingMismatch),
            Some(_) => {}
            None if binding_unchecked => {}
            // `Authorization: DPoP` with an unbound token is malformed DPoP usage on every
            // route; on a `required` route a Bearer-scheme token must be bound too unless
            // `require_bound_token` is false (a proof on every request, binding where it exists).
            None if (policy == RoutePolicy::Required && route.require_bound_token)
                || scheme == Some(Scheme::DPoP) =>
            {
                return Err(R::TokenNotBound)
            }
            None => {}
        }
    }

    if let Some(ncfg) = cfg.nonce.as_ref().filter(|_| settings.nonce) {
        let refused = match &verified.nonce {
            None => Some(R::NonceMissing),
            Some(n) => match nonce::check(ncfg, n, &verified.jkt, req.now) {
                NonceCheck::Invalid => Some(R::NonceInvalid),
                NonceCheck::Valid { refresh } => {
                    notes.nonce = refresh;
                    None
                }
            },
        };
        if let Some(reason) = refused {
            notes.nonce = Some(nonce::issue(ncfg, &verified.jkt, req.now));
            return Err(reason);
        }
    }

    let (replay_key, replay_ttl) = match cfg.replay {
        crate::config::ReplayConfig::Off => (None, 0),
        _ => (
            Some(verified.replay_key),
            crate::config::replay_ttl(settings.proof.proof_ttl, verified.iat, req.now),
        ),
    };
    Ok(Decision::Allow {
        jkt: Some(verified.jkt),
        alg: Some(verified.alg),
        replay_key,
        replay_ttl,
    })
}

/// The whole pure pipeline from the host's header pairs: gather the facts
/// ([`crate::headers::gather`]), build the `htu` target URI, decide. The glue does exactly this
/// (with its cache); the host-emulator tests compare the built wasm against it.
pub fn decide_headers(
    cfg: &Config,
    headers: &[(&[u8], &[u8])],
    jwt_authn: Option<&JwtAuthnView>,
    now: i64,
) -> Decision {
    decide_headers_cached(cfg, headers, jwt_authn, now, &mut KeyCache::disabled())
}

/// [`decide_headers`] with the VM's cache of validated proof headers.
pub fn decide_headers_cached(
    cfg: &Config,
    headers: &[(&[u8], &[u8])],
    jwt_authn: Option<&JwtAuthnView>,
    now: i64,
    cache: &mut KeyCache,
) -> Decision {
    let h = crate::headers::gather(headers, &cfg.forward_jkt_header);
    decide_gathered(cfg, &h, jwt_authn, now, cache)
}

/// [`decide_headers_cached`] on facts already gathered.
pub fn decide_gathered(
    cfg: &Config,
    h: &crate::headers::RequestHeaders<'_>,
    jwt_authn: Option<&JwtAuthnView>,
    now: i64,
    cache: &mut KeyCache,
) -> Decision {
    check_gathered(cfg, h, jwt_authn, None, None, now, cache).decision
}

/// [`decide_gathered`] with what the response needs (shadow mode, nonce, challenge): what the
/// glue calls.
pub fn check_gathered(
    cfg: &Config,
    h: &crate::headers::RequestHeaders<'_>,
    jwt_authn: Option<&JwtAuthnView>,
    introspection: Option<IntrospectionView<'_>>,
    remote_jwks: Option<&crate::jwks::RemoteJwks>,
    now: i64,
    cache: &mut KeyCache,
) -> Checked {
    if !cfg.enabled {
        return Checked {
            decision: Decision::Pass,
            shadow: false,
            nonce: None,
            algorithms: cfg.proof.algorithms,
            resource_metadata: None,
            introspection_cache_hit: false,
        };
    }
    let path = path_only(h.path);
    // The request's own origin is only needed for RFC 9728 (a route without a public origin
    // names the request's origin as its resource): no allocation otherwise.
    let origin = cfg
        .resource_metadata
        .as_ref()
        .map(|_| request_origin(cfg, h.scheme, h.forwarded_proto, h.authority));
    if let (Some(md), Some(origin), "GET") = (&cfg.resource_metadata, &origin, h.method) {
        if let Some(doc) = crate::metadata::document(md, &cfg.routes, h.authority, origin, path) {
            return Checked {
                decision: Decision::Metadata(doc),
                shadow: false,
                nonce: None,
                algorithms: cfg.proof.algorithms,
                resource_metadata: None,
                introspection_cache_hit: false,
            };
        }
    }
    let route = cfg.routes.lookup(h.authority, h.method, h.path);
    let uri = target_uri_for(
        cfg,
        route.settings,
        h.scheme,
        h.forwarded_proto,
        h.authority,
        path,
    );
    let jwt_authn = jwt_authn.filter(|_| cfg.access_token.verify == VerifyMode::JwtAuthn);
    crate::stage::mark("a.route_uri");
    let req = Request {
        method: h.method,
        authority: h.authority,
        path: h.path,
        uri: &uri,
        dpop: &h.dpop,
        authorization: &h.authorization,
        jwt_authn,
        introspection,
        remote_jwks,
        now,
    };
    check_cached(cfg, &req, route, origin.as_deref(), cache)
}
