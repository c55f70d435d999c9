//! Public JWKs (RFC 7517/7518/8037), validated on construction, and their RFC 7638 thumbprints.

use super::alg::Alg;
use super::host_crypto;
use crate::b64;
use crate::json::Object;
use jose_verify::ed25519::Ed25519VerifyingKey;
use jose_verify::p256::P256VerifyingKey;
use jose_verify::rsa::RsaVerifyingKey;
use sha2::{Digest, Sha256};

/// Members that only a private (or symmetric) key carries. A proof that ships one leaks its
/// key; we refuse it rather than use it.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkError {
    /// A private-key member is present.
    Private,
    /// Missing/ill-typed member, unknown kty/crv, bad encoding, point not on curve, bad size.
    Invalid,
}

/// A validated public key. Only keys we can verify with can exist.
#[derive(Clone, Debug)]
pub enum PublicJwk {
    Ed25519 {
        x: [u8; 32],
        key: Ed25519VerifyingKey,
    },
    P256 {
        x: [u8; 32],
        y: [u8; 32],
        key: P256VerifyingKey,
    },
    #[cfg(feature = "es384")]
    P384 {
        x: [u8; 48],
        y: [u8; 48],
        key: p384::ecdsa::VerifyingKey,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        key: RsaVerifyingKey,
    },
}

fn member_bytes(o: &Object, name: &str) -> Result<Vec<u8>, JwkError> {
    let s = o
        .str(name)
        .map_err(|_| JwkError::Invalid)?
        .ok_or(JwkError::Invalid)?;
    if s.len() > 2048 {
        return Err(JwkError::Invalid);
    }
    b64::decode(s).ok_or(JwkError::Invalid)
}

fn fixed<const N: usize>(o: &Object, name: &str) -> Result<[u8; N], JwkError> {
    // RFC 7518 §6.2.1.2: coordinates are the full field size, leading zeros included.
    member_bytes(o, name)?
        .try_into()
        .map_err(|_| JwkError::Invalid)
}

/// Big-endian unsigned integer in minimal form (RFC 7518 §6.3.1: no leading zero octets).
fn minimal_uint(o: &Object, name: &str) -> Result<Vec<u8>, JwkError> {
    let v = member_bytes(o, name)?;
    match v.first() {
        None | Some(0) => Err(JwkError::Invalid),
        Some(_) => Ok(v),
    }
}

