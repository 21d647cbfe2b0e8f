//! What each subcommand does; `main` parses the command line and dispatches here.

pub mod admin;
pub mod events;
pub mod plugin;
pub mod serve;
