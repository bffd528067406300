//! Probes for an orchestrator, plain text, no auth:
//!
//! | route | answers | use it as |
//! |---|---|---|
//! | `GET /livez` | `200 ok` while the process serves HTTP, whatever Redis does | liveness: a failure means restart the bridge |
//! | `GET /readyz` | `200 ok` when the bridge can deliver ([`Bridge::is_ready`]: always in embedded mode, in Redis mode while the subscription is up and Redis answers its health `PING` within `--redis-timeout`), else `503` | readiness: a failure means send no traffic here for now |
//! | `GET /healthz` | the same as `/readyz` (kept for existing probes) | |
//!
//! A Redis outage makes every bridge on that Redis unready, never "dead":
//! restarting bridges would not bring Redis back.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::Bridge;

/// `/livez`, `/readyz` and `/healthz`, to merge into the bridge's router.
pub fn routes() -> Router<Arc<Bridge>> {
    Router::new().route("/livez", get(livez)).route("/readyz", get(readyz)).route("/healthz", get(readyz))
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(bridge): State<Arc<Bridge>>) -> Response {
    if bridge.is_ready() {
        "ok\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable\n").into_response()
    }
}
