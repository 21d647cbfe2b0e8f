//! Work that blocks (SQLite, password hashing, plugins, large JSON) runs off the async
//! workers.

use actix_web::web;

use crate::error::ApiError;

/// Runs storage work (SQLite, password hashing) off the async workers. What the work needs
/// of the request (its id, its principal) is moved into `f` by the caller.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    web::block(f)
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
}
