//! The data folder holds personal data, password hashes, the audit trail and the signing
//! key: it is private to the server's user (folder 0700, files 0600), and one server
//! works on it at a time.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The file `serve` holds an exclusive lock on while it runs.
pub const LOCK_FILE: &str = "scimgate.lock";

/// Creates `dir` (and missing parents) as 0700; an existing folder is left as it is
/// ([`warn_if_shared`] says when other users may read it).
pub fn create_private(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` empty as 0600 when it does not exist, so that SQLite, which gives its
/// log files the mode of the database file, keeps them private too.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_shared(path);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A warning when other users may read `path` (a folder or a file it made, or one it found).
pub fn warn_if_shared(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "other users may read this; it holds personal data and secrets: chmod {} it",
            if meta.is_dir() { "700" } else { "600" }
        );
    }
}

/// Takes the data folder for this process: a second `serve` on the same folder would
/// write beside the first. The lock lasts as long as the returned file is open (the OS
/// releases it when the process ends, however it ends).
pub fn lock(dir: &Path) -> Result<File, LockError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| LockError::Io(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(LockError::Held(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(LockError::Io(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Whether a server holds the data folder's lock now (`doctor`): the lock is taken and
/// given back at once.
pub fn is_held(dir: &Path) -> bool {
    matches!(lock(dir), Err(LockError::Held(_)))
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A server (or `restore`) holds the folder.
    #[error(
        "another scimgate server is running on the data folder {}; stop it first (the admin commands work beside it)",
        .0.display()
    )]
    Held(std::path::PathBuf),
    #[error("{0}")]
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_files_are_private_and_the_lock_is_exclusive() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/data");
        create_private(&dir).expect("create");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("x.db");
        create_private_file(&db).expect("file");
        assert_eq!(mode(&db), 0o600);
        let held = lock(&dir).expect("first lock");
        let second = lock(&dir).expect_err("second lock").to_string();
        assert!(second.contains("another scimgate server"), "{second}");
        assert!(is_held(&dir));
        drop(held);
        lock(&dir).expect("free again");
    }
}
