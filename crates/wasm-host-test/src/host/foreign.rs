//! `proxy_call_foreign_function`: Envoy's `verify_signature` (source/extensions/common/wasm/
//! foreign.cc over source/common/crypto/utility_impl.cc), as [`VerifySignature`] chooses —
//! Envoy's behaviour computed with the reference crates `p256` and `rsa`, no such function
//! (another proxy-wasm host), or a host that answers the same verdict to everything.
//!
//! The protobuf messages are parsed and written here, independently of dpop_guard's encoder:
//! `VerifySignatureArguments { string hash_function = 1; bytes public_key = 2; bytes
//! signature = 3; bytes text = 4; string public_key_pem = 5; }` and `VerifySignatureResult
//! { bool result = 1; string error = 2; }`.
//!
//! What Envoy does, and so this emulation:
//! - arguments that do not parse as the message: `BadArgument`;
//! - no key, both a DER and a PEM key, or a key BoringSSL cannot import: `BadArgument`;
//! - otherwise `Ok` with a `VerifySignatureResult`: `result` true, or false with an `error`
//!   text (`"<hash> is not supported."` for an unknown hash name, compared ASCII-case-
//!   insensitively; `"Failed to verify digest. Error code: 0"` for a bad signature).
//!
//! Emulated subset: DER P-256 and RSA keys (what `p256` and `rsa` import; any other DER key
//! and any PEM key are `BadArgument` here, where Envoy would import some), and the SHA-2
//! hashes (`sha1`, which Envoy also knows, answers result false, "not emulated"). ECDSA
//! signatures are DER, as BoringSSL wants them; RSA is PKCS#1 v1.5 (BoringSSL's default).

use super::memory::{arg, copy_to_pointer_size, mem, reply, HostResult};
use super::state::HostState;
use crate::abi::status::{BAD_ARGUMENT, NOT_FOUND};
use wasmi::Caller;

/// How the host answers `proxy_call_foreign_function("verify_signature", …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifySignature {
    /// Like Envoy (BoringSSL `EVP_DigestVerify`), computed with the reference crates.
    #[default]
    Envoy,
    /// No such foreign function (`NotFound`): another proxy-wasm host, an old Envoy.
    Absent,
    /// A lying host: `Ok` and `result = true` for any arguments.
    AlwaysTrue,
    /// `Ok` and `result = false` for any arguments.
    AlwaysFalse,
}

/// The foreign function this host may implement.
pub const VERIFY_SIGNATURE: &[u8] = b"verify_signature";

/// `proxy_call_foreign_function(name, name_size, args, args_size, results, results_size)`.
pub(super) fn call(caller: &mut Caller<'_, HostState>, a: &[u64]) -> HostResult {
    let name = mem!(caller, arg(a, 0), arg(a, 1));
    let args = mem!(caller, arg(a, 2), arg(a, 3));
    if name != VERIFY_SIGNATURE {
        return reply(NOT_FOUND);
    }
    let mode = caller.data().verify_signature;
    match answer(mode, &args) {
        Ok(result) => copy_to_pointer_size(caller, &result, arg(a, 4), arg(a, 5)).map(Some),
        Err(status) => reply(status),
    }
}

/// The answer of `verify_signature` in `mode` to serialized `args`: the serialized
/// `VerifySignatureResult` (status Ok), or the status returned instead.
pub fn answer(mode: VerifySignature, args: &[u8]) -> Result<Vec<u8>, u32> {
    match mode {
        VerifySignature::Absent => Err(NOT_FOUND),
        VerifySignature::AlwaysTrue => Ok(result_message(true, "")),
        VerifySignature::AlwaysFalse => Ok(result_message(false, "refused (AlwaysFalse host)")),
        VerifySignature::Envoy => {
            let args = Arguments::parse(args).ok_or(BAD_ARGUMENT)?;
            let verdict = envoy_verify(&args)?;
            Ok(match verdict {
                Ok(()) => result_message(true, ""),
                Err(error) => result_message(false, &error),
            })
        }
    }
}

/// `VerifySignatureArguments`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arguments {
    pub hash_function: String,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
    pub text: Vec<u8>,
    pub public_key_pem: String,
}

