//! Bearer-token authentication: JWTs verified against the key ring (`keys`), revocation
//! by `jti`, the tenant chosen by `domain` among those the token may act for, and the scope
//! each method needs.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::context::Principal;
use crate::error::ApiError;
use crate::query::QueryParams;
use crate::state::AppState;
pub use crate::token::{Claims, SCOPE_READ, SCOPE_WRITE, valid_tenant};

/// The query parameter that picks the tenant when a token may act for several.
pub const DOMAIN_PARAM: &str = "domain";

/// The app state and the principal of a request that passed authentication; `None` for
/// one that did not (middleware inside `middleware` lets those through untouched).
pub fn authenticated(req: &ServiceRequest) -> Option<(web::Data<AppState>, Principal)> {
    let state = req.app_data::<web::Data<AppState>>().cloned()?;
    let principal = req.extensions().get::<Principal>().cloned()?;
    Some((state, principal))
}

/// Authenticates every request under `/scim/v2` and checks the scope its method needs.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let principal = match authorize(&req) {
        Ok(p) => p,
        Err(Refusal {
            error,
            client: Some(principal),
        }) => {
            // A client that proved who it is but may not do this goes on to its rate
            // limit (a refused client must not get more requests through than an allowed
            // one) and is refused after it (`enforce`). It is audited: the row goes to
            // the tenant it acted for, or to its own default tenant when it asked for one
            // it may not act for (never into the tenant it tried to reach).
            req.extensions_mut().insert(*principal);
            req.extensions_mut().insert(Refused(error));
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Err(Refusal {
            error,
            client: None,
        }) => {
            return Ok(req.error_response(error));
        }
    };
    let span = tracing::Span::current();
    span.record("tenant", principal.tenant.as_str());
    span.record("subject", principal.subject.as_str());
    if let Some(jti) = &principal.jti {
        span.record("jti", jti.as_str());
    }
    req.extensions_mut().insert(principal);
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A refusal of an authenticated client for its scope or tenant, answered by `enforce`
/// once the client's rate limit has counted the request.
struct Refused(ApiError);

/// Answers the refusal `middleware` left on the request, after the per-token rate limit.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = req.extensions_mut().remove::<Refused>();
    match refused {
        Some(Refused(error)) => Ok(req.error_response(error)),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Why a request was refused, and who sent it when the token itself was good.
struct Refusal {
    error: ApiError,
    client: Option<Box<Principal>>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            client: None,
        }
    }
}

/// The scope a request needs: reading for GET and HEAD and for `.search`, which is a
/// query sent with POST (RFC 7644 §3.4.3); writing for every other method.
pub fn scope_needed(method: &Method, path: &str) -> &'static str {
    let search = *method == Method::POST && path.trim_end_matches('/').ends_with("/.search");
    if matches!(*method, Method::GET | Method::HEAD) || search {
        SCOPE_READ
    } else {
        SCOPE_WRITE
    }
}

/// Verifies the bearer token, picks the tenant and checks the scope the request needs.
fn authorize(req: &ServiceRequest) -> Result<Principal, Refusal> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let claims = authenticate(req.request(), state)?;
    let principal = |tenant: String| {
        Box::new(Principal {
            tenant,
            subject: claims.sub.clone(),
            jti: claims.jti.clone(),
        })
    };
    let tenant = tenant_for(req.request(), &claims, state).map_err(|error| Refusal {
        error,
        client: Some(principal(claims.tenant.clone())),
    })?;
    // The path as routing sees it (percent-decoded): `/Users/%2Esearch` is a search.
    let needed = scope_needed(req.method(), req.match_info().as_str());
    let what = if needed == SCOPE_READ {
        "reading"
    } else {
        "writing"
    };
    require_scope(&claims, &[needed], what).map_err(|error| Refusal {
        error,
        client: Some(principal(tenant.clone())),
    })?;
    Ok(*principal(tenant))
}

