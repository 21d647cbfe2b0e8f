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
    // The request id follows the work to the blocking thread, for plugins and 5xx bodies.
    let id = crate::context::REQUEST_ID.try_with(Clone::clone).ok();
    web::block(move || match id {
        Some(id) => crate::context::REQUEST_ID.sync_scope(id, f),
        None => f(),
    })
    .await
    .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
}
