//! End-to-end tests of the `dpop` binary: keys and proofs (round trip through the native verifier
//! per algorithm, key members and sources, claims from flags). Tokens, input errors and help are
//! in cli_tokens_errors.rs; the helpers in common/mod.rs.

mod common;

use common::*;
use dpop_guard::b64;
use sha2::Sha256;

fn round_trip(alg: &str) {
    let key = ok(&["keygen", "--alg", alg]);
    let jwk = json(&key);
    assert_eq!(jwk["alg"], alg);
    let jkt = ok(&["thumbprint", "--key", &key]);

    // proof -> verify ok, and the verifier's jkt is the thumbprint
    let proof = ok(&["proof", "--key", &key, "--htm", "GET", "--htu", HTU]);
    let header = decode_part(&proof, 0);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], alg);
    assert!(
        header["jwk"].get("d").is_none(),
        "private key leaked into the proof header"
    );
    let out = verify(&proof, "GET", &[]);
    assert_eq!(out.code, 0, "{alg}: {}", out.stdout);
    assert!(out.stdout.starts_with("ok "), "{}", out.stdout);
    assert_eq!(field(out.stdout.trim_end(), "jkt"), jkt);
    let claims = decode_part(&proof, 1);
    assert_eq!(
        field(out.stdout.trim_end(), "jti"),
        claims["jti"].as_str().unwrap()
    );
    assert!(field(out.stdout.trim_end(), "replay_key").starts_with("dpop:jti:"));
    assert!(claims.get("ath").is_none());

    // ath: same token ok, another token denied
    let proof = ok(&[
        "proof", "--key", &key, "--htm", "POST", "--htu", HTU, "--token", "tok-1",
    ]);
    assert_eq!(verify(&proof, "POST", &["--token", "tok-1"]).code, 0);
    let out = verify(&proof, "POST", &["--token", "tok-2"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout.trim_end(),
        "denied proof_ath_mismatch (dpop-invalid): DPoP proof ath does not match the access token"
    );

    // wrong method
    let out = verify(&proof, "GET", &["--token", "tok-1"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .starts_with("denied proof_htm_mismatch (dpop-invalid): "),
        "{}",
        out.stdout
    );
}

#[test]
fn eddsa_round_trip() {
    round_trip("EdDSA");
}

#[test]
fn es256_round_trip() {
    round_trip("ES256");
}

#[test]
fn rs256_round_trip() {
    round_trip("RS256");
}

#[test]
fn ps256_round_trip() {
    round_trip("PS256");
}

#[test]
fn es384_round_trip() {
    round_trip("ES384");
}

#[test]
fn keygen_members() {
    let ec = json(&ok(&["keygen", "--alg", "ES256", "--kid", "k1"]));
    assert_eq!(
        (ec["kty"].as_str(), ec["crv"].as_str(), ec["kid"].as_str()),
        (Some("EC"), Some("P-256"), Some("k1"))
    );
    for m in ["x", "y", "d"] {
        assert_eq!(
            b64::decode(ec[m].as_str().unwrap()).unwrap().len(),
            32,
            "{m}"
        );
    }
    let ed = json(&ok(&["keygen"]));
    assert_eq!(
        (ed["kty"].as_str(), ed["crv"].as_str(), ed["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    for m in ["x", "d"] {
        assert_eq!(
            b64::decode(ed[m].as_str().unwrap()).unwrap().len(),
            32,
            "{m}"
        );
    }
    let rsa = json(&ok(&["keygen", "--alg", "RS256"]));
    assert_eq!(rsa["kty"], "RSA");
    for m in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        assert!(rsa[m].is_string(), "{m}");
    }
    assert_eq!(b64::decode(rsa["n"].as_str().unwrap()).unwrap().len(), 256);

    // pubkey strips private members and keeps the thumbprint
    let key = rsa.to_string();
    let public = json(&ok(&["pubkey", "--key", &key]));
    for m in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(public.get(m).is_none(), "{m}");
    }
    assert_eq!(public["alg"], "RS256");
    let pub_text = public.to_string();
    assert_eq!(
        ok(&["thumbprint", "--key", &pub_text]),
        ok(&["thumbprint", "--key", &key])
    );
    // an RSA private key without p/q (primes recovered) still signs
    let mut no_primes = rsa.clone();
    for m in ["p", "q", "dp", "dq", "qi"] {
        no_primes.as_object_mut().unwrap().remove(m);
    }
    let proof = ok(&[
        "proof",
        "--key",
        &no_primes.to_string(),
        "--htm",
        "GET",
        "--htu",
        HTU,
    ]);
    assert_eq!(verify(&proof, "GET", &[]).code, 0);
}

#[test]
fn key_sources_file_stdin_and_out_mode() {
    let dir = std::env::temp_dir().join(format!("dpop-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k.json");
    let path_s = path.to_str().unwrap();
    let out = dpop(&["keygen", "--alg", "ES256", "--out", path_s]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let from_file = ok(&["thumbprint", "--key", path_s]);
    let from_inline = ok(&["thumbprint", "--key", text.trim()]);
    let stdin = dpop_with_stdin(&["thumbprint", "--key", "-"], &text);
    assert_eq!(stdin.code, 0);
    assert_eq!(from_file, from_inline);
    assert_eq!(stdin.stdout.trim_end(), from_file);

    // proof read from stdin by verify
    let proof = ok(&["proof", "--key", path_s, "--htm", "GET", "--htu", HTU]);
    let out = dpop_with_stdin(
        &["verify", "--proof", "-", "--htm", "GET", "--htu", HTU],
        &format!("{proof}\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn proof_claims_from_flags() {
    let key = ok(&["keygen"]);
    let proof = ok(&[
        "proof",
        "--key",
        &key,
        "--htm",
        "DELETE",
        "--htu",
        "https://api.example.com/r/1?x=1#f",
        "--iat",
        "1700000000",
        "--jti",
        "my-jti",
        "--nonce",
        "n-1",
        "--token",
        "abc",
    ]);
    let c = decode_part(&proof, 1);
    assert_eq!(c["htm"], "DELETE");
    assert_eq!(c["htu"], "https://api.example.com/r/1");
    assert_eq!(c["iat"], 1_700_000_000);
    assert_eq!(c["jti"], "my-jti");
    assert_eq!(c["nonce"], "n-1");
    // RFC 9449 §7.1 example: ath of this token
    let ath = b64::encode(&<Sha256 as sha2::Digest>::digest(b"abc"));
    assert_eq!(c["ath"], ath.as_str());

    let base = [
        "verify",
        "--proof",
        &proof,
        "--htm",
        "DELETE",
        "--htu",
        "https://api.example.com/r/1",
        "--token",
        "abc",
    ];
    let at = |now: &str| {
        let mut a = base.to_vec();
        a.extend_from_slice(&["--now", now]);
        dpop(&a)
    };
    let out = at("1700000060");
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains(" jti=my-jti "));
    assert!(at("1700000500")
        .stdout
        .starts_with("denied proof_iat_too_old "));
    assert!(at("1699999000")
        .stdout
        .starts_with("denied proof_iat_in_future "));
    // algorithm allow-list
    let mut a = base.to_vec();
    a.extend_from_slice(&["--now", "1700000000", "--algorithms", "ES256"]);
    assert!(dpop(&a).stdout.starts_with("denied proof_alg_not_allowed "));
}

#[test]
fn mismatched_private_key_refused() {
    let a = json(&ok(&["keygen", "--alg", "ES256"]));
    let mut b = json(&ok(&["keygen", "--alg", "ES256"]));
    b["d"] = a["d"].clone();
    let out = dpop(&[
        "proof",
        "--key",
        &b.to_string(),
        "--htm",
        "GET",
        "--htu",
        HTU,
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not match"), "{}", out.stderr);
}
