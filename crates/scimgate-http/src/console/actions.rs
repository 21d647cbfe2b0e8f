//! What the admin page changes: sign-in and sign-out, a receiver re-enabled or replayed,
//! the plugins reloaded, a token revoked or rotated, a client's secret rotated or the
//! client removed. Each needs the session's CSRF token, goes through the same
//! administration calls as the CLI (`scimgate_store::Admin`), and is audited as the
//! operator.

use actix_web::{HttpRequest, HttpResponse, web};
use scimgate_store::{ClientSecret, Revocation, TokenRecord};
use serde_json::json;

use super::operator::{audit, audit_action, signed_in_changing, with_admin};
use super::session::{self, Operator, SCOPE_SIGN_IN};
use crate::error::ApiError;
use crate::state::AppState;
use crate::token::{SCOPE_ADMIN, TokenRequest};

#[derive(serde::Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /admin/session`: a token with `scim:admin` (pasted), or a sign-in link's token
/// (`admin:sign-in`, revoked here so that the link works once), opens a session.
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    session::same_origin(&req)?;
    let claims = state
        .keys
        .verify(body.token.trim(), state.settings.token_leeway_secs)
        .map_err(|reason| ApiError::Unauthorized {
            detail: format!("the token does not sign in: {reason}"),
            token_sent: true,
        })?;
    let access = state.access.current();
    if claims
        .jti
        .as_ref()
        .is_some_and(|j| access.revoked.contains(j))
    {
        return Err(ApiError::Unauthorized {
            detail: "this sign-in link or token was used or revoked; ask for a new one (scimgate admin login-url)".into(),
            token_sent: true,
        });
    }
    let link = claims.has_scope(SCOPE_SIGN_IN);
    if !link && !claims.has_scope(SCOPE_ADMIN) {
        return Err(ApiError::Forbidden(
            "the admin page needs a token with the 'scim:admin' scope, or a sign-in link".into(),
        ));
    }
    if link {
        // Single use, on every instance: revoked before the session opens.
        let jti = claims.jti.clone().ok_or_else(|| ApiError::Unauthorized {
            detail: "a sign-in link's token must carry a jti".into(),
            token_sent: true,
        })?;
        let now = state.clock.now().unix_timestamp();
        let revoked = with_admin(&state, move |a| a.revoke_token(&jti, now, false)).await?;
        if !matches!(revoked, Revocation::Revoked) {
            return Err(ApiError::Unauthorized {
                detail: "this sign-in link was already used; ask for a new one (scimgate admin login-url)".into(),
                token_sent: true,
            });
        }
    }
    let mut tenants = vec![claims.tenant.clone()];
    tenants.extend(
        claims
            .tenants
            .iter()
            .filter(|t| **t != claims.tenant)
            .cloned(),
    );
    // A pasted token's session ends with the token (its expiry, its revocation); a link's
    // lasts the session's own limits.
    let lifetime = if link {
        std::time::Duration::MAX
    } else {
        let left = claims.exp - state.clock.now().unix_timestamp();
        std::time::Duration::from_secs(u64::try_from(left).unwrap_or(0))
    };
    let revocable = if link { None } else { claims.jti.clone() };
    let (id, op) = state.console.sessions.open(
        claims.sub.clone(),
        tenants,
        claims.jti.clone(),
        revocable,
        lifetime,
    )?;
    audit_action(
        &state,
        &op,
        &op.tenants.clone(),
        "sign in",
        if link { "sign-in link" } else { "token" },
    );
    Ok(HttpResponse::Ok()
        .cookie(session::cookie(&id, secure(&req)))
        .json(json!({"subject": op.subject, "tenants": op.tenants, "csrf": op.csrf})))
}

fn secure(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    state.console.sessions.close(&req);
    audit_action(&state, &op, &op.tenants.clone(), "sign out", &op.subject);
    Ok(HttpResponse::NoContent()
        .cookie(session::removal(secure(&req)))
        .finish())
}

pub async fn enable_receiver(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let consumer = path.into_inner();
    let c = consumer.clone();
    let dead_in: Vec<String> = with_admin(&state, move |a| {
        Ok(a.event_positions()?
            .into_iter()
            .filter(|p| p.consumer == c && p.state == "dead")
            .map(|p| p.tenant)
            .collect())
    })
    .await?;
    if dead_in.is_empty() {
        return Err(ApiError::NotFound(format!(
            "'{}' is not dead-lettered in this session's tenants",
            scimgate_model::excerpt(&consumer, 64)
        )));
    }
    if dead_in.iter().any(|t| !op.tenants.contains(t)) {
        // Re-enabling is for every tenant at once (as `scimgate events enable`).
        return Err(ApiError::Forbidden(format!(
            "'{}' is also dead-lettered in tenants this session may not see; re-enable it with `scimgate events enable`",
            scimgate_model::excerpt(&consumer, 64)
        )));
    }
    let c = consumer.clone();
    let enabled = with_admin(&state, move |a| a.enable_consumer(&c)).await?;
    audit_action(
        &state,
        &op,
        &op.tenants.clone(),
        "enable receiver",
        &consumer,
    );
    Ok(HttpResponse::Ok().json(json!({"enabledInTenants": enabled})))
}

#[derive(serde::Deserialize)]
pub struct Replay {
    tenant: String,
    from: i64,
}

pub async fn replay_receiver(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Replay>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let tenant = super::operator::chosen_tenant(&op, Some(&body.tenant))?;
    let consumer = path.into_inner();
    let (c, t, from) = (consumer.clone(), tenant.clone(), body.from.max(0));
    with_admin(&state, move |a| a.request_replay(&c, &t, from)).await?;
    audit(
        &state,
        &op,
        &tenant,
        "replay receiver",
        Some(consumer),
        200,
        Some(format!("from event {from}")),
    );
    Ok(HttpResponse::NoContent().finish())
}

