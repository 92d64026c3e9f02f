//! `outbox-server`: see the library docs and server/README.md.

use std::process::ExitCode;

use clap::Parser;
use outbox_server::{Cli, Server};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().into_config();
    let demo = config.demo_token;
    let db = config.db.clone();
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("outbox-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Scripts and tests read the port from this line when listening on port 0.
    println!("listening on {}", server.url());
    eprintln!("outbox-server: store {db}");
    if demo {
        eprintln!("outbox-server: no --token given; accepting `demo-token` for tenant `demo`");
    }
    match server.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outbox-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
