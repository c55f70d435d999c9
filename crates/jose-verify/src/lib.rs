//! The signature verifiers of dpop-guard: Ed25519 (EdDSA with ed25519-dalek's `verify_strict`
//! rules), P-256 ECDSA (ES256) and RSA (RS256 / PS256), written for wasm32 and fast there.
//!
//! **Variable time, on purpose**: a verifier only ever sees public data (keys, messages,
//! signatures), so the code branches on values, skips zero digits and exits early. Never use
//! it with secrets.
//!
//! - [`ed25519`]: fiat-crypto's verified field code (10 × 25.5-bit limbs), a per-process
//!   base-point table built by [`ed25519::warm_up`], per-key comb tables earned by reuse;
//! - [`p256`]: 29-bit-limb Montgomery field, interleaved wNAF with static tables of G,
//!   per-key tables earned by reuse;
//! - [`rsa`]: Montgomery exponentiation on 32-bit limbs, for keys within the one RSA policy
//!   ([`rsa::MIN_BITS`]..=[`rsa::MAX_BITS`] bits, `e` = [`rsa::EXPONENT`]).
//!
//! Nothing here panics on input (clippy denies `unwrap`/`expect`/`panic`/indexing outside
//! tests); a malformed input is a `None` key or a `false` verdict. Every verifier is tested
//! differentially against the RustCrypto / dalek implementation it replaces and against
//! Wycheproof (`tests/`, and unit tests of the arithmetic in each module).

pub mod ed25519;
pub mod p256;
pub mod rsa;
