//! `POST /oauth/token`: the OAuth 2.0 client credentials grant (RFC 6749 §4.4), as Entra
//! ID's gallery apps and Okta authenticate to a SCIM endpoint. A client registered with
//! `scimgate client add` authenticates with its id and secret (`client_secret_basic`, RFC
//! 6749 §2.3.1, or `client_secret_post`), or with a JWT its identity provider signed (RFC
//! 7523, checked in `assertion.rs`), and gets a short-lived scimgate JWT for its tenants,
//! with its scopes or fewer (`scope`). Answers are RFC 6749 §5.1 and §5.2 JSON (a 429 is
//! the server's problem+json, as everywhere), never SCIM errors: OAuth clients read
//! these. Every issuance and refusal is audited; only a client that proved who it is
//! counts against its own rate.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use scimgate_store::{AuditRecord, OAuthClient};
use serde_json::json;

use actix_web::ResponseError;

use crate::assertion::JWT_BEARER;
use crate::error::ApiError;
use crate::state::AppState;
use crate::token::TokenRequest;

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// A new client id: random, so that it tells nothing about the client or how many there are.
pub fn new_client_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new client secret (256 random bits, base64url) and the digest that is stored.
pub fn new_client_secret() -> (String, String) {
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let digest = secret_digest(&secret);
    (secret, digest)
}

/// The hex SHA-256 of a client secret: what is stored and compared.
pub fn secret_digest(secret: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A refusal of the token endpoint, as `ApiError::OAuth` renders it (RFC 6749 §5.2).
fn refusal(status: u16, code: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::OAuth {
        status,
        code,
        description: description.into(),
    }
}

fn invalid_request(description: impl Into<String>) -> ApiError {
    refusal(400, "invalid_request", description)
}

fn invalid_client(description: impl Into<String>) -> ApiError {
    refusal(401, "invalid_client", description)
}

/// What a token request carried, once its form parsed.
struct Asked {
    client_id: String,
    credential: Credential,
    grant_type: Option<String>,
    scope: Option<String>,
}

/// How the client proved who it is.
enum Credential {
    /// `client_secret_basic` or `client_secret_post`.
    Secret(String),
    /// An RFC 7523 JWT its identity provider signed (workload identity federation).
    Assertion(String),
}

pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let asked = match read_form(&state, payload)
        .await
        .and_then(|body| asked(&req, &body))
    {
        Ok(asked) => asked,
        Err(e) => {
            audit(&state, &req, "", None, None, Some(&e));
            return e.error_response();
        }
    };
    let access = state.access.current();
    let Some(client) = access.clients.get(&asked.client_id) else {
        let e = invalid_client("unknown client or wrong secret");
        audit(&state, &req, &asked.client_id, None, None, Some(&e));
        return e.error_response();
    };
    // An assertion may need its signer's keys fetched: off the async workers.
    let proved = {
        let (state, client, credential) = (state.clone(), client.clone(), asked.credential);
        crate::blocking::blocking(move || authenticate(&state, &client, &credential)).await
    };
    if let Err(e) = proved {
        // Not the client's doing, perhaps: its name is not written as the subject.
        audit(
            &state,
            &req,
            &client.client_id,
            Some(client),
            None,
            Some(&e),
        );
        return e.error_response();
    }
    // Each client has a rate of its own (in its default tenant), besides its address's;
    // only a client that proved who it is counts against it, so that nobody who merely
    // knows its id can use it up.
    let tenant = client.tenants.first().map_or("default", String::as_str);
    let issued = state
        .limits
        .check_token(tenant, &format!("oauth-client:{}", client.client_id))
        .map_err(|throttled| {
            state.metrics.count_rate_limited(throttled.limiter);
            ApiError::RateLimited(throttled)
        })
        .and_then(|_| {
            grant(
                &state,
                client,
                asked.grant_type.as_deref(),
                asked.scope.as_deref(),
            )
        });
    match issued {
        Ok((body, jti)) => {
            audit(
                &state,
                &req,
                &client.client_id,
                Some(client),
                Some(&jti),
                None,
            );
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::PRAGMA, "no-cache"))
                .json(body)
        }
        Err(e) => {
            audit(
                &state,
                &req,
                &client.client_id,
                Some(client),
                Some(""),
                Some(&e),
            );
            e.error_response()
        }
    }
}

/// Most bytes of a token request's form: a client assertion is a few kilobytes.
const FORM_BYTES: usize = 16 << 10;

