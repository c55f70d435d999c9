//! Helpers shared by the `dpop` binary's end-to-end tests (cli.rs, cli_tokens_errors.rs): run
//! the binary (with stdin), expect success, decode JWT parts, read `name=value` fields of the
//! verifier's line, and `verify` a proof for HTU with every algorithm allowed.
#![allow(dead_code)]

use dpop_guard::b64;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

pub const HTU: &str = "http://127.0.0.1:10000/hello";
pub const ALL_ALGS: &str = "EdDSA,ES256,ES384,RS256,PS256";

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn dpop_with_stdin(args: &[&str], stdin: &str) -> Out {
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

pub fn dpop(args: &[&str]) -> Out {
    dpop_with_stdin(args, "")
}

/// Runs and expects success; returns stdout's single line.
pub fn ok(args: &[&str]) -> String {
    let out = dpop(args);
    assert_eq!(out.code, 0, "dpop {args:?}: {}{}", out.stdout, out.stderr);
    let line = out.stdout.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'), "one line expected: {line}");
    line.to_owned()
}

pub fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

pub fn decode_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&b64::decode(part).unwrap()).unwrap()
}

pub fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap()
}

pub fn verify(proof: &str, htm: &str, extra: &[&str]) -> Out {
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