impl PublicJwk {
    /// Validates a JWK object. Extra members (`kid`, `alg`, `use`, ...) are tolerated, but
    /// `use` other than `sig` and any private member are refused.
    pub fn from_object(o: &Object) -> Result<PublicJwk, JwkError> {
        if PRIVATE_MEMBERS.iter().any(|m| o.contains(m)) {
            return Err(JwkError::Private);
        }
        match o.str("use") {
            Ok(None) | Ok(Some("sig")) => {}
            _ => return Err(JwkError::Invalid),
        }
        if o.str("alg").is_err() {
            return Err(JwkError::Invalid);
        }
        let kty = o.str("kty").map_err(|_| JwkError::Invalid)?;
        let crv = || o.str("crv").ok().flatten();
        match (kty, crv()) {
            (Some("OKP"), Some("Ed25519")) => {
                let x = fixed::<32>(o, "x")?;
                let key = Ed25519VerifyingKey::from_bytes(&x).ok_or(JwkError::Invalid)?;
                Ok(PublicJwk::Ed25519 { x, key })
            }
            (Some("EC"), Some("P-256")) => {
                let x = fixed::<32>(o, "x")?;
                let y = fixed::<32>(o, "y")?;
                let key = P256VerifyingKey::from_affine(&x, &y).ok_or(JwkError::Invalid)?;
                Ok(PublicJwk::P256 { x, y, key })
            }
            #[cfg(feature = "es384")]
            (Some("EC"), Some("P-384")) => {
                let x = fixed::<48>(o, "x")?;
                let y = fixed::<48>(o, "y")?;
                let point =
                    p384::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
                let key = p384::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| JwkError::Invalid)?;
                Ok(PublicJwk::P384 { x, y, key })
            }
            (Some("RSA"), _) => {
                let n = minimal_uint(o, "n")?;
                let e = minimal_uint(o, "e")?;
                // The RSA key policy is the verifier's (one place): moduli of
                // `jose_verify::rsa::MIN_BITS..=MAX_BITS` (2048–4096) bits, e = 65537 only
                // (`minimal_uint` refuses leading zero octets, so it has one spelling here).
                // Odd modulus, limbs, Montgomery constants and R² mod n, prepared once.
                let key = RsaVerifyingKey::new(&n, &e).ok_or(JwkError::Invalid)?;
                Ok(PublicJwk::Rsa { n, e, key })
            }
            _ => Err(JwkError::Invalid),
        }
    }

    /// Parses a JWK from JSON text.
    pub fn from_json(bytes: &[u8]) -> Result<PublicJwk, JwkError> {
        let o = crate::json::parse_object(bytes).ok_or(JwkError::Invalid)?;
        PublicJwk::from_object(&o)
    }

    /// Whether `alg` is meant for this key type (checked before any crypto).
    pub fn accepts(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (PublicJwk::Ed25519 { .. }, Alg::EdDSA)
                | (PublicJwk::P256 { .. }, Alg::ES256)
                | (PublicJwk::Rsa { .. }, Alg::RS256 | Alg::PS256)
        ) || self.accepts_es384(alg)
    }

    #[cfg(feature = "es384")]
    fn accepts_es384(&self, alg: Alg) -> bool {
        matches!((self, alg), (PublicJwk::P384 { .. }, Alg::ES384))
    }

    #[cfg(not(feature = "es384"))]
    fn accepts_es384(&self, _: Alg) -> bool {
        false
    }

    /// RFC 7638 canonical JSON: required members only, lexicographic order, no whitespace.
    pub fn thumbprint_input(&self) -> String {
        match self {
            PublicJwk::Ed25519 { x, .. } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
            PublicJwk::P256 { x, y, .. } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(x),
                b64::encode(y)
            ),
            #[cfg(feature = "es384")]
            PublicJwk::P384 { x, y, .. } => format!(
                r#"{{"crv":"P-384","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(x),
                b64::encode(y)
            ),
            PublicJwk::Rsa { n, e, .. } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(e),
                b64::encode(n)
            ),
        }
    }

    /// RFC 7638 SHA-256 thumbprint, base64url: the `jkt`.
    pub fn thumbprint(&self) -> String {
        b64::encode(&Sha256::digest(self.thumbprint_input().as_bytes()))
    }

    /// Verifies a JWS signature. The caller has already checked the algorithm allow-list;
    /// a key/alg mismatch is still refused here so no path can skip it.
    pub fn verify(&self, alg: Alg, signing_input: &[u8], sig: &[u8]) -> bool {
        match (self, alg) {
            (PublicJwk::Ed25519 { key, .. }, Alg::EdDSA) => key.verify(signing_input, sig),
            (PublicJwk::P256 { x, y, key }, Alg::ES256) => match host_crypto::host_verifier() {
                // The host wants DER; r and s outside [1, n−1] never reach it (ours refuses
                // them too), so both paths decide exactly the same inputs.
                Some(host) => match host_crypto::es256_der_signature(sig) {
                    None => false,
                    Some(der) => host(&host_crypto::p256_spki(x, y), &der, signing_input)
                        .unwrap_or_else(|_| key.verify_sha256(signing_input, sig)),
                },
                None => key.verify_sha256(signing_input, sig),
            },
            #[cfg(feature = "es384")]
            (PublicJwk::P384 { key, .. }, Alg::ES384) => {
                use p384::ecdsa::signature::Verifier as _;
                let Ok(sig) = p384::ecdsa::Signature::from_slice(sig) else {
                    return false;
                };
                key.verify(signing_input, &sig).is_ok()
            }
            // Both check that the signature is exactly the modulus length and less than n.
            (PublicJwk::Rsa { n, e, key }, Alg::RS256) => {
                let ours = || {
                    let digest: [u8; 32] = Sha256::digest(signing_input).into();
                    key.verify_pkcs1v15_sha256(&digest, sig)
                };
                match host_crypto::host_verifier() {
                    Some(host) if host_crypto::rs256_length_ok(sig, key.size()) => {
                        host(&host_crypto::rsa_spki(n, e), sig, signing_input)
                            .unwrap_or_else(|_| ours())
                    }
                    Some(_) => false,
                    None => ours(),
                }
            }
            (PublicJwk::Rsa { key, .. }, Alg::PS256) => {
                let digest: [u8; 32] = Sha256::digest(signing_input).into();
                key.verify_pss_sha256(&digest, sig, 32)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_with_extra_members() {
        let jwk = br#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;
        let k = PublicJwk::from_json(jwk).unwrap();
        assert_eq!(
            k.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc8037_ed25519_thumbprint() {
        let k = PublicJwk::from_json(
            br#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            k.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// The RSA limits are `jose_verify::rsa`'s: 2048–4096-bit moduli, e = 65537 only.
    #[test]
    fn rsa_key_policy_is_the_verifiers() {
        use jose_verify::rsa::{EXPONENT, MAX_BITS, MIN_BITS};
        let jwk = |n: &[u8], e: &[u8]| {
            let text = format!(
                r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
                b64::encode(n),
                b64::encode(e)
            );
            PublicJwk::from_json(text.as_bytes())
        };
        // odd moduli of exactly `bits` bits
        let modulus = |bits: usize| {
            let mut n = vec![0xa5u8; bits.div_ceil(8)];
            n[0] = 1 << ((bits - 1) % 8);
            n
        };
        let e = &EXPONENT.to_be_bytes()[1..];
        assert_eq!(e, [1, 0, 1]);
        for (bits, ok) in [
            (MIN_BITS - 1, false),
            (MIN_BITS, true),
            (3072, true),
            (MAX_BITS, true),
            (MAX_BITS + 1, false),
            (8192, false),
        ] {
            assert_eq!(jwk(&modulus(bits), e).is_ok(), ok, "{bits} bits");
        }
        for bad_e in [&[3u8][..], &[1, 0, 0, 0, 1], &[0xff, 0xff, 0xff, 0xff]] {
            assert_eq!(
                jwk(&modulus(MIN_BITS), bad_e).unwrap_err(),
                JwkError::Invalid
            );
        }
        // the exponent has one spelling: no leading zero octet (RFC 7518 §6.3.1)
        assert!(jwk(&modulus(MIN_BITS), &[0, 1, 0, 1]).is_err());
    }

    #[test]
    fn private_members_refused() {
        let k = PublicJwk::from_json(
            br#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
        );
        assert_eq!(k.unwrap_err(), JwkError::Private);
    }
}
