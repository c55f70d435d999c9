//! End-to-end tests of the `dpop` binary: keys, proofs, tokens and the native verifier.

use dpop_guard::b64;
use dpop_guard::jose::{Alg, PublicJwk};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::io::Write;
use std::process::{Command, Stdio};

const HTU: &str = "http://127.0.0.1:10000/hello";
const ALL_ALGS: &str = "EdDSA,ES256,ES384,RS256,PS256";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dpop_with_stdin(args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpop"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let res = Out {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !res.stderr.contains("panicked"),
        "dpop {args:?} panicked: {}",
        res.stderr
    );
    res
}

fn dpop(args: &[&str]) -> Out {
    dpop_with_stdin(args, "")
}

/// Runs and expects success; returns stdout's single line.
fn ok(args: &[&str]) -> String {
    let out = dpop(args);
    assert_eq!(out.code, 0, "dpop {args:?}: {}{}", out.stdout, out.stderr);
    let line = out.stdout.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'), "one line expected: {line}");
    line.to_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

fn decode_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&b64::decode(part).unwrap()).unwrap()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap()
}

fn verify(proof: &str, htm: &str, extra: &[&str]) -> Out {
    let mut args = vec![
        "verify",
        "--proof",
        proof,
        "--htm",
        htm,
        "--htu",
        HTU,
        "--algorithms",
        ALL_ALGS,
    ];
    args.extend_from_slice(extra);
    dpop(&args)
}

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
fn hs256_token_bound_to_key() {
    let key = ok(&["keygen", "--alg", "ES256"]);
    let jkt = ok(&["thumbprint", "--key", &key]);
    let token = ok(&[
        "token",
        "--secret",
        "s3cret",
        "--bind-key",
        &key,
        "--sub",
        "agent-1",
        "--iss",
        "arcp",
        "--aud",
        "api",
        "--iat",
        "1700000000",
        "--ttl",
        "600",
        "--nbf-in",
        "-5",
        "--claim",
        "scope=\"read\"",
        "--claim",
        "n=5",
    ]);
    let header = decode_part(&token, 0);
    assert_eq!(header, json(r#"{"alg":"HS256","typ":"JWT"}"#));
    let c = decode_part(&token, 1);
    assert_eq!(c["cnf"]["jkt"], jkt.as_str());
    assert_eq!(c["sub"], "agent-1");
    assert_eq!(c["iss"], "arcp");
    assert_eq!(c["aud"], "api");
    assert_eq!(c["iat"], 1_700_000_000);
    assert_eq!(c["exp"], 1_700_000_600);
    assert_eq!(c["nbf"], 1_699_999_995);
    assert_eq!(c["scope"], "read");
    assert_eq!(c["n"], 5);

    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(input.as_bytes());
    mac.clone()
        .verify_slice(&b64::decode(sig).unwrap())
        .unwrap();
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"other").unwrap();
    wrong.update(input.as_bytes());
    assert!(wrong.verify_slice(&b64::decode(sig).unwrap()).is_err());

    // --jkt gives the same binding; several audiences become an array; --no-cnf drops cnf
    let t2 = ok(&[
        "token", "--secret", "s3cret", "--jkt", &jkt, "--aud", "a", "--aud", "b", "--kid", "k7",
    ]);
    assert_eq!(decode_part(&t2, 1)["cnf"]["jkt"], jkt.as_str());
    assert_eq!(decode_part(&t2, 1)["aud"], json(r#"["a","b"]"#));
    assert_eq!(decode_part(&t2, 0)["kid"], "k7");
    let t3 = ok(&["token", "--secret", "s3cret", "--no-cnf"]);
    assert!(decode_part(&t3, 1).get("cnf").is_none());
    // short secrets work but are flagged (the filter's config refuses them); long ones are quiet
    assert!(dpop(&["token", "--secret", "s3cret", "--no-cnf"])
        .stderr
        .contains("warning"));
    let long = dpop(&[
        "token",
        "--secret",
        "0123456789abcdef0123456789abcdef",
        "--no-cnf",
    ]);
    assert_eq!((long.code, long.stderr.as_str()), (0, ""));

    // the proof for a request carrying that token verifies with it
    let proof = ok(&[
        "proof", "--key", &key, "--htm", "GET", "--htu", HTU, "--token", &token,
    ]);
    let out = verify(&proof, "GET", &["--token", &token]);
    assert_eq!(field(out.stdout.trim_end(), "jkt"), jkt);
}

#[test]
fn asymmetric_issuer_tokens_verify() {
    let holder = ok(&["keygen"]);
    let jkt = ok(&["thumbprint", "--key", &holder]);
    for (alg, extra) in [("EdDSA", None), ("ES256", None), ("RS256", Some("PS256"))] {
        let issuer = ok(&["keygen", "--alg", alg, "--kid", "iss-1"]);
        let issuer_pub =
            PublicJwk::from_json(ok(&["pubkey", "--key", &issuer]).as_bytes()).unwrap();
        let mut algs = vec![alg];
        algs.extend(extra);
        for token_alg in algs {
            let token = ok(&[
                "token",
                "--key",
                &issuer,
                "--alg",
                token_alg,
                "--bind-key",
                &holder,
                "--sub",
                "s",
            ]);
            let header = decode_part(&token, 0);
            assert_eq!(header["alg"], token_alg);
            assert_eq!(header["typ"], "JWT");
            assert_eq!(header["kid"], "iss-1");
            assert_eq!(decode_part(&token, 1)["cnf"]["jkt"], jkt.as_str());
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = b64::decode(sig).unwrap();
            let a = Alg::from_name(token_alg).unwrap();
            assert!(issuer_pub.verify(a, input.as_bytes(), &sig), "{token_alg}");
            assert!(!issuer_pub.verify(a, format!("{input}x").as_bytes(), &sig));
        }
    }
}

#[test]
fn bad_input_exits_2_without_panic() {
    let key = ok(&["keygen"]);
    let public = ok(&["pubkey", "--key", &key]);
    let cases: Vec<Vec<&str>> = vec![
        vec!["proof", "--key", "{not json", "--htm", "GET", "--htu", HTU],
        vec![
            "proof",
            "--key",
            "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}",
            "--htm",
            "GET",
            "--htu",
            HTU,
        ],
        vec![
            "proof",
            "--key",
            "/nonexistent/k.json",
            "--htm",
            "GET",
            "--htu",
            HTU,
        ],
        vec!["proof", "--key", &public, "--htm", "GET", "--htu", HTU],
        vec!["proof", "--key", &key, "--htm", "GET", "--htu", "not-a-uri"],
        vec![
            "proof", "--key", &key, "--alg", "ES256", "--htm", "GET", "--htu", HTU,
        ],
        vec![
            "thumbprint",
            "--key",
            "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}",
        ],
        vec!["pubkey", "--key", "{\"a\":1,\"a\":1}"],
        vec!["token", "--secret", "s", "--jkt", "short"],
        vec![
            "token",
            "--secret",
            "s",
            "--no-cnf",
            "--claim",
            "x=not json",
        ],
        vec!["token", "--key", &public, "--no-cnf"],
        vec!["token", "--secret", "s"],
        vec![
            "verify",
            "--proof",
            "x",
            "--htm",
            "GET",
            "--htu",
            HTU,
            "--algorithms",
            "none",
        ],
        vec!["keygen", "--alg", "HS256"],
        vec![],
    ];
    for args in cases {
        let out = dpop(&args);
        assert_eq!(out.code, 2, "dpop {args:?}: {}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "dpop {args:?} printed {}",
            out.stdout
        );
        assert!(!out.stderr.is_empty());
    }
    let out = dpop(&["thumbprint", "--key", "{garbage"]);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("dpop: error: --key: "),
        "{}",
        out.stderr
    );
    let out = dpop_with_stdin(&["thumbprint", "--key", "-"], "\u{0}\u{1}garbage");
    assert_eq!(out.code, 2);

    // a malformed proof is a denial (exit 1), not an input error
    let out = verify("garbage", "GET", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .starts_with("denied proof_malformed (dpop-invalid): "),
        "{}",
        out.stdout
    );
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

#[test]
fn help_is_there() {
    let top = dpop(&["--help"]);
    assert_eq!(top.code, 0);
    let top = top.stdout;
    for cmd in ["keygen", "pubkey", "thumbprint", "proof", "token", "verify"] {
        assert!(top.contains(cmd), "{cmd}");
        let out = dpop(&[cmd, "--help"]);
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("Usage: dpop "), "{cmd}");
    }
}
