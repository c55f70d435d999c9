//! `dpop`: make DPoP keys, proofs (RFC 9449) and bound test access tokens; verify proofs with
//! the filter's own verifier. Built for people and tests, and for curl one-liners.
//!
//! Exit codes: 0 success, 1 `verify` denied the proof, 2 usage or input error (one line on stderr).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod cli;
mod commands;
mod error;
mod json_out;
mod keys;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dpop: error: {e}");
            ExitCode::from(2)
        }
    }
}
