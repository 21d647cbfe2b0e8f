//! Passwords are write-only: kept as an Argon2id hash, or dropped, never stored in clear.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use scimgate_limits::FairSlots;
use scimgate_model::PasswordChange;

use crate::error::ApiError;

/// `password_storage` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordStorage {
    /// Keep an Argon2id hash (PHC string) of each password sent.
    Argon2id,
    /// Keep nothing: for installs where scimgate never authenticates users.
    Discard,
}

/// Hashes passwords a few at a time. Argon2id takes 19 MiB and a core's worth of time per
/// hash, so concurrent hashing is bounded by slots (one per core by default, a tenant
/// holding at most all but one), each with its own memory allocated once and reused: the
/// server's memory does not grow with the number of users created at once, and what a
/// burst used is not left behind in the allocator.
pub struct Passwords {
    storage: PasswordStorage,
    slots: Arc<FairSlots>,
    /// Argon2 working memory, one buffer per slot in use at most.
    memory: Mutex<Vec<Vec<Block>>>,
}

impl Passwords {
    pub fn new(storage: PasswordStorage, slots: usize, wait: Duration) -> Self {
        Passwords {
            storage,
            slots: FairSlots::new(
                "password hashing",
                slots,
                FairSlots::share_leaving(slots, 1),
                wait,
            ),
            memory: Mutex::new(Vec::new()),
        }
    }

    pub fn storage(&self) -> PasswordStorage {
        self.storage
    }

    /// What to store for a password change: the hash of a new password (or, when
    /// passwords are discarded, nothing: the old hash is cleared, it no longer matches).
    /// Waits for a hashing slot (the tenant's share of them), or answers 503 when none
    /// comes free in time.
    pub fn protect(
        &self,
        tenant: &str,
        change: PasswordChange,
    ) -> Result<PasswordChange, ApiError> {
        let PasswordChange::Set(password) = change else {
            return Ok(change);
        };
        match self.storage {
            PasswordStorage::Discard => Ok(PasswordChange::Clear),
            PasswordStorage::Argon2id => {
                let _slot = self.slots.acquire(tenant).map_err(ApiError::Overloaded)?;
                let mut memory = self
                    .memory
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
                    .unwrap_or_else(|| vec![Block::default(); Params::default().block_count()]);
                let hashed = hash(password.as_bytes(), &mut memory);
                self.memory
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(memory);
                hashed.map(PasswordChange::Set)
            }
        }
    }
}

/// The Argon2id PHC string of `password` with a fresh salt, computed in `memory`.
fn hash(password: &[u8], memory: &mut [Block]) -> Result<String, ApiError> {
    let params = Params::default();
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| ApiError::Internal(format!("password salt: {e}")))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt_bytes, &mut out, memory)
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        STANDARD_NO_PAD.encode(out)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    fn passwords(storage: PasswordStorage) -> Passwords {
        Passwords::new(storage, 2, Duration::from_millis(100))
    }

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let p = passwords(PasswordStorage::Argon2id);
        let PasswordChange::Set(stored) = p
            .protect("t", PasswordChange::Set("s3cret".into()))
            .expect("hash")
        else {
            panic!("a hash")
        };
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains("s3cret"));
        let parsed = PasswordHash::new(&stored).expect("phc");
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        // The reused memory gives the same kind of hash the next time, not a stale one.
        let PasswordChange::Set(again) = p
            .protect("t", PasswordChange::Set("other".into()))
            .expect("hash")
        else {
            panic!("a hash")
        };
        let parsed = PasswordHash::new(&again).expect("phc");
        assert!(Argon2::default().verify_password(b"other", &parsed).is_ok());
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_err()
        );
    }

    #[test]
    fn a_tenant_waiting_past_its_share_gets_overloaded() {
        let p = passwords(PasswordStorage::Argon2id);
        let held = p.slots.acquire("t").expect("slot");
        match p.protect("t", PasswordChange::Set("x".into())) {
            Err(ApiError::Overloaded(busy)) => assert_eq!(busy.what, "password hashing"),
            other => panic!("expected overload, got {other:?}"),
        }
        // Another tenant still hashes: one slot is kept for it.
        assert!(matches!(
            p.protect("u", PasswordChange::Set("x".into()))
                .expect("hash"),
            PasswordChange::Set(_)
        ));
        drop(held);
    }

    #[test]
    fn discard_keeps_nothing() {
        assert_eq!(
            passwords(PasswordStorage::Discard)
                .protect("t", PasswordChange::Set("x".into()))
                .expect("ok"),
            PasswordChange::Clear
        );
    }
}
