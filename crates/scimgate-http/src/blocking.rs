//! Work that blocks (SQLite, password hashing, plugins, large JSON) runs off the async
//! workers.

use std::time::Duration;

use actix_web::web;
use scimgate_store::StoreError;

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

/// Runs storage work off the async workers, waiting for it no longer than `deadline` (the
/// store's `answer_deadline`): a database that holds its connections open and never
/// answers (its server frozen, its disk stalled) gets the request a 503 to retry, not a
/// wait without end. The work itself cannot be called back from a blocked connection: it goes on, and
/// a write may still be completed when the database answers (as after any lost answer).
pub async fn storage<T, F>(deadline: Option<Duration>, f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let Some(deadline) = deadline else {
        return blocking(f).await;
    };
    match actix_web::rt::time::timeout(deadline, blocking(f)).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unreachable(format!(
            "the database did not answer within {} s",
            deadline.as_secs()
        ))
        .into()),
    }
}
