//! What this instance runs, as one fingerprint: its plugins (each one's settings and
//! module bytes) and the operator's schemas in force. Instances on one PostgreSQL
//! database publish theirs every few seconds, and `/readyz` names any instance whose
//! fingerprint differs: a plugin or schema file deployed to some hosts and not others.

use std::sync::Arc;
use std::time::Duration;

use scimgate_http::PluginHook;
use scimgate_limits::Periodic;
use scimgate_store::Store;

/// How often an instance publishes its fingerprint (others count it as live for 30 s).
const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// The fingerprint of `plugins` and the schemas in force: hex SHA-256, first 16 bytes.
pub fn fingerprint(plugins: &PluginHook) -> String {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for spec in plugins.current().specs() {
        digest.update(serde_json::to_string(spec).unwrap_or_default().as_bytes());
        // The module as deployed: the same settings naming different bytes differ.
        digest.update(&std::fs::read(&spec.file).unwrap_or_default());
    }
    digest.update(crate::schemas::to_stored(scimgate_model::registry::current()).as_bytes());
    digest.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Publishes this instance's fingerprint (kept in `current` for `/readyz`) every few
/// seconds until the handle is dropped, warning when the instances that differ change.
pub fn publish_periodically(
    store: &Arc<dyn Store>,
    plugins: Arc<PluginHook>,
    current: Arc<arc_swap::ArcSwap<String>>,
) -> std::io::Result<Periodic> {
    let weak = Arc::downgrade(store);
    Periodic::spawn("scimgate-fingerprint", move |stop| {
        let mut differing: Vec<(String, String)> = Vec::new();
        // The fingerprint is taken again only when the plugin set or the schemas in
        // force were replaced (a reload), not by reading every module every 5 s.
        let mut fingerprinted = None;
        loop {
            let Some(store) = weak.upgrade() else { return };
            let running = (
                Arc::as_ptr(&plugins.current()) as usize,
                scimgate_model::registry::current().epoch(),
            );
            if fingerprinted != Some(running) {
                current.store(Arc::new(fingerprint(&plugins)));
                fingerprinted = Some(running);
            }
            let mine = current.load_full();
            match store
                .publish_fingerprint(&mine)
                .and_then(|()| store.other_fingerprints())
            {
                Ok(others) => {
                    let now: Vec<_> = others.into_iter().filter(|(_, fp)| *fp != *mine).collect();
                    if now != differing && !now.is_empty() {
                        tracing::warn!(
                            fingerprint = %mine,
                            differing = ?now,
                            "other instances run a different set of plugins or schemas"
                        );
                    }
                    differing = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not publish this instance's fingerprint")
                }
            }
            drop(store);
            if stop.sleep(PUBLISH_EVERY) {
                return;
            }
        }
    })
}