/// The tenant a request acts for: `domain` when given, else the token's default; it must
/// be one the token may act for, and registered.
pub fn tenant_for(
    req: &HttpRequest,
    claims: &Claims,
    state: &AppState,
) -> Result<String, ApiError> {
    let tenant = match domain_param(req)? {
        Some(t) if !valid_tenant(&t) => {
            return Err(ApiError::Scim(scimgate_model::ScimError::new(
                400,
                Some(scimgate_model::ScimType::InvalidValue),
                format!("'{DOMAIN_PARAM}' must be a tenant name (1-64 of A-Z a-z 0-9 . _ -)"),
            )));
        }
        Some(t) => t,
        None => claims.tenant.clone(),
    };
    if !claims.may_act_for(&tenant) {
        return Err(ApiError::Forbidden(format!(
            "the token may not act for the tenant '{tenant}'"
        )));
    }
    if let Some(allow) = state
        .settings
        .tenants
        .get(&tenant)
        .map(|policy| &policy.allow_from)
        .filter(|allow| !allow.is_empty())
    {
        let client = state.settings.network.client_addr(req);
        if !crate::network::allowed_by(allow, client) {
            return Err(ApiError::Forbidden(format!(
                "requests from {} are not allowed for the tenant '{tenant}' (tenants.{tenant}.allow_from)",
                client.map_or("an unknown address".into(), |ip| ip.to_string())
            )));
        }
    }
    if !state.access.current().tenants.contains(&tenant) {
        return Err(ApiError::Forbidden(format!(
            "the tenant '{tenant}' is not registered (scimgate tenant add)"
        )));
    }
    Ok(tenant)
}

/// The `domain` query parameter, its name matched case-insensitively like every other
/// parameter's: a tenant chosen by `Domain=` must not silently become the default one.
/// Given twice with different values, the request is ambiguous and refused.
fn domain_param(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let query = QueryParams::parse(req.query_string())?;
    let mut found: Option<&str> = None;
    for value in query.all(DOMAIN_PARAM) {
        match found {
            Some(first) if first != value => {
                return Err(ApiError::Scim(scimgate_model::ScimError::new(
                    400,
                    Some(scimgate_model::ScimType::InvalidValue),
                    format!(
                        "'{DOMAIN_PARAM}' is given twice with different tenants ('{}' and '{}')",
                        scimgate_model::excerpt(first, 64),
                        scimgate_model::excerpt(value, 64)
                    ),
                )));
            }
            Some(_) => {}
            None => found = Some(value),
        }
    }
    Ok(found.map(str::to_owned))
}

/// 403 unless the token has one of `accepted`, naming them and what they are `needed_for`.
pub fn require_scope(claims: &Claims, accepted: &[&str], needed_for: &str) -> Result<(), ApiError> {
    if accepted.iter().any(|s| claims.has_scope(s)) {
        return Ok(());
    }
    let names: Vec<String> = accepted.iter().map(|s| format!("'{s}'")).collect();
    Err(ApiError::Forbidden(format!(
        "the token lacks the {} scope needed for {needed_for}",
        names.join(" or ")
    )))
}

/// Marks a request that a handler authenticated itself (the routes outside `/scim/v2`),
/// as the middleware does for SCIM requests: its connection may be kept alive.
pub fn mark_authenticated(req: &HttpRequest, claims: &Claims, tenant: String) {
    req.extensions_mut().insert(Principal {
        tenant,
        subject: claims.sub.clone(),
        jti: claims.jti.clone(),
    });
}

/// Verifies the request's bearer token against the key ring, and that it is not revoked.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    let token = bearer_token(req)?;
    let refused = |reason: String| ApiError::Unauthorized {
        detail: format!("invalid bearer token: {reason}"),
        token_sent: true,
    };
    let claims = state
        .keys
        .verify(token, state.settings.token_leeway_secs)
        .map_err(refused)?;
    if !valid_tenant(&claims.tenant) || !claims.tenants.iter().all(|t| valid_tenant(t)) {
        return Err(refused("a tenant claim is not a valid tenant name".into()));
    }
    let access = state.access.current();
    if let Some(jti) = &claims.jti
        && access.revoked.contains(jti)
    {
        return Err(refused(format!("token '{jti}' has been revoked")));
    }
    if let Some(client) = &claims.client_id
        && !access.clients.contains_key(client)
    {
        return Err(refused(format!(
            "OAuth client '{}' has been removed",
            scimgate_model::excerpt(client, 64)
        )));
    }
    Ok(claims)
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let missing = || ApiError::Unauthorized {
        detail: "this endpoint needs 'Authorization: Bearer <token>'".into(),
        token_sent: false,
    };
    let mut values = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION);
    let value = values.next().ok_or_else(missing)?;
    if values.next().is_some() {
        // Which one would count is a guess a proxy and scimgate could make differently.
        return Err(ApiError::Unauthorized {
            detail: "the request carries more than one Authorization header".into(),
            token_sent: true,
        });
    }
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Principal>().cloned().ok_or_else(|| {
            ApiError::Unauthorized {
                detail: "not authenticated".into(),
                token_sent: false,
            }
        }))
    }
}
