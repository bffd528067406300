//! The `swarmbus-bridge` binary.

use clap::Parser;
use swarmbus_bridge::config::Config;
use swarmbus_bridge::server::{serve, Bridge};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::from_default_env().add_directive("info".parse().expect("valid directive")),
        )
        .init();
    let config = Config::parse();
    if let Err(why) = config.validate() {
        eprintln!("swarmbus-bridge: {why}");
        return std::process::ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("swarmbus-bridge: cannot listen on {}: {e}", config.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let mode =
        config.redis.as_deref().map_or("embedded broker".to_owned(), |url| format!("relaying through {url}"));
    // The bound address, so `--listen 127.0.0.1:0` tells which port it got.
    let address = listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    tracing::info!("swarmbus-bridge listening on http://{address} ({mode})");
    let bridge = match Bridge::new(config) {
        Ok(bridge) => bridge,
        Err(why) => {
            eprintln!("swarmbus-bridge: {why}");
            return std::process::ExitCode::from(2);
        }
    };
    match serve(listener, bridge, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmbus-bridge: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
