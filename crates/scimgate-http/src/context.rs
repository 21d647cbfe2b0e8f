//! Who and which request is being served: the request's id and, once authenticated, its
//! principal. Both live in the request's extensions (put there by the `request_id` and
//! `auth` middleware) and are passed on explicitly to the work they concern: the write
//! report, plugins, error bodies and the audit row. Nothing here knows the rest of the
//! crate.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

/// The id of one request: the client's `X-Request-Id` when sane, else generated. Quoted in
/// 5xx bodies and given to plugins, so that a failure can be found in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn new(id: &str) -> RequestId {
        RequestId(Arc::from(id))
    }

    /// The id of `req`; empty outside the `request_id` middleware (unit tests).
    pub fn of(req: &HttpRequest) -> RequestId {
        req.extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(RequestId::of(req)))
    }
}

/// Who an authenticated request is and which tenant it acts for; put on every request
/// under `/scim/v2` (a handler takes it as an argument: `auth` says how).
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub subject: String,
    pub jti: Option<String>,
}
