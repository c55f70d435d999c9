//! Access tokens (README "Configuration reference", `access_token`): `Authorization` extraction, and reading `cnf.jkt` from a JWT either
//! after verifying it here (`keys`) or without verification (`upstream`, the upstream verifies).

use crate::config::reader::{err, ConfigError, Section};
use crate::jose::{Alg, CompactJws, JwsError, PublicJwk};
use crate::json::{parse_object, Json, Object};
use crate::reason::DenyReason;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Who vouches for the access token whose `cnf.jkt` is checked (README `access_token.verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The filter reads the payload only; the upstream verifies the token.
    Upstream,
    /// The filter verifies the token with configured keys.
    Keys,
    /// Envoy's jwt_authn (or Istio RequestAuthentication) verified it; its metadata is read.
    JwtAuthn,
    /// The authorization server says (RFC 7662 introspection, [`crate::introspection`]).
    Introspection,
}

/// The `access_token` section.
#[derive(Debug, Clone)]
pub struct AccessTokenConfig {
    pub verify: VerifyMode,
    pub hs256_secret: Option<Vec<u8>>,
    /// `(kid, key)`; a key without `kid` matches tokens without one.
    pub jwks: Vec<(Option<String>, PublicJwk)>,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub metadata_namespace: String,
    pub payload_key: String,
    /// `introspection` mode's settings.
    pub introspection: Option<crate::introspection::IntrospectionConfig>,
    /// `keys` mode: a JWKS URI fetched by the filter ([`crate::jwks`]).
    pub jwks_uri: Option<crate::jwks::JwksSource>,
}

impl AccessTokenConfig {
    /// The section's keys (README configuration table, `access_token.*`).
    pub const KEYS: &'static [&'static str] = &[
        "verify",
        "hs256_secret",
        "jwks",
        "issuer",
        "audiences",
        "metadata_namespace",
        "payload_key",
        "introspection",
        "jwks_uri",
        "jwks_cluster",
        "jwks_authority",
        "jwks_refresh_seconds",
    ];

    /// Reads and validates the `access_token` section (absent: all defaults).
    pub fn read(s: &Section<'_>) -> Result<AccessTokenConfig, ConfigError> {
        s.only(Self::KEYS)?;
        let verify = s
            .choice(
                "verify",
                &[
                    ("upstream", VerifyMode::Upstream),
                    ("keys", VerifyMode::Keys),
                    ("jwt_authn", VerifyMode::JwtAuthn),
                    ("introspection", VerifyMode::Introspection),
                ],
            )?
            .unwrap_or(VerifyMode::Upstream);
        let hs256_secret = match s.string("hs256_secret")? {
            None => None,
            Some(v) if v.len() < 32 => {
                return err(
                    &s.key("hs256_secret"),
                    "must be at least 32 bytes (RFC 7518 §3.2)",
                )
            }
            Some(v) => Some(v.into_bytes()),
        };
        let jwks = match s.obj.get("jwks") {
            None => Vec::new(),
            Some(set) => read_jwks(&s.key("jwks"), set)?,
        };
        let jwks_uri = crate::jwks::JwksSource::read(s)?;
        let keyed = hs256_secret.is_some() || !jwks.is_empty() || jwks_uri.is_some();
        match verify {
            VerifyMode::Keys if !keyed => {
                return err(
                    &s.key("verify"),
                    "\"keys\" needs access_token.hs256_secret, access_token.jwks or access_token.jwks_uri",
                )
            }
            VerifyMode::Upstream | VerifyMode::JwtAuthn | VerifyMode::Introspection if keyed => {
                return err(
                    &s.key("verify"),
                    "hs256_secret/jwks/jwks_uri are only used with verify = \"keys\"",
                )
            }
            _ => {}
        }
        let introspection = match (verify, s.section("introspection")?) {
            (VerifyMode::Introspection, Some(sec)) => {
                Some(crate::introspection::IntrospectionConfig::read(&sec)?)
            }
            (VerifyMode::Introspection, None) => {
                return err(
                    &s.key("introspection"),
                    "is required when verify = \"introspection\" (at least its cluster)",
                )
            }
            (_, Some(_)) => {
                return err(
                    &s.key("introspection"),
                    "only applies to verify = \"introspection\"",
                )
            }
            (_, None) => None,
        };
        let non_empty = |name: &str, default: &str| match s.string(name)? {
            None => Ok(default.to_owned()),
            Some(v) if v.is_empty() => err(&s.key(name), "must not be empty"),
            Some(v) => Ok(v),
        };
        Ok(AccessTokenConfig {
            verify,
            hs256_secret,
            jwks,
            issuer: s.string("issuer")?,
            audiences: s.strings("audiences")?.unwrap_or_default(),
            metadata_namespace: non_empty("metadata_namespace", "envoy.filters.http.jwt_authn")?,
            payload_key: non_empty("payload_key", "payload")?,
            introspection,
            jwks_uri,
        })
    }
}

fn read_jwks(key: &str, set: &Json) -> Result<Vec<(Option<String>, PublicJwk)>, ConfigError> {
    let keys = match set {
        Json::Object(o) => match o.get("keys") {
            Some(Json::Array(keys)) => keys,
            _ => return err(key, "must be a JWKS object {\"keys\": [...]}"),
        },
        _ => return err(key, "must be a JWKS object {\"keys\": [...]}"),
    };
    let mut jwks = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let key = format!("{key}.keys[{i}]");
        let Json::Object(o) = k else {
            return err(&key, "must be a JWK object");
        };
        let jwk = PublicJwk::from_object(o).map_err(|e| ConfigError {
            key: key.clone(),
            message: format!("not a usable public key ({e:?})"),
        })?;
        let kid = o.str("kid").ok().flatten().map(str::to_owned);
        jwks.push((kid, jwk));
    }
    Ok(jwks)
}

/// Tokens longer than this are refused before decoding (Envoy's default header limit is 60 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    DPoP,
    Bearer,
}

/// The access token of a request and the scheme it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    pub scheme: Scheme,
    pub token: &'a str,
}

fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Does this value name the DPoP or Bearer scheme anywhere (any case)? Envoy's jwt_authn finds
/// its `value_prefix` ("Bearer ", "DPoP ") anywhere in the value, and upstream apps parse in
/// their own ways: a value that mentions either scheme but is not exactly one well-formed
/// credential is refused, never waved through as "another scheme".
fn mentions_dpop_or_bearer(value: &[u8]) -> bool {
    value.windows(4).any(|w| w.eq_ignore_ascii_case(b"dpop"))
        || value.windows(6).any(|w| w.eq_ignore_ascii_case(b"bearer"))
}

/// Reads the `Authorization` header values (raw bytes: a value that is not UTF-8 is not a
/// credential we can use).
///
/// - none → `Ok(None)`;
/// - more than one value, or one value with a comma (Envoy joins repeated `Authorization`
///   headers with `,`) that mentions DPoP or Bearer → `AuthorizationMultiple`;
/// - exactly `<scheme> SP <token68>` with scheme `DPoP`/`Bearer` (any case) → the credential.
///   One SP only: a tab, several spaces or trailing text make it malformed;
/// - any other value that mentions DPoP or Bearer → `AuthorizationMalformed`;
/// - another scheme (`Basic ...`) → `Ok(None)`, left to other filters.
pub fn extract<'a>(values: &[&'a [u8]]) -> Result<Option<Credential<'a>>, DenyReason> {
    let value = match values {
        [] => return Ok(None),
        [v] => v.trim_ascii(),
        _ => return Err(DenyReason::AuthorizationMultiple),
    };
    let mentions = mentions_dpop_or_bearer(value);
    if mentions && value.contains(&b',') {
        return Err(DenyReason::AuthorizationMultiple);
    }
    let Ok(value) = std::str::from_utf8(value) else {
        return Err(DenyReason::AuthorizationMalformed);
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::DPoP
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if mentions {
        return Err(DenyReason::AuthorizationMalformed);
    } else {
        return Ok(None);
    };
    if token.len() > MAX_TOKEN_BYTES || !is_token68(token) {
        return Err(DenyReason::AuthorizationMalformed);
    }
    Ok(Some(Credential { scheme, token }))
}

/// What the filter learned about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// `cnf.jkt` when the token is DPoP-bound.
    pub jkt: Option<String>,
}

fn cnf_jkt(claims: &Object) -> Result<Option<String>, DenyReason> {
    match claims.get("cnf") {
        None => Ok(None),
        Some(Json::Object(cnf)) => match cnf.str("jkt") {
            Ok(j) => Ok(j.map(str::to_owned)),
            Err(crate::json::WrongType) => Err(DenyReason::TokenCnfInvalid),
        },
        Some(_) => Err(DenyReason::TokenCnfInvalid),
    }
}

/// `upstream` mode: decode the payload only, for `cnf.jkt`. The signature is not checked here.
pub fn inspect_unverified(token: &str) -> Result<TokenInfo, DenyReason> {
    let jws = CompactJws::parse(token, MAX_TOKEN_BYTES).map_err(|_| DenyReason::TokenMalformed)?;
    let claims = parse_object(&jws.payload).ok_or(DenyReason::TokenMalformed)?;
    Ok(TokenInfo {
        jkt: cnf_jkt(&claims)?,
    })
}

/// `keys` mode: verify signature, `exp`/`nbf` (with `clock_skew`), issuer, audience.
pub fn verify(
    token: &str,
    cfg: &AccessTokenConfig,
    remote_keys: &[(Option<String>, PublicJwk)],
    now: i64,
    clock_skew: i64,
) -> Result<TokenInfo, DenyReason> {
    use DenyReason as R;
    let jws = CompactJws::parse(token, MAX_TOKEN_BYTES).map_err(|e| match e {
        JwsError::TooLarge | JwsError::Malformed | JwsError::HeaderJson => R::TokenMalformed,
    })?;
    let alg = jws
        .header
        .str("alg")
        .ok()
        .flatten()
        .ok_or(R::TokenMalformed)?;
    if jws.header.contains("crit") {
        return Err(R::TokenAlgUnsupported);
    }
    if alg == "HS256" {
        let secret = cfg.hs256_secret.as_deref().ok_or(R::TokenAlgUnsupported)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|_| R::TokenSignatureInvalid)?;
        mac.update(jws.signing_input.as_bytes());
        mac.verify_slice(&jws.signature)
            .map_err(|_| R::TokenSignatureInvalid)?;
    } else {
        // Asymmetric: the algorithm must be one we implement and match the selected key.
        let alg = Alg::from_name(alg).ok_or(R::TokenAlgUnsupported)?;
        let kid = jws.header.str("kid").map_err(|_| R::TokenMalformed)?;
        let mut candidates = cfg
            .jwks
            .iter()
            .chain(remote_keys)
            .filter(|(k, _)| kid.is_none() || k.as_deref() == kid)
            .filter(|(_, key)| key.accepts(alg))
            .take(4)
            .peekable();
        if candidates.peek().is_none() {
            return Err(R::TokenKeyUnknown);
        }
        if !candidates.any(|(_, key)| key.verify(alg, jws.signing_input.as_bytes(), &jws.signature))
        {
            return Err(R::TokenSignatureInvalid);
        }
    }
    let claims = parse_object(&jws.payload).ok_or(R::TokenMalformed)?;
    // RFC 9068 §2.2: JWT access tokens carry exp. A token without one never expires: refuse it.
    let exp = claims
        .numeric_date("exp")
        .ok()
        .flatten()
        .ok_or(R::TokenMalformed)?;
    if now > exp.saturating_add(clock_skew) {
        return Err(R::TokenExpired);
    }
    match claims.numeric_date("nbf") {
        Ok(None) => {}
        Ok(Some(nbf)) if nbf <= now.saturating_add(clock_skew) => {}
        Ok(Some(_)) => return Err(R::TokenNotYetValid),
        Err(crate::json::WrongType) => return Err(R::TokenMalformed),
    }
    if let Some(iss) = &cfg.issuer {
        if claims.str("iss") != Ok(Some(iss.as_str())) {
            return Err(R::TokenIssuerInvalid);
        }
    }
    if !cfg.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Json::Str(a)) => cfg.audiences.iter().any(|x| x == a),
            Some(Json::Array(list)) => list
                .iter()
                .any(|v| matches!(v, Json::Str(a) if cfg.audiences.iter().any(|x| x == a))),
            _ => false,
        };
        if !ok {
            return Err(R::TokenAudienceInvalid);
        }
    }
    Ok(TokenInfo {
        jkt: cnf_jkt(&claims)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(values: &[&str]) -> Result<Option<Credential<'static>>, DenyReason> {
        let v: Vec<&'static [u8]> = values
            .iter()
            .map(|s| &*Box::leak(s.as_bytes().to_vec().into_boxed_slice()))
            .collect();
        extract(&v)
    }

    #[test]
    fn extraction() {
        use DenyReason::{AuthorizationMalformed as Malformed, AuthorizationMultiple as Multiple};
        assert_eq!(ex(&[]), Ok(None));
        assert_eq!(
            ex(&["DPoP abc.def-_~+/=="]),
            Ok(Some(Credential {
                scheme: Scheme::DPoP,
                token: "abc.def-_~+/=="
            }))
        );
        assert_eq!(
            ex(&["bearer t"]).map(|c| c.map(|c| c.scheme)),
            Ok(Some(Scheme::Bearer))
        );
        assert_eq!(ex(&["Basic dXNlcg=="]), Ok(None));
        assert_eq!(ex(&["Digest a=1, b=2"]), Ok(None));
        assert_eq!(ex(&["Bearer"]), Err(Malformed));
        assert_eq!(ex(&["Bearer a b"]), Err(Malformed));
        assert_eq!(ex(&["Bearer a=b"]), Err(Malformed));
        assert_eq!(ex(&["Bearer a", "Bearer b"]), Err(Multiple));
        assert_eq!(ex(&["Basic Zm9v", "Bearer b"]), Err(Multiple));
    }

    /// Issue 11, defects 2, 5 and 6: values jwt_authn or an upstream reads as a DPoP/Bearer
    /// credential are never "another scheme".
    #[test]
    fn hostile_authorization_shapes() {
        use DenyReason::{AuthorizationMalformed as Malformed, AuthorizationMultiple as Multiple};
        assert_eq!(ex(&["Basic Zm9v, Bearer a.b.c"]), Err(Multiple));
        assert_eq!(ex(&["Bearer a.b.c, Bearer d.e.f"]), Err(Multiple));
        assert_eq!(ex(&["Bearer a.b.c,"]), Err(Multiple));
        assert_eq!(ex(&["X DPoP a.b.c"]), Err(Malformed));
        assert_eq!(ex(&["XBearer a.b.c"]), Err(Malformed));
        assert_eq!(ex(&["Bearer\ta.b.c"]), Err(Malformed));
        assert_eq!(ex(&["DPoP\ta.b.c"]), Err(Malformed));
        assert_eq!(ex(&["Bearer  a.b.c"]), Err(Malformed));
        assert_eq!(ex(&["Bearer a.b.c extra"]), Err(Malformed));
        assert_eq!(ex(&["Basic bearer"]), Err(Malformed));
        assert_eq!(extract(&[b"Bearer a\xff"]), Err(Malformed));
        assert_eq!(extract(&[b"Basic \xff\xfe"]), Err(Malformed));
        // surrounding whitespace is Envoy's OWS, not part of the value
        assert_eq!(
            ex(&[" Bearer a.b.c\t"]).map(|c| c.map(|c| c.token)),
            Ok(Some("a.b.c"))
        );
    }

    #[test]
    fn unverified_cnf() {
        let tok = |payload: &str| {
            format!(
                "eyJhbGciOiJub25lIn0.{}.",
                crate::b64::encode(payload.as_bytes())
            )
        };
        // unsigned tokens are fine for inspection only; the empty signature is refused by parse
        assert_eq!(
            inspect_unverified(&tok(r#"{"cnf":{"jkt":"abc"}}"#)),
            Err(DenyReason::TokenMalformed)
        );
        let tok = |payload: &str| {
            format!(
                "eyJhbGciOiJub25lIn0.{}.AA",
                crate::b64::encode(payload.as_bytes())
            )
        };
        assert_eq!(
            inspect_unverified(&tok(r#"{"cnf":{"jkt":"abc","x5t#S256":"q"}}"#))
                .unwrap()
                .jkt
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            inspect_unverified(&tok(r#"{"sub":"a"}"#)).unwrap().jkt,
            None
        );
        assert_eq!(
            inspect_unverified(&tok(r#"{"cnf":"abc"}"#)),
            Err(DenyReason::TokenCnfInvalid)
        );
        assert_eq!(
            inspect_unverified(&tok(r#"{"cnf":{"jkt":1}}"#)),
            Err(DenyReason::TokenCnfInvalid)
        );
        assert_eq!(
            inspect_unverified("opaque-token"),
            Err(DenyReason::TokenMalformed)
        );
    }
}
