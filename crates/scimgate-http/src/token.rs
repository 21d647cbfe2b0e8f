//! The tokens scimgate mints and reads: their claims, the data folder's own HS256 key (and
//! the cursor key derived from its secret), scopes and tenant names.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::cursor::CursorKey;

pub const DEFAULT_TENANT: &str = "default";
pub const SCOPE_READ: &str = "scim:read";
pub const SCOPE_WRITE: &str = "scim:write";
pub const SCOPE_ADMIN: &str = "scim:admin";
/// Reading the change feed (`/events/poll`, `/events/stream`).
pub const SCOPE_EVENTS: &str = "scim:events";
/// Reading `/metrics` (without the rest of `scim:admin`).
pub const SCOPE_METRICS: &str = "scim:metrics";

/// The `kid` of the data folder's own key, in the tokens `scimgate token` mints.
pub const LOCAL_KID: &str = "scimgate";
/// The `iss` of the tokens `scimgate token` mints.
pub const LOCAL_ISSUER: &str = "scimgate";

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
    /// The OAuth client a token was issued to at `/oauth/token`: refused once the client
    /// is removed. A claim of scimgate's own name, not RFC 9068's `client_id`, so that a
    /// token from an operator's own authorisation server is never taken for one of ours.
    #[serde(
        default,
        rename = "scimgate_client",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id: Option<String>,
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
        self.mint_with(req, now, None)
    }

    /// Mints an access token for the OAuth client `client_id` (the token endpoint).
    pub fn mint_for_client(
        &self,
        req: &TokenRequest,
        client_id: &str,
        now: i64,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.mint_with(req, now, Some(client_id.to_owned()))
    }

    fn mint_with(
        &self,
        req: &TokenRequest,
        now: i64,
        client_id: Option<String>,
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
            client_id,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(LOCAL_KID.to_owned());
        Ok((
            jsonwebtoken::encode(&header, &claims, &self.encoding)?,
            claims,
        ))
    }
}

pub use scimgate_model::valid_tenant;
