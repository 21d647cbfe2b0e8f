//! What each subcommand does; `main` parses the command line and dispatches here.

/// `println!` that returns the write's error instead of panicking: `scimgate events
/// receivers | head` ends quietly when `head` has read enough (`main` ends a command whose
/// output was closed as a success).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

pub mod admin;
pub mod backup;
pub mod client;
pub mod doctor;
pub mod events;
pub mod files;
pub mod migrate;
pub mod plugin;
pub mod serve;
