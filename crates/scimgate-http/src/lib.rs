//! The SCIM 2.0 HTTP layer of scimgate: actix-web routes under `/scim/v2`, bearer-token
//! auth, request ids, and the one mapping from every error to a SCIM error response.

mod access;
mod admission;
mod assertion;
mod at_once;
mod audit;
mod auth;
mod blocking;
mod body;
mod bulk;
mod bulk_run;
mod connections;
pub mod console;
mod context;
mod cursor;
mod discovery;
mod error;
mod etag;
mod feed;
mod feed_watch;
pub mod file_writes;
mod gate;
mod head;
mod health;
mod hooks;
mod keys;
mod list;
mod metrics;
mod network;
mod oauth;
mod operator;
mod password;
mod plugins;
mod query;
mod rate_limit;
mod render;
mod report;
mod request_id;
mod resources;
mod settings;
mod state;
mod throttle;
mod token;
mod write_path;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};

pub use access::AccessCache;
pub use admission::Admission;
pub use assertion::{Assertions, check_jwks_url};
pub use connections::Connections;
pub use cursor::CursorKey;
pub use error::ApiError;
pub use feed_watch::FeedWatch;
pub use hooks::{HookError, WriteContext, WriteHook};
pub use keys::{AuthSettings, KeyRing, KeySpec};
pub use metrics::{FeedFigures, Metrics, PluginOutcome, ReceiverFigures};
pub use network::NetworkSettings;
pub use oauth::{new_client_id, new_client_secret, secret_digest};
pub use password::{PasswordStorage, Passwords};
pub use plugins::PluginHook;
pub use rate_limit::{Limit, RateLimitSettings, RateLimits};
pub use settings::{BulkSettings, HttpConfig, HttpSettings, TenantPolicy};
pub use state::AppState;
pub use token::{Claims, SigningKey, TokenRequest, valid_tenant as auth_tenant_is_valid};
pub use write_path::WritePipeline;

/// Builds the whole application. `main` and the integration tests both call this, so the
/// tests exercise exactly what ships.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        // Query strings that do not fit a handler's parameters get a SCIM error, not
        // actix's plain-text one.
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::Scim(scimgate_model::ScimError::invalid_value(format!(
                "query parameters: {e}"
            )))
            .into()
        }))
        .app_data(web::PathConfig::default().error_handler(|e, _| {
            ApiError::Scim(scimgate_model::ScimError::invalid_value(format!(
                "path: {e}"
            )))
            .into()
        }))
        .wrap(from_fn(head::middleware))
        .wrap(from_fn(request_id::middleware))
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::live))
                .default_service(web::to(error::method_not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(health::ready))
                .default_service(web::to(error::method_not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/oauth/token")
                .wrap(from_fn(throttle::before_auth))
                .route(web::post().to(oauth::token))
                .default_service(web::to(error::method_not_allowed("POST"))),
        )
        .service(
            web::resource("/events/jwks.json")
                .route(web::get().to(feed::jwks))
                .default_service(web::to(error::method_not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/events/poll")
                .wrap(from_fn(throttle::before_auth))
                .route(web::post().to(feed::poll))
                .default_service(web::to(error::method_not_allowed("POST"))),
        )
        .service(
            web::resource("/events/stream")
                .wrap(from_fn(throttle::before_auth))
                .route(web::get().to(feed::stream))
                .default_service(web::to(error::method_not_allowed("GET"))),
        )
        .service(
            web::resource("/admin/audit")
                .wrap(from_fn(throttle::before_auth))
                .route(web::get().to(operator::audit))
                .default_service(web::to(error::method_not_allowed("GET, HEAD"))),
        )
        .configure(console::routes)
        .service(
            web::resource("/metrics")
                .wrap(from_fn(throttle::before_auth))
                .route(web::get().to(operator::metrics))
                .default_service(web::to(error::method_not_allowed("GET, HEAD"))),
        )
        .service(
            // Outermost first: allowlist and per-client limit, the audit, then the token
            // and the tenant's allowlist (in auth), the per-token limit, the scope and
            // tenant refusals (`enforce`: after the limit, so that a refused client is
            // limited like any other), and the tenant's share of the requests being worked on.
            web::scope("/scim/v2")
                .wrap(from_fn(gate::middleware))
                .wrap(from_fn(auth::enforce))
                .wrap(from_fn(throttle::after_auth))
                .wrap(from_fn(auth::middleware))
                .wrap(from_fn(audit::middleware))
                .wrap(from_fn(throttle::before_auth))
                .configure(discovery::routes)
                .configure(resources::routes)
                .service(
                    web::resource("/Bulk")
                        .route(web::post().to(bulk::bulk))
                        .default_service(web::to(error::method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/.search")
                        .route(web::post().to(list::search_all))
                        .default_service(web::to(error::method_not_allowed("POST"))),
                )
                .default_service(web::to(error::not_found)),
        )
        .default_service(web::to(error::not_found))
}
