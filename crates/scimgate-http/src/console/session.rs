//! The admin page's browser sessions: created from a token with `scim:admin` (pasted, or
//! the single-use sign-in link `scimgate admin login-url` prints), kept in this server's
//! memory, named by a random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over
//! TLS), ended by sign-out, after 30 minutes unused, or 8 hours after sign-in. Every
//! state-changing call carries the session's CSRF token in `X-CSRF-Token`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use ring::rand::SecureRandom;

use crate::error::ApiError;

pub const COOKIE: &str = "scimgate_admin";
/// The scope of a sign-in link's token: good for one sign-in, nothing else.
pub const SCOPE_SIGN_IN: &str = "admin:sign-in";

const IDLE: Duration = Duration::from_secs(30 * 60);
const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most: a flood of sign-ins cannot grow memory without end; when full, a
/// new sign-in is refused rather than another operator's session ended.
const MOST: usize = 1000;
/// Sessions one subject keeps at most; its least recently used goes first.
const PER_SUBJECT: usize = 20;

/// Who is signed in, and what they may see.
#[derive(Debug, Clone)]
pub struct Operator {
    pub subject: String,
    /// The tenants the token named (the first is its default).
    pub tenants: Vec<String>,
    pub csrf: String,
    /// The token the session came from (its `jti`), for the audit trail.
    pub jti: Option<String>,
    /// A pasted token's `jti`: the session ends when that token is revoked. (A sign-in
    /// link's token is revoked by the sign-in itself: its session is not tied to it.)
    pub revocable: Option<String>,
}

struct Entry {
    operator: Operator,
    created: Instant,
    used: Instant,
    /// No later than the token it came from.
    lifetime: Duration,
}

#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Entry>>,
}

/// 32 random bytes, URL-safe.
fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Internal("no randomness for a session id".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// Opens a session for at most `lifetime` (the token's remaining life, at most 8
    /// hours); returns its id.
    pub fn open(
        &self,
        subject: String,
        tenants: Vec<String>,
        jti: Option<String>,
        revocable: Option<String>,
        lifetime: Duration,
    ) -> Result<(String, Operator), ApiError> {
        let id = random_id()?;
        let operator = Operator {
            subject,
            tenants,
            csrf: random_id()?,
            jti,
            revocable,
        };
        let now = Instant::now();
        let mut open = self
            .open
            .lock()
            .map_err(|_| ApiError::Internal("sessions".into()))?;
        open.retain(|_, e| live(e, now));
        let theirs: Vec<(String, Instant)> = open
            .iter()
            .filter(|(_, e)| e.operator.subject == operator.subject)
            .map(|(k, e)| (k.clone(), e.used))
            .collect();
        if theirs.len() >= PER_SUBJECT
            && let Some((oldest, _)) = theirs.iter().min_by_key(|(_, used)| *used)
        {
            open.remove(oldest);
        }
        if open.len() >= MOST {
            return Err(ApiError::Scim(scimgate_model::ScimError::new(
                503,
                None,
                "too many admin sessions are open; sign out elsewhere, or wait for idle ones to end",
            )));
        }
        open.insert(
            id.clone(),
            Entry {
                operator: operator.clone(),
                created: now,
                used: now,
                lifetime: lifetime.min(LIFETIME),
            },
        );
        Ok((id, operator))
    }

    /// The operator of the request's session cookie, if it is open (and marks it used).
    pub fn operator(&self, req: &HttpRequest) -> Result<Operator, ApiError> {
        let signed_out = || ApiError::Unauthorized {
            detail: "not signed in to the admin page (or the session ended): sign in again".into(),
            token_sent: false,
        };
        let id = req.cookie(COOKIE).ok_or_else(signed_out)?;
        let now = Instant::now();
        let mut open = self
            .open
            .lock()
            .map_err(|_| ApiError::Internal("sessions".into()))?;
        match open.get_mut(id.value()) {
            Some(entry) if live(entry, now) => {
                entry.used = now;
                Ok(entry.operator.clone())
            }
            Some(_) => {
                open.remove(id.value());
                Err(signed_out())
            }
            None => Err(signed_out()),
        }
    }

    /// As `operator`, for a call that changes something: the CSRF token must come with it,
    /// and a browser's `Origin`, when sent, must be this server.
    pub fn operator_changing(&self, req: &HttpRequest) -> Result<Operator, ApiError> {
        let operator = self.operator(req)?;
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Compared as digests: how long a comparison takes says nothing of the token.
        let digest = |t: &str| ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
        if digest(sent).as_ref() != digest(&operator.csrf).as_ref() {
            return Err(ApiError::Forbidden(
                "this admin action lacks the session's CSRF token (X-CSRF-Token)".into(),
            ));
        }
        same_origin(req)?;
        Ok(operator)
    }

    pub fn close(&self, req: &HttpRequest) {
        if let (Some(id), Ok(mut open)) = (req.cookie(COOKIE), self.open.lock()) {
            open.remove(id.value());
        }
    }
}

fn live(entry: &Entry, now: Instant) -> bool {
    now.duration_since(entry.used) < IDLE && now.duration_since(entry.created) < entry.lifetime
}

/// A cross-site request carries its page's `Origin`: it must be this server's.
pub fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    if origin == own {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "an admin action from another origin ('{}') is refused",
            scimgate_model::excerpt(origin, 128)
        )))
    }
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, for `/admin` only, `Secure` when the
/// page was reached over TLS; a session cookie (no expiry in the browser).
pub fn cookie(id: &str, secure: bool) -> Cookie<'static> {
    let mut c = Cookie::new(COOKIE, id.to_owned());
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_path("/admin");
    c.set_secure(secure);
    c
}

/// The cookie that removes it.
pub fn removal(secure: bool) -> Cookie<'static> {
    let mut c = cookie("", secure);
    c.make_removal();
    c
}
