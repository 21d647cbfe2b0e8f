//! A write handed to the store that the caller waits for later: a Bulk request queues its
//! creates one after another and waits for them together, so that they share commits
//! instead of paying one each.

use std::sync::mpsc;

use crate::StoreError;

/// The outcome of a queued write, once it is known.
#[derive(Debug)]
pub struct PendingWrite<T>(Inner<T>);

#[derive(Debug)]
enum Inner<T> {
    Ready(Result<T, StoreError>),
    Waiting(mpsc::Receiver<Result<T, StoreError>>),
}

impl<T> PendingWrite<T> {
    /// A write whose outcome is already known (a store that writes at once, or a refusal).
    pub fn ready(outcome: Result<T, StoreError>) -> Self {
        PendingWrite(Inner::Ready(outcome))
    }

    /// A write whose outcome arrives on `answer`; an answer never sent (the writer stopped,
    /// or the write panicked) is `WriterGone`.
    pub(crate) fn waiting(answer: mpsc::Receiver<Result<T, StoreError>>) -> Self {
        PendingWrite(Inner::Waiting(answer))
    }

    /// Blocks until the write's batch has committed (or failed).
    pub fn wait(self) -> Result<T, StoreError> {
        match self.0 {
            Inner::Ready(outcome) => outcome,
            Inner::Waiting(answer) => answer.recv().map_err(|_| StoreError::WriterGone)?,
        }
    }
}
