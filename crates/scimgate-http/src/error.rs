//! The one place where every failure becomes an HTTP status and a SCIM error body
//! (RFC 7644 §3.12). Server-side causes are logged once and never sent to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use scimgate_model::{ScimError, ScimType};
use scimgate_store::StoreError;

use crate::hooks::HookError;

pub const SCIM_JSON: &str = "application/scim+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Missing or invalid credentials; `token_sent` selects the `WWW-Authenticate` error.
    #[error("{detail}")]
    Unauthorized { detail: String, token_sent: bool },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotImplemented(String),
    /// A shared resource (hashing, plugin instances, request slots) had no room for this
    /// request within the wait: 503 with `Retry-After`, never a skipped step.
    #[error("overloaded: {0}")]
    Overloaded(scimgate_limits::Busy),
    /// A write hook (the operator's plugins) refused the write, failed, or could not run.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// A write without `If-Match` that other writes kept overtaking for its whole retry
    /// time: 503, to retry.
    #[error("the resource is being changed by other writes without pause")]
    Contended,
    /// Over a rate limit: 429 `application/problem+json` (RFC 9457), not a SCIM body.
    #[error("rate limit of {} requests per second (burst {}) exceeded for {}; retry in {} s", .0.limit.requests_per_second, .0.limit.burst, .0.whose, .0.wait_secs.max(1))]
    RateLimited(crate::rate_limit::Throttled),
    /// A refusal of the token endpoint: an RFC 6749 §5.2 error (`error`,
    /// `error_description`), not a SCIM body, since OAuth clients read it.
    #[error("{code}: {description}")]
    OAuth {
        status: u16,
        code: &'static str,
        description: String,
    },
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The SCIM error a client sees. The one exhaustive mapping: a new variant does not
    /// compile until it is placed here.
    pub fn to_scim(&self) -> ScimError {
        use ApiError as A;
        use StoreError as S;
        match self {
            A::Scim(e) => e.clone(),
            A::Unauthorized { detail, .. } => ScimError::new(401, None, detail.clone()),
            A::Forbidden(d) => ScimError::new(403, None, d.clone()),
            A::NotFound(d) => ScimError::new(404, None, d.clone()),
            A::MethodNotAllowed { .. } => ScimError::new(405, None, self.to_string()),
            A::PreconditionFailed(d) => ScimError::new(412, None, d.clone()),
            A::PayloadTooLarge(_) => ScimError::new(413, None, self.to_string()),
            A::BodyTimeout(_) => ScimError::new(408, None, self.to_string()),
            A::UnsupportedMediaType(d) => ScimError::new(415, None, d.clone()),
            A::NotImplemented(d) => ScimError::new(501, None, d.clone()),
            A::Overloaded(busy) => overloaded(busy.what),
            A::RateLimited(_) => ScimError::new(429, None, self.to_string()),
            A::OAuth { status, .. } => ScimError::new(*status, None, self.to_string()),
            A::Contended => ScimError::new(503, None, format!("{self}; retry later")),
            A::Hook(hook) => match hook {
                HookError::Refused(e) => e.clone(),
                HookError::Failed { plugin, class, .. } => {
                    ScimError::new(500, None, format!("plugin '{plugin}' failed: {class}"))
                }
                HookError::Busy { plugin, reason } => ScimError::new(
                    503,
                    None,
                    format!("plugin '{plugin}' {reason}; retry later"),
                ),
            },
            A::Internal(_) => server_error(500),
            A::Store(e) => match e {
                S::NotFound(rt, id) => ScimError::not_found(format!("no {rt} with id '{id}'")),
                S::VersionMismatch { .. } => ScimError::new(
                    412,
                    None,
                    "the resource changed since the version given in If-Match",
                ),
                S::UserNameTaken(name) => ScimError::uniqueness(format!(
                    "userName '{name}' is already taken in this tenant (compared case-insensitively)"
                )),
                S::MemberNotFound(id) => {
                    ScimError::invalid_value(format!("member '{id}' does not exist in this tenant"))
                }
                S::MemberTypeMismatch {
                    id,
                    claimed,
                    actual,
                } => ScimError::invalid_value(format!(
                    "member '{id}' is a {actual}, but 'members.type' says {claimed}"
                )),
                S::TenantNotRegistered(t) => ScimError::new(
                    403,
                    None,
                    format!("the tenant '{t}' is not registered (scimgate tenant add)"),
                ),
                S::SelfMembership(id) => {
                    ScimError::invalid_value(format!("group '{id}' cannot be a member of itself"))
                }
                S::UnsupportedFilter(d) => {
                    ScimError::bad_request(ScimType::InvalidFilter, d.clone())
                }
                S::UnsupportedSort(d) => ScimError::invalid_value(d.clone()),
                S::InvalidCursor(d) => ScimError::bad_request(ScimType::InvalidCursor, d.clone()),
                S::QueryTimeout(limit) => ScimError::new(
                    400,
                    Some(ScimType::TooMany),
                    format!(
                        "the query used more than its limit of {} ms of CPU time and was stopped; narrow the filter or ask for fewer resources",
                        limit.as_millis()
                    ),
                ),
                S::Busy(busy) => overloaded(busy.what),
                S::SchemasChanged => ScimError::new(
                    503,
                    None,
                    "the schemas changed while this write was checked; retry",
                ),
                S::PoolTimeout(_) | S::WriterGone | S::Commit(_) | S::Unreachable(_) => {
                    server_error(503)
                }
                S::DatabaseTooNew { .. }
                | S::Migration(_)
                | S::Corrupt(_)
                | S::Sqlite(_)
                | S::Postgres(_)
                | S::Transfer(_)
                | S::Setup(_)
                | S::Io(_) => server_error(500),
            },
        }
    }

    /// The SCIM error as the client who sent request `request_id` sees it: a server-side
    /// failure (500, 503) quotes the id, which the log line of the failure carries too, so
    /// that an operator can find the cause the body does not give.
    pub fn answer(&self, request_id: &str) -> ScimError {
        let mut scim = self.to_scim();
        if matches!(scim.status, 500 | 503) && !request_id.is_empty() {
            scim.detail = format!("{} (request id {request_id})", scim.detail);
        }
        scim
    }

    /// The whole answer: status, headers and body. The one place an error becomes a
    /// response (the request id is added to a 500's or 503's detail by `request_id`).
    fn render(&self) -> HttpResponse {
        if let ApiError::RateLimited(throttled) = self {
            return too_many(throttled, self.to_string());
        }
        if let ApiError::OAuth {
            status,
            code,
            description,
        } = self
        {
            return oauth_error(*status, code, description);
        }
        let scim = self.to_scim();
        let status = StatusCode::from_u16(scim.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = HttpResponse::build(status);
        resp.insert_header((header::CONTENT_TYPE, SCIM_JSON));
        match self {
            ApiError::Unauthorized { token_sent, .. } => {
                let challenge = if *token_sent {
                    r#"Bearer realm="scimgate", error="invalid_token""#
                } else {
                    r#"Bearer realm="scimgate""#
                };
                resp.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                ));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        // Every 503 is temporary: the client may retry, and is told when.
        if scim.status == 503 {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        resp.body(scim.to_json().to_string())
    }
}

/// A 5xx body: a generic detail, never the internal cause.
fn server_error(status: u16) -> ScimError {
    let what = if status == 503 {
        "the service is busy; retry later"
    } else {
        "internal error"
    };
    ScimError::new(status, None, what)
}

/// A 503 for a resource this request could not get its share of in time.
fn overloaded(what: &str) -> ScimError {
    ScimError::new(
        503,
        None,
        format!("the service is busy ({what}); retry later"),
    )
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.to_scim().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Without the request at hand: the `request_id` middleware, which has it, puts its id
    /// in a server-side failure's detail (and logs the failure).
    fn error_response(&self) -> HttpResponse {
        self.render()
    }
}

/// An RFC 6749 §5.2 error; a 401 (`invalid_client`) challenges for Basic credentials.
fn oauth_error(status: u16, code: &str, description: &str) -> HttpResponse {
    let mut resp =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST));
    if status == 401 {
        resp.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="scimgate""#),
        ));
    }
    resp.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(serde_json::json!({"error": code, "error_description": description}))
}

