//! What travels with the request being served to wherever its work runs: its id (quoted in
//! 5xx bodies and plugin calls) and the audit notes of a write (what the write path learns
//! that the response does not say). Task-locals, carried to blocking threads by
//! `blocking::blocking`.

use std::sync::{Arc, Mutex};

use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served, so that a 5xx body can quote it.
    pub static REQUEST_ID: String;
}

/// What one plugin decided about one write.
#[derive(Debug, Clone, Serialize)]
pub struct PluginNote {
    pub plugin: String,
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the write path learns that the response does not say.
#[derive(Debug, Default)]
pub struct AuditNotes {
    pub version_before: Option<i64>,
    pub plugins: Vec<PluginNote>,
    pub detail: Option<String>,
}

tokio::task_local! {
    /// The notes of the write being served; carried to blocking threads by `blocking`.
    pub static NOTES: Arc<Mutex<AuditNotes>>;
}

/// Adds to the current write's notes; outside an audited request it does nothing.
pub fn note(f: impl FnOnce(&mut AuditNotes)) {
    let _ = NOTES.try_with(|n| {
        if let Ok(mut notes) = n.lock() {
            f(&mut notes);
        }
    });
}
