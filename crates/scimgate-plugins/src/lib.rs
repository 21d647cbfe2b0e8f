//! The WebAssembly plugin host: operator plugins, compiled once at start, run in a fresh
//! sandboxed instance on every create, replace and patch, with a deadline, a memory cap
//! and an output cap. A failing plugin fails only its request.
//!
//! The ABI (version 1) is documented in `docs/plugins.md`.

mod abi;
mod cache;
mod host;
mod spec;

pub use abi::{ABI_VERSION, CallInput, Decision};
pub use host::{CallFailure, PluginHost, PluginLoadError};
pub use spec::{FailMode, Hook, Limits, PluginConfig, PluginSpec};
