//! The HTTP side of the bridge: `POST /v1/publish` and the JSON error bodies.
//!
//! A publish is checked in this order, so that an unauthenticated client
//! never makes the bridge hold its body:
//!
//! 1. the `Authorization: Bearer <token>` header (scheme in any case): `401`
//!    at once, the body unread (the connection is then closed);
//! 2. the rate: all HTTP publishes together share one `--publish-rate` /
//!    `--publish-burst` token bucket: `429 RATE_LIMITED` at once beyond it,
//!    the body unread;
//! 3. a declared `Content-Length` above `--max-frame`: `413` at once;
//! 4. the body, read up to `--max-frame` bytes (`413` beyond) within
//!    `--body-timeout` (`408 BODY_TIMEOUT` after).
//!
//! Every error is `{"code", "message"}` JSON, including the ones axum
//! produces itself on these routes (`json_errors`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use swarmbus_core::{CodecError, EnvelopeInput};

use crate::auth::bearer_token;
use crate::error::BridgeError;
use crate::server::Bridge;

/// An error as an HTTP response: `{code, message}`, never internals.
pub(crate) struct HttpError(pub StatusCode, pub BridgeError);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.1.code(), "message": self.1.to_string() });
        (self.0, Json(body)).into_response()
    }
}

/// The HTTP status of a refused publish.
fn status(error: &BridgeError) -> StatusCode {
    match error {
        BridgeError::Codec(CodecError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        BridgeError::AuthRequired
        | BridgeError::TokenExpired
        | BridgeError::TokenNotYetValid
        | BridgeError::InvalidToken => StatusCode::UNAUTHORIZED,
        BridgeError::Unavailable(_) | BridgeError::TooManyUnauthenticated(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        BridgeError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        BridgeError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        BridgeError::Forbidden(_) => StatusCode::FORBIDDEN,
        BridgeError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Is this `Content-Type` JSON? `application/json` in any case, with or without parameters.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// `POST /v1/publish`: a MessagePack envelope (any content type but JSON)
/// or JSON `{topic, payload, priority?, ttlMs?, sender?, swarm?, correlationId?}`
/// whose payload is re-encoded as MessagePack.
pub(crate) async fn publish(State(bridge): State<Arc<Bridge>>, headers: HeaderMap, body: Body) -> Response {
    match try_publish(&bridge, &headers, body).await {
        Ok(response) => response,
        Err(e) => {
            bridge.metrics.error(e.code());
            let unread_body = matches!(
                status(&e),
                StatusCode::UNAUTHORIZED
                    | StatusCode::PAYLOAD_TOO_LARGE
                    | StatusCode::REQUEST_TIMEOUT
                    | StatusCode::TOO_MANY_REQUESTS
            );
            let mut response = HttpError(status(&e), e).into_response();
            if unread_body {
                // The body was not (fully) read: the connection cannot carry another request.
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

async fn try_publish(bridge: &Bridge, headers: &HeaderMap, body: Body) -> Result<Response, BridgeError> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let grants = bridge.authenticate(token)?;
    bridge.take_http_publish()?;
    let max = bridge.config().max_frame;
    let too_large = |len| BridgeError::Codec(CodecError::TooLarge { field: "body", len, max });
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared.filter(|&len| len > max) {
        return Err(too_large(len));
    }
    let body = tokio::time::timeout(bridge.config().body_timeout, read_body(body, max))
        .await
        .map_err(|_| BridgeError::BodyTimeout)?
        .map_err(|read| read.map_or_else(|| too_large(max + 1), BridgeError::Malformed))?;
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json);
    let bytes = if json { json_envelope(&body)? } else { body.to_vec() };
    let delivered = bridge.publish(&bytes, &grants).await?;
    let id = swarmbus_core::envelope::peek_header(&bytes).map(|h| h.id).unwrap_or_default();
    Ok(Json(serde_json::json!({ "id": id, "delivered": delivered })).into_response())
}

/// The body, at most `max` bytes; `Err(None)` when longer, `Err(Some(why))`
/// when the client's stream failed.
async fn read_body(body: Body, max: usize) -> Result<Bytes, Option<String>> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Some(format!("reading the body: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

fn json_envelope(body: &[u8]) -> Result<Vec<u8>, BridgeError> {
    let input: EnvelopeInput<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| BridgeError::Malformed(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let envelope = input.into_envelope(next_http_id, now, |payload| {
        rmp_serde::to_vec(&payload).map_err(|e| BridgeError::Malformed(e.to_string()))
    })?;
    envelope.encode().map_err(BridgeError::Codec)
}

fn next_http_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Most bytes of a plain-text error kept as the JSON `message`.
const MAX_MESSAGE: usize = 1024;

/// Turns an error response that is not JSON (axum's own rejections: 405, a
/// refused WebSocket upgrade, ...) into `{code, message}` with the same status.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json_already =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json);
    if !(status.is_client_error() || status.is_server_error()) || is_json_already {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let message =
        if message.is_empty() { status.canonical_reason().unwrap_or_default().to_owned() } else { message };
    let code = status.canonical_reason().unwrap_or("ERROR").to_ascii_uppercase().replace([' ', '-'], "_");
    let mut response =
        (status, Json(serde_json::json!({ "code": code, "message": message }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        // Regression: `Application/JSON` was not recognised as JSON.
        for yes in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " APPLICATION/JSON;x=y",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in ["application/msgpack", "application/jsonx", "text/json", ""] {
            assert!(!is_json(no), "{no}");
        }
    }
}
