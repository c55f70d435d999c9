//! `dpop-replay` binary: see `dpop-replay --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dpop_replay::{build_state, serve, Cli, ReplayBackend};

/// How long in-flight requests get after SIGTERM/SIGINT before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let settings = cli.into_settings()?;
    let state = build_state(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read listen address: {e}"))?;
    for w in &settings.warnings {
        eprintln!("dpop-replay: warning: {w}");
    }
    eprintln!(
        "dpop-replay {} listening on {addr} (HTTP/1.1, h2c), backend {}",
        env!("CARGO_PKG_VERSION"),
        state.backend.describe()
    );

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        eprintln!("dpop-replay: shutting down, finishing in-flight requests");
        let _ = tx.send(());
    };
    let deadline = async move {
        if rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = serve(listener, state, shutdown) => r.map_err(|e| format!("server error: {e}"))?,
        () = deadline => eprintln!("dpop-replay: grace period over, exiting with requests in flight"),
    }
    eprintln!("dpop-replay: stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dpop-replay: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpop-replay: {e}");
            ExitCode::FAILURE
        }
    }
}
