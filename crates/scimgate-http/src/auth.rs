//! Bearer-token authentication: JWTs verified against the key ring (`keys`), revocation
//! by `jti`, the tenant chosen by `domain` among those the token may act for, and the scope
//! each method needs.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::cursor::CursorKey;
use crate::error::ApiError;
use crate::keys::{LOCAL_ISSUER, LOCAL_KID};
use crate::state::AppState;

pub const DEFAULT_TENANT: &str = "default";
pub const SCOPE_READ: &str = "scim:read";
pub const SCOPE_WRITE: &str = "scim:write";
pub const SCOPE_ADMIN: &str = "scim:admin";
/// The query parameter that picks the tenant when a token may act for several.
pub const DOMAIN_PARAM: &str = "domain";

/// The claims scimgate mints and reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The tenant a request acts for when it names none (`domain`).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Every tenant the token may act for, besides `tenant`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Space-separated scopes, as OAuth 2.0 writes them.
    #[serde(default)]
    pub scope: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == scope)
    }

    /// Whether the token may act for `tenant`.
    pub fn may_act_for(&self, tenant: &str) -> bool {
        self.tenant == tenant || self.tenants.iter().any(|t| t == tenant)
    }
}

/// What `scimgate token` asks for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    /// The tenants the token may act for; the first is its default.
    pub tenants: Vec<String>,
    pub scope: String,
    pub ttl_secs: u64,
}

