//! The admin web page at `/admin/`: static assets embedded in the binary, a JSON API under
//! `/admin/api/` for the signed-in operator (`session`), read views (`views`) and the
//! actions that change something (`actions`). Every response carries a strict
//! Content-Security-Policy (no inline script, nothing from elsewhere), `X-Frame-Options:
//! DENY` and no caching of data.

mod actions;
mod assets;
mod operator;
pub mod session;
mod views;

use std::sync::{Arc, Mutex, OnceLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web;
use scimgate_store::Admin;

use crate::error;
use crate::plugins::PluginHook;

/// What the admin page needs beyond the application state: its sessions, the
/// administration handle the CLI uses too (tokens, clients, receivers), the plugins, and
/// how to reload them. The binary fills in the last three once it has built them.
#[derive(Default)]
pub struct Console {
    pub sessions: session::Sessions,
    admin: OnceLock<Mutex<Box<dyn Admin + Send>>>,
    plugins: OnceLock<Arc<PluginHook>>,
    reload: OnceLock<Box<dyn Fn() -> Result<(), String> + Send + Sync>>,
    /// The store's write and commit counts when the health view last read them.
    last_counts: Mutex<Option<(std::time::Instant, u64, u64)>>,
}

impl Console {
    pub fn set_admin(&self, admin: Box<dyn Admin + Send>) {
        let _ = self.admin.set(Mutex::new(admin));
    }

    pub fn set_plugins(&self, plugins: Arc<PluginHook>) {
        let _ = self.plugins.set(plugins);
    }

    /// Writes and commits per second since the health view last asked.
    fn rates(&self, stats: &scimgate_store::StoreStats) -> (f64, f64) {
        let now = std::time::Instant::now();
        let Ok(mut last) = self.last_counts.lock() else {
            return (0.0, 0.0);
        };
        let rates = match *last {
            Some((at, writes, commits)) if now > at => {
                let secs = now.duration_since(at).as_secs_f64();
                (
                    stats.writes.saturating_sub(writes) as f64 / secs,
                    stats.commits.saturating_sub(commits) as f64 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        *last = Some((now, stats.writes, stats.commits));
        rates
    }

    /// What the page's "reload plugins" asks the server to do (SIGHUP's work).
    pub fn set_reload(&self, reload: Box<dyn Fn() -> Result<(), String> + Send + Sync>) {
        let _ = self.reload.set(reload);
    }
}

/// The policy of every page and answer under `/admin/`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let api = req.path().starts_with("/admin/api/") || req.path() == "/admin/session";
    let mut resp = next.call(req).await?;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}

/// The routes under `/admin` (beside `/admin/audit`, the JSON trail for scripts).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(headers))
            .route("", web::get().to(assets::to_index))
            .route("/", web::get().to(assets::index))
            .route("/app.js", web::get().to(assets::script))
            .route("/app.css", web::get().to(assets::style))
            .route("/session", web::post().to(actions::sign_in))
            .route("/logout", web::post().to(actions::sign_out))
            .route("/api/me", web::get().to(views::me))
            .route("/api/activity", web::get().to(views::activity))
            .route("/api/activity/{seq}", web::get().to(views::activity_row))
            .route("/api/resources/{kind}", web::get().to(views::resources))
            .route("/api/resources/{kind}/{id}", web::get().to(views::resource))
            .route("/api/receivers", web::get().to(views::receivers))
            .route(
                "/api/receivers/{name}/enable",
                web::post().to(actions::enable_receiver),
            )
            .route(
                "/api/receivers/{name}/replay",
                web::post().to(actions::replay_receiver),
            )
            .route("/api/plugins", web::get().to(views::plugins))
            .route(
                "/api/plugins/reload",
                web::post().to(actions::reload_plugins),
            )
            .route("/api/access", web::get().to(views::access))
            .route(
                "/api/tokens/{jti}/revoke",
                web::post().to(actions::revoke_token),
            )
            .route(
                "/api/tokens/{jti}/rotate",
                web::post().to(actions::rotate_token),
            )
            .route(
                "/api/clients/{name}/rotate",
                web::post().to(actions::rotate_client),
            )
            .route(
                "/api/clients/{name}/remove",
                web::post().to(actions::remove_client),
            )
            .route("/api/health", web::get().to(views::health))
            .default_service(web::to(error::not_found)),
    );
}
