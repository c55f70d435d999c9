//! Command-line syntax and help text.

use clap::{ArgGroup, Args, Parser, Subcommand};
use dpop_guard::jose::Alg;

const EXAMPLES: &str = "\
Examples:
  dpop keygen --alg ES256 --out k.json
  dpop thumbprint --key k.json
  TOKEN=$(dpop token --secret \"$HS256_SECRET\" --bind-key k.json --sub agent-1)
  curl -H \"Authorization: DPoP $TOKEN\" \\
       -H \"DPoP: $(dpop proof --key k.json --htm GET --htu http://127.0.0.1:10000/hello --token $TOKEN)\" \\
       http://127.0.0.1:10000/hello
  dpop verify --proof \"$PROOF\" --htm GET --htu http://127.0.0.1:10000/hello

KEY arguments take a file path, '-' for stdin, or inline JSON starting with '{'.
Exit status: 0 success, 1 proof denied (verify), 2 usage or input error.";

#[derive(Debug, Parser)]
#[command(
    name = "dpop",
    version,
    about = "Make DPoP keys, proofs (RFC 9449) and DPoP-bound test access tokens; verify proofs natively",
    after_help = EXAMPLES,
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a private key; print it as one line of JWK JSON (or write it with --out)
    #[command(after_help = "Example:\n  dpop keygen --alg EdDSA --out k.json")]
    Keygen(KeygenArgs),
    /// Print the public JWK of a key (private members stripped), one line
    Pubkey(KeyArgs),
    /// Print the RFC 7638 SHA-256 thumbprint (the `jkt`) of a key
    Thumbprint(KeyArgs),
    /// Make a DPoP proof JWT (compact JWS) for one request; print it
    #[command(
        after_help = "Example:\n  curl -H \"DPoP: $(dpop proof --key k.json --htm GET --htu http://127.0.0.1:10000/hello)\" \\\n       http://127.0.0.1:10000/hello"
    )]
    Proof(ProofArgs),
    /// Mint a test access token (JWT) bound to a key with cnf.jkt; print it
    #[command(
        after_help = "Examples:\n  dpop token --secret \"$HS256_SECRET\" --bind-key k.json --sub agent-1 --aud api\n  dpop token --key issuer.json --kid is1 --jkt \"$(dpop thumbprint --key k.json)\""
    )]
    Token(TokenArgs),
    /// Check a proof with the filter's own verifier (exit 0 ok, 1 denied)
    #[command(
        after_help = "Prints `ok jkt=<jkt> jti=<jti> replay_key=<key>` on success, or\n`denied <reason> (<problem type>): <detail>` and exit status 1."
    )]
    Verify(VerifyArgs),
}