/// A protobuf base-128 varint (at most 10 bytes, as protobuf reads them) and the rest.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, bytes.get(i + 1..)?));
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Arguments {
    /// protobuf's `ParseFromString`: fields in any order, the last of a repeated singular field
    /// wins, unknown fields (and known numbers with another wire type) skipped, proto3
    /// `string`s must be UTF-8; `None` when the bytes are not a message.
    pub fn parse(mut bytes: &[u8]) -> Option<Arguments> {
        let mut out = Arguments::default();
        while !bytes.is_empty() {
            let (key, rest) = read_varint(bytes)?;
            let (number, wire_type) = (key >> 3, key & 7);
            if number == 0 || number > (1 << 29) - 1 {
                return None;
            }
            bytes = match wire_type {
                0 => read_varint(rest)?.1,
                1 => rest.get(8..)?,
                5 => rest.get(4..)?,
                2 => {
                    let (len, rest) = read_varint(rest)?;
                    let len = usize::try_from(len).ok()?;
                    let value = rest.get(..len)?;
                    let utf8 = || String::from_utf8(value.to_vec()).ok();
                    match number {
                        1 => out.hash_function = utf8()?,
                        2 => out.public_key = value.to_vec(),
                        3 => out.signature = value.to_vec(),
                        4 => out.text = value.to_vec(),
                        5 => out.public_key_pem = utf8()?,
                        _ => {}
                    }
                    rest.get(len..)?
                }
                // groups (3, 4) are not in these messages; 6 and 7 are not wire types
                _ => return None,
            };
        }
        Some(out)
    }

    /// Serialized, fields in number order, empty ones left out (proto3) (tests).
    #[cfg(test)]
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let fields: [(u64, &[u8]); 5] = [
            (1, self.hash_function.as_bytes()),
            (2, &self.public_key),
            (3, &self.signature),
            (4, &self.text),
            (5, self.public_key_pem.as_bytes()),
        ];
        for (number, value) in fields {
            if !value.is_empty() {
                write_varint(&mut out, number << 3 | 2);
                write_varint(&mut out, value.len() as u64);
                out.extend_from_slice(value);
            }
        }
        out
    }
}

/// A serialized `VerifySignatureResult` (proto3: default values are not written, so
/// `result = false` with no error is empty).
pub fn result_message(result: bool, error: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if result {
        out.extend_from_slice(&[0x08, 0x01]);
    }
    if !error.is_empty() {
        out.push(0x12);
        write_varint(&mut out, error.len() as u64);
        out.extend_from_slice(error.as_bytes());
    }
    out
}

/// A parsed `VerifySignatureResult`: (result, error); `None` when not that message (tests).
#[cfg(test)]
pub fn parse_result(mut bytes: &[u8]) -> Option<(bool, String)> {
    let (mut result, mut error) = (false, String::new());
    while !bytes.is_empty() {
        let (key, rest) = read_varint(bytes)?;
        bytes = match key {
            0x08 => {
                let (v, rest) = read_varint(rest)?;
                result = v != 0;
                rest
            }
            0x12 => {
                let (len, rest) = read_varint(rest)?;
                let len = usize::try_from(len).ok()?;
                error = String::from_utf8(rest.get(..len)?.to_vec()).ok()?;
                rest.get(len..)?
            }
            _ => return None,
        };
    }
    Some((result, error))
}

/// A public key as BoringSSL's `EVP_parse_public_key` would hand it over (the subset the
/// reference crates import).
enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

fn import_der(spki: &[u8]) -> Option<PublicKey> {
    use p256::pkcs8::DecodePublicKey as _;
    if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
        return Some(PublicKey::P256(k));
    }
    rsa::RsaPublicKey::from_public_key_der(spki)
        .ok()
        .map(PublicKey::Rsa)
}

/// The hash functions emulated (Envoy also has sha1).
#[derive(Clone, Copy)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, text: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Hash::Sha224 => sha2::Sha224::digest(text).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(text).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(text).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(text).to_vec(),
        }
    }

    /// PKCS#1 v1.5 with this hash's DigestInfo (BoringSSL's default RSA padding).
    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            Hash::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

/// foreign.cc's `verify_signature` after the parse: `Err(status)` when the key is not
/// imported, else the verdict (`Err(error text)` for result = false).
fn envoy_verify(args: &Arguments) -> Result<Result<(), String>, u32> {
    let key = match (args.public_key.is_empty(), args.public_key_pem.is_empty()) {
        // no key, or both: Envoy refuses the arguments
        (true, true) | (false, false) => return Err(BAD_ARGUMENT),
        // PEM import is not emulated
        (true, false) => return Err(BAD_ARGUMENT),
        (false, true) => import_der(&args.public_key).ok_or(BAD_ARGUMENT)?,
    };
    // utility_impl.cc getHashFunction: the name, ASCII-lower-cased
    let hash = match args.hash_function.to_ascii_lowercase().as_str() {
        "sha224" => Hash::Sha224,
        "sha256" => Hash::Sha256,
        "sha384" => Hash::Sha384,
        "sha512" => Hash::Sha512,
        "sha1" => {
            return Ok(Err(
                "sha1 is not emulated (proxy-wasm-emu has no SHA-1).".to_owned()
            ))
        }
        _ => return Ok(Err(format!("{} is not supported.", args.hash_function))),
    };
    let digest = hash.digest(&args.text);
    let verified = match key {
        PublicKey::P256(k) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
            // BoringSSL's ECDSA_verify takes the DER ECDSA-Sig-Value only, strictly; the
            // digest is truncated to the order's bits (a shorter one is taken as is)
            p256::ecdsa::Signature::from_der(&args.signature)
                .is_ok_and(|sig| k.verify_prehash(&digest, &sig).is_ok())
        }
        PublicKey::Rsa(k) => k.verify(hash.pkcs1v15(), &digest, &args.signature).is_ok(),
    };
    Ok(if verified {
        Ok(())
    } else {
        Err("Failed to verify digest. Error code: 0".to_owned())
    })
}

#[cfg(test)]
mod tests;
