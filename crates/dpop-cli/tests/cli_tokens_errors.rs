//! End-to-end tests of the `dpop` binary: access tokens (HS256 bound to a key, asymmetric
//! issuers), input errors (exit 2, one line on stderr, never a panic) and `--help`. Keys and
//! proofs are in cli.rs; the helpers in common/mod.rs.

mod common;

use common::*;
use dpop_guard::b64;
use dpop_guard::jose::{Alg, PublicJwk};
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
    // one thumbprint in 64 starts with '-' (base64url): it is still a value, not a flag
    let dash = "-NktIOYuahZjHfYu6U9OWtNYX-QfjlZypCkZiU6MrkQ";
    let t4 = ok(&["token", "--secret", "s3cret", "--jkt", dash]);
    assert_eq!(decode_part(&t4, 1)["cnf"]["jkt"], dash);
    let p4 = ok(&[
        "proof", "--key", &key, "--htm", "GET", "--htu", HTU, "--token", "-opaque", "--jti", "-j",
        "--nonce", "-n",
    ]);
    assert_eq!(decode_part(&p4, 1)["jti"], "-j");
    assert_eq!(decode_part(&p4, 1)["nonce"], "-n");
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