/// The request's body, at most `FORM_BYTES` and within the body timeout; past either, an
/// RFC 6749 error (413 or 408 with `invalid_request`), not the server's generic one.
async fn read_form(state: &AppState, mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let timeout = std::time::Duration::from_secs(state.settings.body_timeout_secs);
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| invalid_request(format!("could not read the request body: {e}")))?;
            if body.len() + chunk.len() > FORM_BYTES {
                return Err(refusal(
                    413,
                    "invalid_request",
                    format!("the request body is larger than {FORM_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    actix_web::rt::time::timeout(timeout, read)
        .await
        .map_err(|_| {
            refusal(
                408,
                "invalid_request",
                format!(
                    "the request body did not arrive within {} s",
                    state.settings.body_timeout_secs
                ),
            )
        })?
}

/// The client's credentials and the grant asked for, from the Basic header or the form;
/// a parameter given twice, or credentials given both ways, is refused (RFC 6749 §3.2,
/// §2.3.1).
fn asked(req: &HttpRequest, body: &[u8]) -> Result<Asked, ApiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| invalid_request(format!("the form does not parse: {e}")))?;
    let mut form = std::collections::HashMap::new();
    for (name, value) in pairs {
        if form.insert(name.clone(), value).is_some() {
            return Err(invalid_request(format!(
                "'{}' is given more than once",
                scimgate_model::excerpt(&name, 64)
            )));
        }
    }
    let basic = basic_credentials(req)?;
    let (grant_type, scope) = (form.remove("grant_type"), form.remove("scope"));
    let (client_id, client_secret) = (form.remove("client_id"), form.remove("client_secret"));
    match (
        form.remove("client_assertion_type"),
        form.remove("client_assertion"),
    ) {
        (None, None) => {}
        (Some(kind), Some(assertion)) => {
            if basic.is_some() || client_secret.is_some() {
                return Err(invalid_request(
                    "the client authenticates one way only: a secret or an assertion",
                ));
            }
            if kind != JWT_BEARER {
                return Err(invalid_request(format!(
                    "'client_assertion_type' must be '{JWT_BEARER}'"
                )));
            }
            let client_id = client_id.ok_or_else(|| {
                invalid_request("'client_id' is required with a client assertion")
            })?;
            return Ok(Asked {
                client_id,
                credential: Credential::Assertion(assertion),
                grant_type,
                scope,
            });
        }
        (Some(_), None) => return Err(invalid_request("'client_assertion' is missing")),
        (None, Some(_)) => return Err(invalid_request("'client_assertion_type' is missing")),
    }
    if let (Some((basic_id, _)), Some(form_id)) = (&basic, &client_id)
        && basic_id != form_id
    {
        return Err(invalid_request(
            "'client_id' in the form is not the client of the Authorization header",
        ));
    }
    let posted = match (client_id, client_secret) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (_, None) => None,
        (None, Some(_)) => return Err(invalid_request("'client_secret' without 'client_id'")),
    };
    let (client_id, secret) = match (basic, posted) {
        (Some(_), Some(_)) => {
            return Err(invalid_request(
                "the client authenticates one way only: the Authorization header or the form",
            ));
        }
        (Some(credentials), None) | (None, Some(credentials)) => credentials,
        (None, None) => {
            return Err(invalid_client(
                "client authentication is required (client_secret_basic or client_secret_post)",
            ));
        }
    };
    Ok(Asked {
        client_id,
        credential: Credential::Secret(secret),
        grant_type,
        scope,
    })
}