/// The 429: problem+json with `Retry-After` and the limit's headers.
fn too_many(r: &crate::rate_limit::Throttled, detail: String) -> HttpResponse {
    let wait = r.wait_secs.max(1).to_string();
    let body = serde_json::json!({
        "type": "https://www.rfc-editor.org/rfc/rfc6585#section-4",
        "title": "Too Many Requests",
        "status": 429,
        "detail": detail,
    });
    HttpResponse::TooManyRequests()
        .insert_header(("retry-after", wait.clone()))
        .insert_header((
            "ratelimit-policy",
            crate::rate_limit::policy_header(r.limiter, r.limit),
        ))
        .insert_header((
            "ratelimit",
            crate::rate_limit::state_header(r.limiter, 0, r.wait_secs.max(1)),
        ))
        .content_type("application/problem+json")
        .body(body.to_string())
}

/// The SCIM 404 for unknown routes.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no endpoint at '{}'",
        req.path()
    )))
}

/// A handler for methods a route does not serve.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(actix_web::HttpRequest) -> std::future::Ready<Result<HttpResponse, ApiError>> + Clone {
    move |req| {
        std::future::ready(Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimgate_model::ResourceType;
    use std::time::Duration;

    fn busy() -> scimgate_limits::Busy {
        scimgate_limits::Busy {
            what: "password hashing",
            for_tenant: "",
            waited_ms: 5,
        }
    }

    fn status(e: ApiError) -> (u16, Option<&'static str>) {
        let s = e.to_scim();
        (s.status, s.scim_type.map(ScimType::as_str))
    }

    #[test]
    fn every_error_maps_to_its_status_and_scim_type() {
        let sqlite = rusqlite_error();
        let rows: Vec<(ApiError, u16, Option<&str>)> = vec![
            (
                ScimError::invalid_syntax("x").into(),
                400,
                Some("invalidSyntax"),
            ),
            (
                ApiError::Unauthorized {
                    detail: "x".into(),
                    token_sent: false,
                },
                401,
                None,
            ),
            (ApiError::Forbidden("x".into()), 403, None),
            (ApiError::NotFound("x".into()), 404, None),
            (
                ApiError::MethodNotAllowed {
                    method: "PATCH".into(),
                    allow: "GET",
                },
                405,
                None,
            ),
            (ApiError::PreconditionFailed("x".into()), 412, None),
            (ApiError::PayloadTooLarge(1), 413, None),
            (ApiError::BodyTimeout(1), 408, None),
            (ApiError::UnsupportedMediaType("x".into()), 415, None),
            (ApiError::NotImplemented("x".into()), 501, None),
            (ApiError::Internal("x".into()), 500, None),
            (ApiError::Overloaded(busy()), 503, None),
            (StoreError::Busy(busy()).into(), 503, None),
            (
                StoreError::QueryTimeout(Duration::from_secs(5)).into(),
                400,
                Some("tooMany"),
            ),
            (
                StoreError::NotFound(ResourceType::User, "x".into()).into(),
                404,
                None,
            ),
            (StoreError::VersionMismatch { current: 2 }.into(), 412, None),
            (
                StoreError::UserNameTaken("x".into()).into(),
                409,
                Some("uniqueness"),
            ),
            (
                StoreError::MemberNotFound("x".into()).into(),
                400,
                Some("invalidValue"),
            ),
            (
                StoreError::MemberTypeMismatch {
                    id: "x".into(),
                    claimed: ResourceType::User,
                    actual: ResourceType::Group,
                }
                .into(),
                400,
                Some("invalidValue"),
            ),
            (
                StoreError::SelfMembership("x".into()).into(),
                400,
                Some("invalidValue"),
            ),
            (
                StoreError::UnsupportedFilter("x".into()).into(),
                400,
                Some("invalidFilter"),
            ),
            (
                StoreError::UnsupportedSort("x".into()).into(),
                400,
                Some("invalidValue"),
            ),
            (
                StoreError::InvalidCursor("x".into()).into(),
                400,
                Some("invalidCursor"),
            ),
            (
                StoreError::PoolTimeout(Duration::from_secs(1)).into(),
                503,
                None,
            ),
            (StoreError::WriterGone.into(), 503, None),
            (StoreError::Commit("x".into()).into(), 503, None),
            (
                StoreError::DatabaseTooNew {
                    found: 2,
                    supported: 1,
                }
                .into(),
                500,
                None,
            ),
            (StoreError::Migration("x".into()).into(), 500, None),
            (StoreError::Corrupt("x".into()).into(), 500, None),
            (StoreError::Sqlite(sqlite).into(), 500, None),
            (StoreError::Io(std::io::Error::other("x")).into(), 500, None),
        ];
        for (err, code, scim_type) in rows {
            let label = format!("{err:?}");
            assert_eq!(status(err), (code, scim_type), "{label}");
        }
    }

    #[test]
    fn server_errors_hide_the_cause() {
        let body = ApiError::Internal("disk on fire at /var/secret".into()).to_scim();
        assert!(!body.detail.contains("secret"));
        assert!(body.detail.starts_with("internal error"));
    }

    #[test]
    fn only_server_side_failures_quote_the_request_id() {
        let rows: Vec<(ApiError, bool)> = vec![
            (ApiError::Internal("x".into()), true),
            (ApiError::Overloaded(busy()), true),
            (ApiError::Contended, true),
            (StoreError::WriterGone.into(), true),
            (ApiError::NotImplemented("x".into()), false),
            (ApiError::NotFound("x".into()), false),
            (ScimError::invalid_syntax("x").into(), false),
        ];
        for (err, quoted) in rows {
            let detail = err.answer("req-7").detail;
            assert_eq!(detail.ends_with(" (request id req-7)"), quoted, "{detail}");
            assert!(!err.answer("").detail.contains("request id"), "{err:?}");
        }
    }

    fn rusqlite_error() -> rusqlite::Error {
        rusqlite::Error::InvalidQuery
    }
}
