//! Bulk requests (RFC 7644 §3.7): the request parsed into operations (`request`), the
//! `bulkId` references in their paths and data (`refs`), and the order they run in, with
//! circular references broken (`schedule`). What runs each operation is the HTTP layer's.

mod refs;
mod request;
mod schedule;

pub use refs::{Deferred, defer_pending, references, resolve, unresolved};
pub use request::{BULK_REQUEST, BULK_RESPONSE, Method, Operation, Request, Target, parse};
pub use schedule::{Next, Schedule};
