//! A request id on every request (`X-Request-Id` honoured when sane, else generated), a root
//! tracing span carrying it, and one log line per request with its status and latency.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::ConnectionType;
use actix_web::{HttpMessage, web};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use crate::context::{Principal, RequestId};
use crate::error::ApiError;
use crate::state::AppState;

pub const HEADER: &str = "x-request-id";

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = method_name(req.method());
    let span = tracing::info_span!(
        "request",
        method = method,
        path = %scimgate_model::excerpt(req.path(), 256),
        request_id = %id,
        tenant = tracing::field::Empty,
        subject = tracing::field::Empty,
        jti = tracing::field::Empty,
    );
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>();
    let metrics = state.map(|s| Arc::clone(&s.metrics));
    let connections = state.map(|s| Arc::clone(&s.connections));
    req.extensions_mut().insert(RequestId::new(&id));
    // Inner middleware answers its refusals as responses, so every answer passes here.
    let mut resp = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    if resp.status().is_server_error() {
        resp = with_request_id(resp, &id, &span);
    }
    // A connection that never authenticated (a health probe, a refused token) is not kept
    // open for the keep-alive time: idle file descriptors are what exhaust a server first.
    // Near the connection cap, no connection is kept open after its answer.
    let near_cap = connections.is_some_and(|c| c.near_cap());
    if near_cap || resp.request().extensions().get::<Principal>().is_none() {
        resp.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut()
            .insert(HeaderName::from_static(HEADER), v);
    }
    let took = started.elapsed();
    if let Some(metrics) = metrics {
        // The route pattern, not the path: ids must not become label values.
        let route = resp.request().match_pattern();
        metrics.observe_request(
            method,
            route.as_deref().unwrap_or("unmatched"),
            resp.status().as_u16(),
            took,
        );
    }
    span.in_scope(|| {
        tracing::info!(
            status = resp.status().as_u16(),
            micros = took.as_micros() as u64,
            "served"
        );
    });
    Ok(resp)
}

/// A server-side failure is logged here, once, with its cause (a 503, the server being
/// busy, as a warning), and its detail made to quote the request id: the error was made
/// into a response where the id was not at hand. Only the body changes: the headers the
/// inner middleware added (rate-limit counts, `Retry-After`) stay.
fn with_request_id(
    resp: ServiceResponse<BoxBody>,
    id: &str,
    span: &tracing::Span,
) -> ServiceResponse<BoxBody> {
    let Some(err) = resp
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
    else {
        return resp;
    };
    let status = resp.status().as_u16();
    span.in_scope(|| {
        if status == 503 {
            tracing::warn!(error = %err, status, "request refused: the server is busy");
        } else {
            tracing::error!(error = %err, status, "request failed");
        }
    });
    let body = err.answer(id).to_json().to_string();
    resp.map_body(|_, _| BoxBody::new(body))
}

/// The method as logs and metric labels name it: a client may send any token as a method,
/// and each distinct label value is a new time series kept for the life of the process.
fn method_name(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

/// Client-supplied ids are echoed into logs and headers, so only short printable ones.
fn acceptable(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}
