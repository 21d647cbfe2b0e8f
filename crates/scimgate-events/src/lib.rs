//! The change feed of scimgate. Every committed write has its event in the store's outbox
//! (written in the write's own transaction); this crate turns an event into what a
//! receiver gets: an RFC 9967 Security Event Token (RFC 8417), signed with the feed's
//! Ed25519 key (`key`), whose public half is published as a JWKS; and delivers it.

mod config;
mod error;
mod feed;
mod key;
mod push;
mod send;
mod set;

pub use config::{EVENT_KINDS, EventsConfig, Format, ReceiverConfig};
pub use error::EventsError;
pub use feed::{EventHook, Feed};
pub use key::FeedKey;
pub use push::{Receiver, ReceiverStats, consumer_name};
pub use set::{Audience, CONSUMER_AUDIENCE, Mode, event_uris, jti, render};
