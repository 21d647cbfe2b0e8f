//! What every handler shares: the store, the token verifier, the settings and the clock.

use std::sync::Arc;

use scimgate_model::Clock;
use scimgate_store::Store;

use crate::access::AccessCache;
use crate::admission::Admission;
use crate::at_once::AtOnce;
use crate::connections::Connections;
use crate::cursor::CursorKey;
use crate::feed_watch::FeedWatch;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::settings::HttpSettings;
use crate::write_path::WritePipeline;

pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Every key a token may be signed with.
    pub keys: KeyRing,
    /// The data folder's own key, which signs the access tokens `/oauth/token` issues.
    pub minter: Arc<crate::token::SigningKey>,
    /// Client assertions: their signers' keys, and the `jti`s already taken.
    pub assertions: crate::assertion::Assertions,
    /// Registered tenants and revoked tokens, refreshed in the background.
    pub access: Arc<AccessCache>,
    pub settings: Arc<HttpSettings>,
    pub clock: Arc<dyn Clock>,
    /// Creates, replaces, patches and deletes: the one write pipeline.
    pub writes: WritePipeline,
    pub metrics: Arc<Metrics>,
    pub limits: RateLimits,
    /// Requests being worked on, each tenant within its share.
    pub admission: Admission,
    /// Parsing large request bodies: a slot per core, a tenant holding all but one.
    pub parsing: Arc<scimgate_limits::FairSlots>,
    /// Open client connections against the cap (counted by the server's connect hook).
    pub connections: Arc<Connections>,
    /// Which reads the async workers answer themselves (`at_once`).
    pub at_once: AtOnce,
    /// Seals and opens page cursors.
    pub cursors: Arc<CursorKey>,
    /// The change feed: its key (published at `/events/jwks.json`), issuer and store,
    /// for the poll and stream endpoints.
    pub feed: scimgate_events::Feed,
    /// What the feed's long polls and streams wait on, and their places per tenant.
    pub feed_watch: Arc<FeedWatch>,
    /// The receivers' counters, for `/metrics`.
    pub receivers: Vec<Arc<scimgate_events::ReceiverStats>>,
    /// What this instance runs (its plugins and schemas, as one fingerprint), which
    /// `/readyz` compares with the other instances' on the same database.
    pub fingerprint: Arc<arc_swap::ArcSwap<String>>,
    /// The admin web page's sessions and handles.
    pub console: crate::console::Console,
}
