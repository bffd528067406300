//! The accept loop: axum's router on HTTP/1.1 connections (hyper), with a
//! timeout on the one wait axum's own `serve` leaves open.
//!
//! A client must send a request's complete headers within the header timeout
//! (`--header-timeout`), counted from when the connection is ready for a
//! request: right after the accept, and again after every response while the
//! connection is kept alive. A connection that sends nothing, half a request
//! line, or headers one byte at a time is closed when it passes; so is an idle
//! keep-alive connection. Bodies have their own timeout in the handlers that
//! read them (`--body-timeout`, see [`http_api`](crate::http_api)); a
//! WebSocket, once upgraded, has the `hello` timeout
//! ([`admission`](crate::admission)).
//!
//! Only HTTP/1.1 is spoken (WebSockets need it; HTTP/2 prior knowledge would
//! let a client hold a connection before any header timer starts).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Pause after an accept error other than a connection reset (e.g. too many
/// open files), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `signal` resolves; then stops
/// accepting, lets every HTTP connection finish the request it is serving
/// (a kept-alive idle one closes at once) and returns when they have ended.
/// Upgraded connections (WebSockets) are not waited for: they are no longer
/// HTTP once upgraded.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let mut signal = std::pin::pin!(signal);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
            () = &mut signal => break,
        };
        // Small frames must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stopping = stopping.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(tcp), service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("HTTP connection ended: {e}");
                        }
                        break;
                    }
                    changed = stopping.wait_for(|stop| *stop), if !asked => {
                        asked = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(alive);
    // `recv` gives `None` once every connection task has dropped its sender.
    while all_ended.recv().await.is_some() {}
    Ok(())
}

/// Errors that concern one connection, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}
