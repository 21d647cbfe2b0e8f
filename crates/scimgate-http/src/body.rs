//! Request bodies: content type checked (RFC 7644 §3.1), size limited while reading, and JSON
//! parsed with errors that say where the syntax broke.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::context::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use scimgate_model::ScimError;

/// Reads and parses a JSON body of at most `max_body_bytes`, which must arrive whole within
/// `body_timeout_secs` (a client that trickles its body holds a connection, not a worker).
pub async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Value, ApiError> {
    read_json_within(req, payload, state, state.settings.max_body_bytes).await
}

/// `read_json` with a limit of its own (a Bulk request's `maxPayloadSize`).
pub async fn read_json_within(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    limit: usize,
) -> Result<Value, ApiError> {
    check_content_type(req)?;
    let settings = &state.settings;
    let timeout = std::time::Duration::from_secs(settings.body_timeout_secs);
    actix_web::rt::time::timeout(timeout, read(req, payload, state, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout(settings.body_timeout_secs))?
}

async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    limit: usize,
) -> Result<Value, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    // Sized from the declared length (already checked against the limit), up to 256 KiB
    // before the bytes arrive: a slow client cannot make the server hold a megabyte for a
    // body it has not sent.
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(0).min(256 << 10));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ScimError::invalid_syntax(format!("could not read the request body: {e}"))
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ScimError::invalid_syntax(
            "the request body is empty; a JSON object is expected",
        )
        .into());
    }
    let large = bytes.len() >= PARSE_OFF_WORKER_BYTES;
    let parse = move || {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::from(ScimError::invalid_syntax(format!(
                "the request body is not valid JSON: {e}"
            )))
        })
    };
    // A large body takes milliseconds of a core to parse and tens of megabytes once parsed:
    // it is parsed on a blocking thread (the async worker goes on serving other clients),
    // and the request then holds one of its tenant's large-request slots until it is
    // answered (the slot lives in the request's extensions), so that one tenant's large
    // requests are worked on a few at a time and leave cores and memory to the others.
    if large {
        let tenant = req
            .extensions()
            .get::<Principal>()
            .map(|p| p.tenant.clone())
            .unwrap_or_default();
        let slots = Arc::clone(&state.parsing);
        let (value, slot) = web::block(move || {
            let slot = slots.acquire(&tenant).map_err(ApiError::Overloaded)?;
            Ok::<_, ApiError>((parse()?, slot))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))??;
        req.extensions_mut().insert(LargeRequest(slot));
        Ok(value)
    } else {
        parse()
    }
}

/// A large request's slot, held until the request is dropped.
struct LargeRequest(#[allow(dead_code)] scimgate_limits::Slot);

/// Bodies from this size up are parsed off the async workers.
const PARSE_OFF_WORKER_BYTES: usize = 64 * 1024;

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type is missing; send application/scim+json or application/json".into(),
        ));
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/scim+json")
        || essence.eq_ignore_ascii_case("application/json")
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{text}' is not supported; send application/scim+json or application/json"
        )))
    }
}