/// The HS256 secret shared by the server and `scimgate token`.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Seals page cursors; derived from the same secret, so a data folder has one secret.
    cursors: Arc<CursorKey>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    pub const FILE_NAME: &'static str = "jwt-hs256.key";

    /// Reads the key file in `data_dir`, creating the folder and a random 256-bit key
    /// (mode 0600) the first time.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Self> {
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)?;
        }
        let path = data_dir.join(Self::FILE_NAME);
        if !path.exists() {
            let secret: [u8; 32] = rand::random();
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(STANDARD.encode(secret).as_bytes())?;
                    f.sync_all()?;
                }
                // Another process created it first; read theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let mode = fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the signing key is readable by other users; chmod 600 it");
        }
        let text = fs::read_to_string(&path)?;
        let secret = STANDARD.decode(text.trim()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        Self::from_secret(&secret)
    }

    pub fn from_secret(secret: &[u8]) -> io::Result<Self> {
        if secret.len() < 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the HS256 key must be at least 32 bytes",
            ));
        }
        let invalid = |e: jsonwebtoken::errors::Error| {
            io::Error::new(io::ErrorKind::InvalidData, e.to_string())
        };
        Ok(SigningKey {
            encoding: EncodingKey::from_secret(secret).map_err(invalid)?,
            decoding: DecodingKey::from_secret(secret).map_err(invalid)?,
            cursors: Arc::new(CursorKey::derive(secret)),
        })
    }

    /// The key page cursors are sealed with.
    pub fn cursor_key(&self) -> Arc<CursorKey> {
        Arc::clone(&self.cursors)
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Mints a signed token valid from `now` (Unix seconds) for `ttl_secs`, with a fresh
    /// `jti` (returned in the claims) so that it can be revoked.
    pub fn mint(
        &self,
        req: &TokenRequest,
        now: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let ttl = i64::try_from(req.ttl_secs).unwrap_or(i64::MAX);
        let default = req.tenants.first().cloned().unwrap_or_else(default_tenant);
        let claims = Claims {
            sub: req.subject.clone(),
            tenants: req.tenants.iter().skip(1).cloned().collect(),
            tenant: default,
            scope: req.scope.clone(),
            exp: now.saturating_add(ttl),
            nbf: Some(now),
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            iss: Some(LOCAL_ISSUER.to_owned()),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(LOCAL_KID.to_owned());
        Ok((
            jsonwebtoken::encode(&header, &claims, &self.encoding)?,
            claims,
        ))
    }
}

/// Tenant names: 1 to 64 of letters, digits, `.`, `_` and `-`.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Who an authenticated request is and which tenant it acts for; put on every request
/// under `/scim/v2`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub subject: String,
    pub jti: Option<String>,
}

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
            let response = error.error_response();
            return Ok(req.into_response(response));
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
        Some(Refused(error)) => {
            let response = error.error_response();
            Ok(req.into_response(response))
        }
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
    if let Some(allow) = state.settings.tenant_allow.get(&tenant) {
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
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| {
            ApiError::Scim(scimgate_model::ScimError::invalid_syntax(format!(
                "malformed query string: {e}"
            )))
        })?;
    let mut found: Option<String> = None;
    for (_, value) in pairs
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(DOMAIN_PARAM))
    {
        match &found {
            Some(first) if *first != value => {
                return Err(ApiError::Scim(scimgate_model::ScimError::new(
                    400,
                    Some(scimgate_model::ScimType::InvalidValue),
                    format!(
                        "'{DOMAIN_PARAM}' is given twice with different tenants ('{}' and '{}')",
                        scimgate_model::excerpt(first, 64),
                        scimgate_model::excerpt(&value, 64)
                    ),
                )));
            }
            Some(_) => {}
            None => found = Some(value),
        }
    }
    Ok(found)
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
    if let Some(jti) = &claims.jti
        && state.access.current().revoked.contains(jti)
    {
        return Err(refused(format!("token '{jti}' has been revoked")));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_secret(&[7u8; 32]).expect("key")
    }

    fn request(ttl: u64) -> TokenRequest {
        TokenRequest {
            subject: "entra".into(),
            tenants: vec!["acme".into(), "beta".into()],
            scope: "scim:read scim:write".into(),
            ttl_secs: ttl,
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn ring(k: &SigningKey) -> crate::keys::KeyRing {
        crate::keys::KeyRing::load(k, &Default::default()).expect("ring")
    }

    fn mint(k: &SigningKey, req: &TokenRequest, at: i64) -> String {
        k.mint(req, at).expect("mint").0
    }

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let k = key();
        let t = mint(&k, &request(60), now());
        let c = ring(&k).verify(&t, 0).expect("verify");
        assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("entra", "acme"));
        assert!(c.may_act_for("acme") && c.may_act_for("beta") && !c.may_act_for("gamma"));
        assert!(c.has_scope(SCOPE_READ) && c.has_scope(SCOPE_WRITE));
        assert!(c.jti.is_some());
    }

    #[test]
    fn refuses_expired_future_foreign_and_unsigned_tokens() {
        let k = key();
        let r = ring(&k);
        let expired = mint(&k, &request(10), now() - 1000);
        assert!(r.verify(&expired, 30).is_err());
        let future = mint(&k, &request(3600), now() + 600);
        assert!(r.verify(&future, 30).is_err(), "nbf in the future");
        let foreign = mint(
            &SigningKey::from_secret(&[8u8; 32]).expect("key"),
            &request(60),
            now(),
        );
        assert!(r.verify(&foreign, 30).is_err());
        // alg "none": header {"alg":"none","typ":"JWT"} and an empty signature.
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"x","tenant":"acme","scope":"scim:read","exp":{}}}"#,
            now() + 60
        ));
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(r.verify(&none, 30).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_changed_one_is_checked_again() {
        let k = key();
        let r = ring(&k);
        let t = mint(&k, &request(10), now() - 20);
        assert!(
            r.verify(&t, 30).is_ok(),
            "inside the leeway; now remembered"
        );
        assert!(r.verify(&t, 0).is_err(), "the remembered token is past exp");
        let good = mint(&k, &request(60), now());
        assert!(r.verify(&good, 0).is_ok());
        let mut forged = good.clone();
        forged.push('x');
        assert!(
            r.verify(&forged, 0).is_err(),
            "any other text is verified afresh"
        );
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(valid_tenant("acme-prod.eu_1"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a b"));
        assert!(!valid_tenant(&"x".repeat(65)));
    }

    #[test]
    fn key_file_is_created_once_with_mode_600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SigningKey::load_or_create(dir.path()).expect("create");
        let t = mint(&a, &request(60), now());
        let b = SigningKey::load_or_create(dir.path()).expect("load");
        assert!(ring(&b).verify(&t, 0).is_ok(), "same key on reload");
        let mode = fs::metadata(dir.path().join(SigningKey::FILE_NAME))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
