//! Work that blocks (SQLite, password hashing, plugins, large JSON) runs off the async
//! workers, with the request's context carried along.

use actix_web::web;

use crate::error::ApiError;

/// Runs storage work (SQLite, password hashing) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    // The request id and the audit notes follow the work to the blocking thread, for
    // plugins, 5xx bodies and the audit trail.
    let id = crate::context::REQUEST_ID.try_with(Clone::clone).ok();
    let notes = crate::context::NOTES.try_with(std::sync::Arc::clone).ok();
    web::block(move || {
        let with_notes = move || match notes {
            Some(n) => crate::context::NOTES.sync_scope(n, f),
            None => f(),
        };
        match id {
            Some(id) => crate::context::REQUEST_ID.sync_scope(id, with_notes),
            None => with_notes(),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
}