/// `Authorization: Basic` with the form-encoded client id and secret (RFC 6749 §2.3.1).
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid_request("more than one Authorization header"));
    }
    let text = value.to_str().unwrap_or_default();
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(invalid_client(
            "the Authorization header is not Basic credentials",
        ));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid_client(
            "the Authorization header is not Basic credentials",
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid_client("the Basic credentials are not base64 of UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client("the Basic credentials have no ':'"))?;
    let unescape = |part: &str| {
        if part.contains(['&', '=']) {
            return Err(invalid_client(
                "the Basic credentials are not form-encoded ('&' or '=' in them)",
            ));
        }
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={part}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, value)| value)
            .ok_or_else(|| invalid_client("the Basic credentials are not form-encoded"))
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// Whether the client proved who it is: its secret, or its identity provider's assertion.
fn authenticate(
    state: &AppState,
    client: &OAuthClient,
    credential: &Credential,
) -> Result<(), ApiError> {
    let now = state.clock.now().unix_timestamp();
    match credential {
        Credential::Secret(secret) => {
            // Digests are compared, not secrets: how long a comparison takes tells nothing
            // about a secret whose digest it is.
            let digest = secret_digest(secret);
            let holds = client
                .secrets
                .iter()
                .any(|s| s.expires.is_none_or(|end| now < end) && s.digest == digest);
            if !holds {
                return Err(invalid_client("unknown client or wrong secret"));
            }
        }
        Credential::Assertion(jwt) => state
            .assertions
            .verify(client, jwt, now, state.settings.token_leeway_secs)
            .map_err(|why| {
                if let Some(log) = &why.log {
                    tracing::warn!(client = %client.name, reason = %log, "a client assertion could not be checked");
                }
                invalid_client(format!("the client assertion is refused: {}", why.client))
            })?,
    }
    Ok(())
}

/// Checks the grant and the scope of an authenticated client, and mints the token: the
/// §5.1 answer and the token's `jti`.
fn grant(
    state: &AppState,
    client: &OAuthClient,
    grant_type: Option<&str>,
    scope: Option<&str>,
) -> Result<(serde_json::Value, String), ApiError> {
    let now = state.clock.now().unix_timestamp();
    match grant_type {
        Some(GRANT_CLIENT_CREDENTIALS) => {}
        None => return Err(invalid_request("'grant_type' is missing")),
        Some(other) => {
            return Err(refusal(
                400,
                "unsupported_grant_type",
                format!(
                    "only 'client_credentials' is offered, not '{}'",
                    scimgate_model::excerpt(other, 64)
                ),
            ));
        }
    }
    let allowed: Vec<&str> = client.scope.split_ascii_whitespace().collect();
    let scope = match scope.map(str::trim) {
        None | Some("") => allowed.join(" "),
        Some(wanted) => {
            if let Some(extra) = wanted
                .split_ascii_whitespace()
                .find(|s| !allowed.contains(s))
            {
                return Err(refusal(
                    400,
                    "invalid_scope",
                    format!(
                        "this client may not have '{}' (it may have: {})",
                        scimgate_model::excerpt(extra, 64),
                        allowed.join(" ")
                    ),
                ));
            }
            let mut narrowed: Vec<&str> = Vec::new();
            for s in wanted.split_ascii_whitespace() {
                if !narrowed.contains(&s) {
                    narrowed.push(s);
                }
            }
            narrowed.join(" ")
        }
    };
    let ttl = u64::try_from(client.token_ttl_secs).unwrap_or(3600);
    let request = TokenRequest {
        subject: client.name.clone(),
        tenants: client.tenants.clone(),
        scope: scope.clone(),
        ttl_secs: ttl,
    };
    let (token, claims) = state
        .minter
        .mint_for_client(&request, &client.client_id, now)
        .map_err(|e| refusal(500, "server_error", format!("could not sign: {e}")))?;
    Ok((
        json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope}),
        claims.jti.unwrap_or_default(),
    ))
}

/// One audit row per answer: in the client's default tenant when the client is known (the
/// issued token's `jti` on success), else under `-`, a name no tenant can have, which only
/// the operator's `scimgate audit tail` shows.
fn audit(
    state: &AppState,
    req: &HttpRequest,
    client_id: &str,
    client: Option<&OAuthClient>,
    issued: Option<&str>,
    refusal: Option<&ApiError>,
) {
    let tenant = client
        .and_then(|c| c.tenants.first().cloned())
        .unwrap_or_else(|| "-".into());
    // The client's name is the subject only once it proved who it is (`issued` is set).
    let subject = client.filter(|_| issued.is_some()).map(|c| c.name.clone());
    let jti = issued.filter(|j| !j.is_empty()).map(str::to_owned);
    // What a caller sent as a client id, printable: no line breaks or escapes in the
    // audit trail's text.
    let client_id: String = scimgate_model::excerpt(client_id, 128)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    state.store.append_audit(AuditRecord {
        seq: 0,
        at: scimgate_model::format_timestamp(state.clock.now()),
        tenant,
        subject,
        jti,
        client: state
            .settings
            .network
            .client_addr(req)
            .map(|ip| ip.to_string()),
        method: "POST".into(),
        resource_type: Some("oauth/token".into()),
        resource_id: Some(client_id),
        version_before: None,
        version_after: None,
        plugins: None,
        status: refusal.map_or(200, |e| e.status_code().as_u16()),
        detail: refusal.map(ToString::to_string),
        event_seq: None,
    });
}
