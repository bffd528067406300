//! The `swarmbus-bridge` binary: parses and checks the command line, sets up
//! logging, then serves until SIGINT or SIGTERM.
//!
//! Everything that can be refused is refused before "listening" is logged:
//! flags, the Redis URL, the `--static` directory, the listening address.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use swarmbus_bridge::config::Config;
use swarmbus_bridge::server::{serve_with, Bridge};
use swarmbus_bridge::simulator::{Simulator, SimulatorConfig};

/// The command line: the bridge's flags, and optionally `demo` with the simulator's.
#[derive(Debug, Clone, Parser)]
#[command(name = "swarmbus-bridge", version, about)]
struct Cli {
    /// What to run; without a subcommand, the bridge.
    #[command(subcommand)]
    command: Option<Command>,
    /// The bridge's settings: global, so they may come before or after `demo`.
    #[command(flatten)]
    config: Config,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// The bridge plus a built-in swarm simulator, serving the dashboard (`www/dist`).
    Demo(SimulatorConfig),
}

impl Cli {
    /// Parses the process's arguments. Every bridge flag is made global here,
    /// so `swarmbus-bridge --auth-secret S demo` applies the secret instead
    /// of parsing it into a configuration nobody reads.
    fn parse_global() -> Self {
        let command = Self::command().mut_args(|arg| arg.global(true).help_heading("Bridge options"));
        let matches = command.get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command, mut config } = Cli::parse_global();
    if let Err(why) = swarmbus_bridge::logging::init(config.log_format) {
        return fail(2, &why);
    }
    let demo = command.map(|Command::Demo(simulator)| simulator);
    if let Err(why) = config.validate() {
        return fail(2, &why);
    }
    // The demo serves the dashboard from www/dist unless told otherwise (checked below, not refused).
    if demo.is_some() && config.static_dir.is_none() {
        config.static_dir = Some("www/dist".into());
    }
    let static_dir = config.static_dir.clone();
    let mode =
        config.redis.as_deref().map_or("embedded broker".to_owned(), |url| format!("relaying through {url}"));
    let listen = config.listen;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, &format!("cannot listen on {listen}: {e}")),
    };
    let bridge = match Bridge::new(config) {
        Ok(bridge) => bridge,
        Err(why) => return fail(2, &why),
    };
    // The bound address, so `--listen 127.0.0.1:0` tells which port it got.
    let address = listener.local_addr().map_or_else(|_| listen.to_string(), |a| a.to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "swarmbus-bridge listening on http://{address} ({mode})"
    );
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

/// Prints `why` on stderr (whatever the log settings) and returns `code`.
fn fail(code: u8, why: &str) -> ExitCode {
    eprintln!("swarmbus-bridge: {why}");
    ExitCode::from(code)
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