fn parse_alg(s: &str) -> Result<Alg, String> {
    Alg::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Alg::ALL.iter().map(|a| a.name()).collect();
        format!("unknown algorithm '{s}' (one of: {})", names.join(", "))
    })
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Algorithm the key is for: EdDSA (Ed25519), ES256 (P-256), ES384 (P-384), RS256 or PS256 (RSA)
    #[arg(long, value_name = "ALG", default_value = "EdDSA", value_parser = parse_alg)]
    pub alg: Alg,
    /// RSA modulus size in bits
    #[arg(long, value_name = "BITS", default_value_t = 2048, value_parser = clap::value_parser!(u16).range(2048..=4096))]
    pub bits: u16,
    /// Add a "kid" member
    #[arg(long, value_name = "KID")]
    pub kid: Option<String>,
    /// Write the private JWK to FILE (mode 0600) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The key: JWK file path, '-' for stdin, or inline JSON (private or public JWK)
    #[arg(long, value_name = "KEY")]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ProofArgs {
    /// Private JWK to sign with: file path, '-' for stdin, or inline JSON
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// HTTP method of the request (htm), e.g. GET
    #[arg(long, value_name = "METHOD")]
    pub htm: String,
    /// Target URI of the request (htu); any query or fragment is dropped
    #[arg(long, value_name = "URI")]
    pub htu: String,
    /// Access token sent with the request: adds ath = base64url(SHA-256(token))
    #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
    pub token: Option<String>,
    /// Server-provided nonce (the DPoP-Nonce response header)
    #[arg(long, value_name = "NONCE", allow_hyphen_values = true)]
    pub nonce: Option<String>,
    /// Issued-at time, seconds since the epoch [default: now]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub iat: Option<i64>,
    /// Proof identifier [default: 16 random bytes, base64url]
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    pub jti: Option<String>,
    /// Signature algorithm [default: the JWK's "alg", else EdDSA/ES256/ES384/RS256 by key type]
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    pub alg: Option<Alg>,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("signer").required(true).args(["secret", "key"])),
    group(ArgGroup::new("binding").required(true).args(["jkt", "bind_key", "no_cnf"]))
)]
pub struct TokenArgs {
    /// Sign with HS256 and this shared secret (the seed's default signing; the filter wants >= 32 bytes)
    #[arg(long, value_name = "SECRET", allow_hyphen_values = true)]
    pub secret: Option<String>,
    /// Sign with this issuer private JWK (EdDSA, ES256, ES384, RS256, PS256)
    #[arg(long, value_name = "ISSUER_KEY")]
    pub key: Option<String>,
    /// Signature algorithm: HS256 with --secret; with --key [default: the JWK's "alg", else by key type]
    #[arg(long, value_name = "ALG")]
    pub alg: Option<String>,
    /// Bind to this thumbprint: cnf.jkt
    #[arg(long, value_name = "JKT", allow_hyphen_values = true)]
    pub jkt: Option<String>,
    /// Bind to the thumbprint of this key (private or public JWK)
    #[arg(long, value_name = "KEY")]
    pub bind_key: Option<String>,
    /// Make an unbound token (no cnf claim)
    #[arg(long)]
    pub no_cnf: bool,
    /// "sub" claim
    #[arg(long, value_name = "SUB")]
    pub sub: Option<String>,
    /// "iss" claim
    #[arg(long, value_name = "ISS")]
    pub iss: Option<String>,
    /// "aud" claim; repeat for several (then an array)
    #[arg(long, value_name = "AUD")]
    pub aud: Vec<String>,
    /// Lifetime: exp = iat + SECONDS (negative makes an expired token)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        allow_negative_numbers = true
    )]
    pub ttl: i64,
    /// Add nbf = iat + SECONDS
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub nbf_in: Option<i64>,
    /// "kid" header [default: the issuer JWK's "kid", if any]
    #[arg(long, value_name = "KID")]
    pub kid: Option<String>,
    /// "typ" header
    #[arg(long, value_name = "TYP", default_value = "JWT")]
    pub typ: String,
    /// Issued-at time, seconds since the epoch [default: now]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub iat: Option<i64>,
    /// Extra or overriding claim, VALUE is JSON: --claim scope='"read write"' --claim n=5; repeatable
    #[arg(long, value_name = "NAME=JSON")]
    pub claim: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The DPoP proof (compact JWS), or '-' to read it from stdin
    #[arg(long, value_name = "PROOF")]
    pub proof: String,
    /// Request method the proof must match
    #[arg(long, value_name = "METHOD")]
    pub htm: String,
    /// Request URI the proof must match (scheme://authority/path; a query is ignored)
    #[arg(long, value_name = "URI")]
    pub htu: String,
    /// Access token sent with the request (checked against ath)
    #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
    pub token: Option<String>,
    /// Current time, seconds since the epoch [default: now]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub now: Option<i64>,
    /// Max age of iat, seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(i64).range(0..))]
    pub proof_ttl: i64,
    /// Max iat in the future, seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..))]
    pub clock_skew: i64,
    /// Accepted algorithms, comma-separated
    #[arg(long, value_name = "ALGS", value_delimiter = ',', default_value = "EdDSA,ES256,RS256", value_parser = parse_alg)]
    pub algorithms: Vec<Alg>,
    /// Longest proof accepted, bytes
    #[arg(long, value_name = "BYTES", default_value_t = 8192)]
    pub max_proof_bytes: usize,
    /// Accept a proof without ath even when --token is given
    #[arg(long)]
    pub no_require_ath: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
