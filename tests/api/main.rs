//! HTTP behaviour of scimgate, driven through the real actix app on a real SQLite file.

mod abuse;
mod audit;
mod auth;
mod bulk;
mod common;
mod console;
mod discovery;
mod errors;
mod events;
mod example_plugins;
mod fuzz;
mod groups;
mod idp_flows;
mod limits;
mod metrics;
mod oauth;
mod patch;
mod plugins;
mod query;
mod sealed_auth;
mod sealed_scim;
mod security;
mod snapshots;
#[path = "../support/uri.rs"]
mod uri;
mod users;
mod validator_parity;
