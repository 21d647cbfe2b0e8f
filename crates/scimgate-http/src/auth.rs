//! Bearer-token authentication: HS256 JWTs signed with the key in the data folder,
//! algorithm pinned, `exp` and `nbf` checked, scopes enforced per method.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

pub const DEFAULT_TENANT: &str = "default";
pub const SCOPE_READ: &str = "scim:read";
pub const SCOPE_WRITE: &str = "scim:write";
pub const SCOPE_ADMIN: &str = "scim:admin";
const ISSUER: &str = "scimgate";

/// The claims scimgate mints and reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
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
}

/// What `scimgate token` asks for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub tenant: String,
    pub scope: String,
    pub ttl_secs: u64,
}

/// The HS256 secret shared by the server and `scimgate token`.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
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
        fs::create_dir_all(data_dir)?;
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
        })
    }

    /// Mints a signed token valid from `now` (Unix seconds) for `ttl_secs`.
    pub fn mint(
        &self,
        req: &TokenRequest,
        now: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let ttl = i64::try_from(req.ttl_secs).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: req.subject.clone(),
            tenant: req.tenant.clone(),
            scope: req.scope.clone(),
            exp: now.saturating_add(ttl),
            nbf: Some(now),
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            iss: Some(ISSUER.to_owned()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Verifies signature (HS256 only, so `none` and other algorithms fail), `exp` and `nbf`.
    pub fn verify(&self, token: &str, leeway_secs: u64) -> Result<Claims, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = leeway_secs;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| e.to_string())?;
        let claims = data.claims;
        if !valid_tenant(&claims.tenant) {
            return Err(format!(
                "tenant claim '{}' is not a valid tenant name",
                claims.tenant
            ));
        }
        Ok(claims)
    }
}

/// Tenant names: 1 to 64 of letters, digits, `.`, `_` and `-`.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The tenant an authenticated request acts for; put on every request under `/scim/v2`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
}

/// Authenticates every request under `/scim/v2` and checks the scope its method needs.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let claims = match authorize(&req) {
        Ok(claims) => claims,
        Err(refusal) => {
            let response = refusal.error_response();
            return Ok(req.into_response(response));
        }
    };
    let span = tracing::Span::current();
    span.record("tenant", claims.tenant.as_str());
    span.record("subject", claims.sub.as_str());
    req.extensions_mut().insert(Principal {
        tenant: claims.tenant,
    });
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Verifies the bearer token and the scope the request's method needs.
fn authorize(req: &ServiceRequest) -> Result<Claims, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let claims = authenticate(req.request(), state)?;
    let needed = if matches!(*req.method(), Method::GET | Method::HEAD) {
        SCOPE_READ
    } else {
        SCOPE_WRITE
    };
    if !claims.has_scope(needed) {
        return Err(ApiError::Forbidden(format!(
            "the token lacks the '{needed}' scope needed for {} requests",
            req.method()
        )));
    }
    Ok(claims)
}

/// Verifies the request's bearer token: signature, algorithm, `exp`, `nbf`, tenant name.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    let token = bearer_token(req)?;
    state
        .signing_key
        .verify(token, state.settings.token_leeway_secs)
        .map_err(|reason| ApiError::Unauthorized {
            detail: format!("invalid bearer token: {reason}"),
            token_sent: true,
        })
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let missing = || ApiError::Unauthorized {
        detail: "this endpoint needs 'Authorization: Bearer <token>'".into(),
        token_sent: false,
    };
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(missing)?;
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
            tenant: "acme".into(),
            scope: "scim:read scim:write".into(),
            ttl_secs: ttl,
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let k = key();
        let t = k.mint(&request(60), now()).expect("mint");
        let c = k.verify(&t, 0).expect("verify");
        assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("entra", "acme"));
        assert!(c.has_scope(SCOPE_READ) && c.has_scope(SCOPE_WRITE));
        assert!(c.jti.is_some());
    }

    #[test]
    fn refuses_expired_future_foreign_and_unsigned_tokens() {
        let k = key();
        let expired = k.mint(&request(10), now() - 1000).expect("mint");
        assert!(k.verify(&expired, 30).is_err());
        let future = k.mint(&request(3600), now() + 600).expect("mint");
        assert!(k.verify(&future, 30).is_err(), "nbf in the future");
        let foreign = SigningKey::from_secret(&[8u8; 32])
            .expect("key")
            .mint(&request(60), now())
            .expect("mint");
        assert!(k.verify(&foreign, 30).is_err());
        // alg "none": header {"alg":"none","typ":"JWT"} and an empty signature.
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"x","tenant":"acme","scope":"scim:read","exp":{}}}"#,
            now() + 60
        ));
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(k.verify(&none, 30).is_err());
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
        let t = a.mint(&request(60), now()).expect("mint");
        let b = SigningKey::load_or_create(dir.path()).expect("load");
        assert!(b.verify(&t, 0).is_ok(), "same key on reload");
        let mode = fs::metadata(dir.path().join(SigningKey::FILE_NAME))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
