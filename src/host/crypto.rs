//! Which code verifies RS256 and ES256 (README "Security notes"): Envoy's BoringSSL through
//! the foreign function `verify_signature` when the host has it and passes the start-up probe,
//! our own verifiers otherwise. The encodings, pre-checks and probe are pure
//! ([`crate::jose::host_crypto`]); this file only makes the call and says what was chosen.

use super::abi;
use crate::jose::host_crypto::{self, CryptoChoice, ProbeFailure};

/// `PARSE_FAILURE`: the host answered something that is not a `VerifySignatureResult`.
const PARSE_FAILURE: u32 = 4;

fn host_verify(spki: &[u8], signature: &[u8], text: &[u8]) -> Result<bool, u32> {
    let args = host_crypto::verify_arguments(spki, signature, text);
    let out = abi::call_foreign_function(host_crypto::FOREIGN_FUNCTION, &args)?;
    host_crypto::verify_result(&out).ok_or(PARSE_FAILURE)
}

/// Registers the verifier `choice` asks for (after probing the host), logs it and sets the
/// gauge `dpop_guard.crypto.host` (1: the host verifies RS256/ES256).
pub fn configure(choice: CryptoChoice) {
    let host = match choice {
        CryptoChoice::Wasm => {
            log::info!("dpop_guard crypto: crypto = \"wasm\": every signature is verified by dpop-guard's own verifiers");
            false
        }
        CryptoChoice::Auto => match host_crypto::probe(host_verify) {
            Ok(()) => {
                log::info!("dpop_guard crypto: RS256 and ES256 verified by the host (BoringSSL, verify_signature); EdDSA and PS256 by dpop-guard's own verifiers");
                true
            }
            Err(ProbeFailure::Unavailable(status)) => {
                log::info!("dpop_guard crypto: the host has no usable verify_signature (status {status}); every signature is verified by dpop-guard's own verifiers");
                false
            }
            Err(failure) => {
                log::warn!("dpop_guard crypto: the host's verify_signature failed the start-up probe ({failure:?}); not used");
                false
            }
        },
    };
    host_crypto::set_host_verifier(if host { Some(host_verify) } else { None });
    abi::set_gauge("dpop_guard.crypto.host", u64::from(host));
}
