//! The one error type of the change feed.

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("the feed's signing key {path}: {cause}")]
    Key { path: String, cause: String },
    #[error("{0}")]
    Config(String),
    #[error("signing an event: {0}")]
    Sign(String),
    #[error(transparent)]
    Store(#[from] scimgate_store::StoreError),
}
