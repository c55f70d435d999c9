//! What each subcommand does.

use crate::bail;
use crate::cli::{Cli, Command, KeyArgs, KeygenArgs, ProofArgs, TokenArgs, VerifyArgs};
use crate::error::CliError;
use crate::json_out::OrderedObject;
use crate::keys::{self, KeyKind};
use dpop_guard::b64;
use dpop_guard::jose::Alg;
use dpop_guard::proof::ath_for;
use dpop_guard::{verify_proof, ProofPolicy, RequestFacts};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Pubkey(a) => pubkey(a),
        Command::Thumbprint(a) => thumbprint(a),
        Command::Proof(a) => proof(a),
        Command::Token(a) => token(a),
        Command::Verify(a) => verify(a),
    }
}

/// Prints one line on stdout; a closed pipe is an error, not a panic.
fn emit(line: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError(format!("writing to stdout: {e}")))
}

fn now() -> Result<i64, CliError> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| CliError::new("system clock is before 1970"))?;
    i64::try_from(d.as_secs()).map_err(|_| CliError::new("system clock out of range"))
}

fn keygen(a: KeygenArgs) -> Result<ExitCode, CliError> {
    let kind = KeyKind::for_alg(keys::client_alg(a.alg)?, usize::from(a.bits));
    let (json, public) = keys::generate(kind, a.alg, a.kid.as_deref())?;
    match &a.out {
        None => emit(&json)?,
        Some(path) => {
            write_private(path, &format!("{json}\n"))?;
            eprintln!(
                "dpop: wrote {} private key to {path} (jkt {})",
                a.alg.name(),
                public.thumbprint()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &str, text: &str) -> Result<(), CliError> {
    let err = |e: std::io::Error| CliError(format!("cannot write '{path}': {e}"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path).map_err(err)?;
        // An existing file keeps its old mode on open; tighten it before writing the secret.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
    }
    #[cfg(not(unix))]
    {
        let mut f = opts.open(path).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
    }
    Ok(())
}

fn pubkey(a: KeyArgs) -> Result<ExitCode, CliError> {
    let key = keys::load_key("--key", &a.key)?;
    emit(&key.public_full().to_json()?)?;
    Ok(ExitCode::SUCCESS)
}

fn thumbprint(a: KeyArgs) -> Result<ExitCode, CliError> {
    let key = keys::load_key("--key", &a.key)?;
    emit(&key.public.thumbprint())?;
    Ok(ExitCode::SUCCESS)
}

/// Compact JWS: BASE64URL(header).BASE64URL(payload).BASE64URL(signature).
fn sign_compact(
    key: &keys::Key,
    alg: Alg,
    header: &OrderedObject,
    claims: &OrderedObject,
) -> Result<String, CliError> {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_json()?.as_bytes()),
        b64::encode(claims.to_json()?.as_bytes())
    );
    let sig = key.sign(alg, input.as_bytes())?;
    Ok(format!("{input}.{}", b64::encode(&sig)))
}

/// RFC 9449 §4.2: htu is the target URI without query and fragment.
fn strip_query(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

fn proof(a: ProofArgs) -> Result<ExitCode, CliError> {
    let key = keys::load_key("--key", &a.key)?;
    let alg = key.pick_alg(a.alg)?;
    if a.htm.is_empty() {
        bail!("--htm must not be empty");
    }
    let htu = strip_query(&a.htu);
    if dpop_guard::htu::normalize(htu).is_none() {
        bail!("--htu '{htu}' is not an absolute http(s) URI the filter would accept");
    }
    let mut header = OrderedObject::new();
    header.set("typ", "dpop+jwt").set("alg", alg.name());
    header.set("jwk", key_json(&key.public_required())?);
    let mut claims = OrderedObject::new();
    let jti = match a.jti {
        Some(j) if j.is_empty() => bail!("--jti must not be empty"),
        Some(j) => j,
        None => keys::random_b64(16)?,
    };
    claims.set("jti", jti).set("htm", a.htm).set("htu", htu);
    claims.set(
        "iat",
        match a.iat {
            Some(t) => t,
            None => now()?,
        },
    );
    if let Some(token) = &a.token {
        claims.set("ath", ath_for(token));
    }
    if let Some(nonce) = a.nonce {
        claims.set("nonce", nonce);
    }
    emit(&sign_compact(&key, alg, &header, &claims)?)?;
    Ok(ExitCode::SUCCESS)
}

/// An ordered object as a serde_json value (member order is kept only in our own output, which
/// is fine: a proof's `jwk` is compared by thumbprint, never by its text).
fn key_json(o: &OrderedObject) -> Result<serde_json::Value, CliError> {
    serde_json::from_str(&o.to_json()?).map_err(CliError::json)
}

fn token(a: TokenArgs) -> Result<ExitCode, CliError> {
    let iat = match a.iat {
        Some(t) => t,
        None => now()?,
    };
    let Some(exp) = iat.checked_add(a.ttl) else {
        bail!("--iat + --ttl overflows");
    };

    let mut claims = OrderedObject::new();
    if let Some(iss) = a.iss {
        claims.set("iss", iss);
    }
    if let Some(sub) = a.sub {
        claims.set("sub", sub);
    }
    match a.aud.as_slice() {
        [] => {}
        [one] => {
            claims.set("aud", one.as_str());
        }
        many => {
            claims.set("aud", many.to_vec());
        }
    }
    claims.set("iat", iat);
    if let Some(nbf_in) = a.nbf_in {
        let Some(nbf) = iat.checked_add(nbf_in) else {
            bail!("--iat + --nbf-in overflows");
        };
        claims.set("nbf", nbf);
    }
    claims.set("exp", exp);
    let jkt = match (&a.jkt, &a.bind_key) {
        (Some(jkt), _) => {
            if b64::decode(jkt).is_none_or(|b| b.len() != 32) {
                bail!("--jkt must be a base64url SHA-256 thumbprint (43 characters); use --no-cnf --claim cnf=... for a malformed one");
            }
            Some(jkt.clone())
        }
        (None, Some(k)) => Some(keys::load_key("--bind-key", k)?.public.thumbprint()),
        (None, None) => None,
    };
    if let Some(jkt) = jkt {
        claims.set("cnf", serde_json::json!({ "jkt": jkt }));
    }
    for c in &a.claim {
        let Some((name, value)) = c.split_once('=') else {
            bail!("--claim '{c}': expected NAME=JSON");
        };
        if name.is_empty() {
            bail!("--claim '{c}': empty claim name");
        }
        let value: serde_json::Value = serde_json::from_str(value).map_err(|e| {
            CliError(format!(
                "--claim {name}: value is not JSON ({e}); quote strings: {name}='\"text\"'"
            ))
        })?;
        claims.set(name, value);
    }

    let mut header = OrderedObject::new();
    let token = if let Some(secret) = &a.secret {
        match a.alg.as_deref() {
            None | Some("HS256") => {}
            Some(other) => bail!("--secret signs with HS256 only, not {other}"),
        }
        if secret.is_empty() {
            bail!("--secret must not be empty");
        }
        if secret.len() < 32 {
            eprintln!(
                "dpop: warning: --secret is shorter than 32 bytes; the filter's access_token.hs256_secret refuses such secrets (RFC 7518 §3.2)"
            );
        }
        header.set("alg", "HS256").set("typ", a.typ.as_str());
        if let Some(kid) = &a.kid {
            header.set("kid", kid.as_str());
        }
        let input = format!(
            "{}.{}",
            b64::encode(header.to_json()?.as_bytes()),
            b64::encode(claims.to_json()?.as_bytes())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| CliError::new("HMAC key rejected"))?;
        mac.update(input.as_bytes());
        format!("{input}.{}", b64::encode(&mac.finalize().into_bytes()))
    } else if let Some(k) = &a.key {
        let key = keys::load_key("--key", k)?;
        let explicit = match a.alg.as_deref() {
            None => None,
            Some(name) => Some(Alg::from_name(name).ok_or_else(|| {
                CliError(format!(
                    "--alg {name}: not an algorithm for --key (EdDSA, ES256, ES384, RS256, PS256)"
                ))
            })?),
        };
        let alg = key.pick_alg(explicit)?;
        header.set("alg", alg.name()).set("typ", a.typ.as_str());
        if let Some(kid) = a.kid.as_ref().or(key.kid.as_ref()) {
            header.set("kid", kid.as_str());
        }
        sign_compact(&key, alg, &header, &claims)?
    } else {
        bail!("one of --secret or --key is required");
    };
    emit(&token)?;
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> Result<ExitCode, CliError> {
    let proof = if a.proof == "-" {
        keys::read_source("--proof", "-")?.trim().to_owned()
    } else {
        a.proof.trim().to_owned()
    };
    let algorithms = a.algorithms.iter().copied().collect();
    let policy = ProofPolicy {
        algorithms,
        proof_ttl: a.proof_ttl,
        clock_skew: a.clock_skew,
        max_proof_bytes: a.max_proof_bytes,
        require_ath: !a.no_require_ath,
    };
    let now = match a.now {
        Some(t) => t,
        None => now()?,
    };
    let facts = RequestFacts {
        method: &a.htm,
        uri: &a.htu,
        access_token: a.token.as_deref(),
        now,
    };
    match verify_proof(&proof, &facts, &policy) {
        Ok(v) => {
            emit(&format!(
                "ok jkt={} jti={} replay_key={}",
                v.jkt, v.jti, v.replay_key
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => {
            emit(&format!(
                "denied {} ({}): {}",
                r.stat_name(),
                r.problem().slug(),
                r.detail()
            ))?;
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_query_and_fragment_dropped() {
        assert_eq!(
            strip_query("https://a.example/p?q=1#f"),
            "https://a.example/p"
        );
        assert_eq!(
            strip_query("https://a.example/p#f?x"),
            "https://a.example/p"
        );
        assert_eq!(strip_query("https://a.example/p"), "https://a.example/p");
    }
}
