//! What travels with the request being served to wherever its work runs: its id, quoted
//! in 5xx bodies and given to plugins. A task-local, carried to blocking threads by
//! `blocking::blocking`.

tokio::task_local! {
    /// The id of the request being served, so that a 5xx body can quote it.
    pub static REQUEST_ID: String;
}
