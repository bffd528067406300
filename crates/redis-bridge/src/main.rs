//! The `swarmbus-bridge` binary.

use clap::Parser;
use swarmbus_bridge::config::{Cli, Command};
use swarmbus_bridge::server::{serve_with, Bridge};
use swarmbus_bridge::simulator::Simulator;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::from_default_env().add_directive("info".parse().expect("valid directive")),
        )
        .init();
    let (mut config, demo) = match Cli::parse() {
        Cli { command: Some(Command::Demo(demo)), .. } => (demo.config, Some(demo.simulator)),
        Cli { config, .. } => (config, None),
    };
    if demo.is_some() && config.static_dir.is_none() {
        config.static_dir = Some("www/dist".into());
    }
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
    let static_dir = config.static_dir.clone();
    let bridge = match Bridge::new(config) {
        Ok(bridge) => bridge,
        Err(why) => {
            eprintln!("swarmbus-bridge: {why}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut extra = axum::Router::new();
    if let Some(settings) = demo {
        let simulator = Simulator::new(bridge.clone(), settings);
        tokio::spawn(simulator.clone().run());
        extra = simulator.routes();
        if static_dir.as_ref().is_some_and(|dir| !dir.join("index.html").exists()) {
            tracing::warn!(
                "no dashboard in {static_dir:?}: build it with `just build-www` (or run `just demo`)"
            );
        }
        tracing::info!("demo: open http://{address}/ for the dashboard");
    }
    match serve_with(listener, bridge, extra, shutdown_signal()).await {
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