pub async fn reload_plugins(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let reload =
        state.console.reload.get().ok_or_else(|| {
            ApiError::NotImplemented("this server cannot reload its plugins".into())
        })?;
    reload().map_err(ApiError::Internal)?;
    audit_action(
        &state,
        &op,
        &op.tenants.clone(),
        "reload plugins",
        "plugins",
    );
    Ok(HttpResponse::Accepted()
        .json(json!({"reload": "asked; the log and /readyz say how it went"})))
}

/// The record of `jti` when every tenant it names is the operator's.
async fn own_token(
    state: &web::Data<AppState>,
    op: &Operator,
    jti: &str,
) -> Result<TokenRecord, ApiError> {
    let j = jti.to_owned();
    let found = with_admin(state, move |a| {
        Ok(a.tokens()?.into_iter().find(|t| t.jti == j))
    })
    .await?;
    match found {
        Some(t) if !t.tenants.is_empty() && t.tenants.iter().all(|x| op.tenants.contains(x)) => {
            Ok(t)
        }
        _ => Err(ApiError::NotFound(format!(
            "no token '{}' of this session's tenants",
            scimgate_model::excerpt(jti, 64)
        ))),
    }
}

pub async fn revoke_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let record = own_token(&state, &op, &path).await?;
    let now = state.clock.now().unix_timestamp();
    let jti = record.jti.clone();
    with_admin(&state, move |a| a.revoke_token(&jti, now, false)).await?;
    audit_action(&state, &op, &record.tenants, "revoke token", &record.jti);
    Ok(HttpResponse::NoContent().finish())
}

/// A new token with the same subject, tenants, scopes and lifetime, shown once; the old
/// one keeps working until it is revoked (so that the IdP can be given the new one first).
pub async fn rotate_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let old = own_token(&state, &op, &path).await?;
    let now = state.clock.now().unix_timestamp();
    let refused = |why: &str| {
        Err(ApiError::Scim(scimgate_model::ScimError::invalid_value(
            format!("token '{}' {why}: only a valid token is rotated", old.jti),
        )))
    };
    if old.revoked_at.is_some() {
        return refused("is revoked");
    }
    if old.expires_at.is_some_and(|e| e <= now) {
        return refused("has expired");
    }
    if old
        .scope
        .as_deref()
        .is_some_and(|s| s.split_ascii_whitespace().any(|x| x == SCOPE_SIGN_IN))
    {
        return refused("is a sign-in link's");
    }
    let ttl = match (old.issued_at, old.expires_at) {
        (Some(i), Some(e)) if e > i => u64::try_from(e - i).unwrap_or(3600),
        _ => 365 * 24 * 3600,
    };
    let request = TokenRequest {
        subject: old.subject.clone().unwrap_or_else(|| "scim-client".into()),
        tenants: old.tenants.clone(),
        scope: old.scope.clone().unwrap_or_default(),
        ttl_secs: ttl,
    };
    let (token, claims) = state
        .minter
        .mint(&request, now)
        .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
    let record = TokenRecord {
        jti: claims.jti.clone().unwrap_or_default(),
        subject: Some(claims.sub.clone()),
        tenants: old.tenants.clone(),
        scope: Some(claims.scope.clone()),
        issued_at: claims.iat,
        expires_at: Some(claims.exp),
        revoked_at: None,
    };
    let r = record.clone();
    with_admin(&state, move |a| a.record_token(&r)).await?;
    audit_action(&state, &op, &old.tenants, "rotate token", &old.jti);
    Ok(HttpResponse::Ok()
        .json(json!({"jti": record.jti, "token": token, "expiresAt": record.expires_at})))
}

pub async fn rotate_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let name = path.into_inner();
    let client = own_client(&state, &op, &name).await?;
    if client.assertion.is_some() {
        return Err(ApiError::Scim(scimgate_model::ScimError::invalid_value(
            format!("client '{name}' authenticates with assertions: it has no secret to rotate"),
        )));
    }
    let (secret, digest) = crate::oauth::new_client_secret();
    let now = state.clock.now().unix_timestamp();
    let new = ClientSecret {
        digest,
        created: now,
        expires: None,
    };
    // The old secrets keep working for a day, so that the IdP can be updated in between.
    let n = name.clone();
    with_admin(&state, move |a| a.rotate_client(&n, &new, now + 86_400)).await?;
    audit_action(&state, &op, &client.tenants, "rotate client secret", &name);
    Ok(HttpResponse::Ok().json(
        json!({"clientId": client.client_id, "clientSecret": secret, "oldSecretsEndIn": 86_400}),
    ))
}

pub async fn remove_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = signed_in_changing(&req, &state)?;
    let name = path.into_inner();
    let client = own_client(&state, &op, &name).await?;
    let n = name.clone();
    with_admin(&state, move |a| a.remove_client(&n)).await?;
    audit_action(&state, &op, &client.tenants, "remove client", &name);
    Ok(HttpResponse::NoContent().finish())
}

async fn own_client(
    state: &web::Data<AppState>,
    op: &Operator,
    name: &str,
) -> Result<scimgate_store::OAuthClient, ApiError> {
    let n = name.to_owned();
    let found = with_admin(state, move |a| {
        Ok(a.clients()?.into_iter().find(|c| c.name == n))
    })
    .await?;
    match found {
        Some(c) if c.tenants.iter().all(|t| op.tenants.contains(t)) => Ok(c),
        _ => Err(ApiError::NotFound(format!(
            "no client '{}' of this session's tenants",
            scimgate_model::excerpt(name, 64)
        ))),
    }
}
