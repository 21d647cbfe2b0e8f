//! What every receiver shares: where events come from, the key they are signed with, who
//! signs them, and the hook that may rewrite them.

use std::sync::Arc;

use scimgate_model::Clock;
use scimgate_store::{EventRecord, Store};
use serde_json::Value;

use crate::key::FeedKey;

/// What may rewrite or drop an event for one receiver before it is signed and sent: the
/// operator's plugins on the `event` hook (the outbound twin of the write hooks).
pub trait EventHook: Send + Sync {
    /// The claims to send (rewritten or not), `None` to drop the event for this receiver,
    /// or why it could not decide (the delivery is tried again later).
    fn apply(
        &self,
        receiver: &str,
        event: &EventRecord,
        claims: Value,
    ) -> Result<Option<Value>, String>;
}

/// What every receiver shares: where events come from, the key they are signed with, who
/// signs them, the hook that may rewrite them, and the clock.
#[derive(Clone)]
pub struct Feed {
    pub store: Arc<dyn Store>,
    pub key: Arc<FeedKey>,
    pub issuer: String,
    /// The SCIM base URL, for `meta.location` in `full` events.
    pub base_url: Option<String>,
    pub hook: Option<Arc<dyn EventHook>>,
    pub clock: Arc<dyn Clock>,
}
