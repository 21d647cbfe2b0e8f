//! Passwords are write-only: kept as an Argon2id hash, or dropped, never stored in clear.

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHasher};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordStorage {
    /// Keep an Argon2id hash (PHC string) of each password sent.
    Argon2id,
    /// Keep nothing: for installs where scimgate never authenticates users.
    Discard,
}

impl PasswordStorage {
    /// What to store for `password`; `None` stores nothing new.
    pub fn protect(self, password: Option<String>) -> Result<Option<String>, ApiError> {
        let Some(password) = password else {
            return Ok(None);
        };
        match self {
            PasswordStorage::Discard => Ok(None),
            PasswordStorage::Argon2id => {
                let salt_bytes: [u8; 16] = rand::random();
                let salt = SaltString::encode_b64(&salt_bytes)
                    .map_err(|e| ApiError::Internal(format!("password salt: {e}")))?;
                Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| Some(h.to_string()))
                    .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let stored = PasswordStorage::Argon2id
            .protect(Some("s3cret".into()))
            .expect("hash")
            .expect("some");
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains("s3cret"));
        let parsed = PasswordHash::new(&stored).expect("phc");
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn discard_keeps_nothing() {
        assert_eq!(
            PasswordStorage::Discard
                .protect(Some("x".into()))
                .expect("ok"),
            None
        );
    }
}
