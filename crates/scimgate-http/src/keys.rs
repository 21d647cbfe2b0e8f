//! The keys tokens are verified with: the data folder's own HS256 key (what `scimgate
//! token` signs with) and the operator's: HMAC secrets, RSA, EC and Ed25519 public keys in
//! PEM files, and a JWKS file. Each key is bound to one algorithm; a token names its key by
//! `kid`, or, without one, is tried against the keys of its algorithm.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::token::{Claims, LOCAL_ISSUER, LOCAL_KID, SigningKey};

/// One operator key, `[[auth.keys]]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Matched against the token header's `kid`. A token without a `kid` is tried against
    /// every key of its algorithm, this one included.
    #[serde(default)]
    pub kid: Option<String>,
    /// HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA.
    pub algorithm: String,
    /// A PEM public key, or for HS* a file holding the secret in base64.
    pub file: PathBuf,
    /// `iss` the tokens must carry (present and equal); unset accepts any or none.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `aud` the tokens must carry (present and equal); unset accepts tokens without one.
    #[serde(default)]
    pub audience: Option<String>,
}

/// Token verification settings, `[auth]` in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub keys: Vec<KeySpec>,
    /// A JWKS document (RFC 7517) with public keys; each needs `kid` and `alg`.
    pub jwks_file: Option<PathBuf>,
    /// `iss` and `aud` required of tokens verified with JWKS keys.
    pub jwks_issuer: Option<String>,
    pub jwks_audience: Option<String>,
}

struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Every key a token may be signed with.
pub struct KeyRing {
    keys: Vec<VerifyingKey>,
    /// Tokens already verified, by their whole text: IdPs send the same long-lived token
    /// on every request, and an RSA or ECDSA check costs 50-200 µs. The keys never change
    /// while the server runs; `exp` and `nbf` are checked again on every use.
    verified: Mutex<HashMap<String, Claims>>,
}

/// Most tokens remembered as verified; past it the memory is cleared and refilled.
const VERIFIED_CAPACITY: usize = 1024;

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys)", self.keys.len())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl KeyRing {
    /// The local key and the configured ones; a key that cannot be read or parsed stops
    /// the start, naming its file.
    pub fn load(local: &SigningKey, settings: &AuthSettings) -> Result<Self, String> {
        let mut keys = vec![VerifyingKey {
            kid: Some(LOCAL_KID.into()),
            algorithm: Algorithm::HS256,
            key: local.decoding().clone(),
            issuer: Some(LOCAL_ISSUER.into()),
            audience: None,
        }];
        for spec in &settings.keys {
            let algorithm: Algorithm = spec.algorithm.parse().map_err(|_| {
                format!(
                    "auth.keys: unknown algorithm '{}' for {}",
                    spec.algorithm,
                    spec.file.display()
                )
            })?;
            let bytes = read(&spec.file)?;
            let bad = |e: jsonwebtoken::errors::Error| {
                format!(
                    "auth.keys: {} is not a {algorithm:?} key: {e}",
                    spec.file.display()
                )
            };
            let key = match algorithm {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                    let text = String::from_utf8_lossy(&bytes);
                    let secret = STANDARD.decode(text.trim()).map_err(|e| {
                        format!(
                            "auth.keys: {} must hold a base64 secret: {e}",
                            spec.file.display()
                        )
                    })?;
                    if secret.len() < 32 {
                        return Err(format!(
                            "auth.keys: the secret in {} is shorter than 32 bytes",
                            spec.file.display()
                        ));
                    }
                    DecodingKey::from_secret(&secret).map_err(bad)?
                }
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(&bytes).map_err(bad)?,
                Algorithm::ES256 | Algorithm::ES384 => {
                    DecodingKey::from_ec_pem(&bytes).map_err(bad)?
                }
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&bytes).map_err(bad)?,
                other => {
                    return Err(format!(
                        "auth.keys: the algorithm {other:?} is not supported ({})",
                        spec.file.display()
                    ));
                }
            };
            keys.push(VerifyingKey {
                kid: spec.kid.clone(),
                algorithm,
                key,
                issuer: spec.issuer.clone(),
                audience: spec.audience.clone(),
            });
        }
        if let Some(path) = &settings.jwks_file {
            let set: JwkSet = serde_json::from_slice(&read(path)?)
                .map_err(|e| format!("auth.jwks_file {}: not a JWKS: {e}", path.display()))?;
            for jwk in &set.keys {
                let kid = jwk.common.key_id.clone().ok_or_else(|| {
                    format!("auth.jwks_file {}: a key has no 'kid'", path.display())
                })?;
                let algorithm = jwk
                    .common
                    .key_algorithm
                    .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                    .ok_or_else(|| {
                        format!(
                            "auth.jwks_file {}: key '{kid}' has no usable 'alg'",
                            path.display()
                        )
                    })?;
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("auth.jwks_file {}: key '{kid}': {e}", path.display()))?;
                keys.push(VerifyingKey {
                    kid: Some(kid),
                    algorithm,
                    key,
                    issuer: settings.jwks_issuer.clone(),
                    audience: settings.jwks_audience.clone(),
                });
            }
        }
        Ok(KeyRing {
            keys,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies a token: its key (by `kid`, else by algorithm), the algorithm the key is
    /// bound to, the signature, `exp`, `nbf`, and `iss` and `aud` where the key wants them.
    pub fn verify(&self, token: &str, leeway_secs: u64) -> Result<Claims, String> {
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|m| m.get(token).cloned());
        if let Some(claims) = cached {
            let now = jsonwebtoken::get_current_timestamp() as i64;
            let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
            if claims.exp.saturating_add(leeway) <= now {
                return Err("ExpiredSignature".into());
            }
            if claims
                .nbf
                .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
            {
                return Err("ImmatureSignature".into());
            }
            return Ok(claims);
        }
        let claims = self.verify_signed(token, leeway_secs)?;
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_CAPACITY {
                m.clear();
            }
            m.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_signed(&self, token: &str, leeway_secs: u64) -> Result<Claims, String> {
        // `alg: none` and unknown algorithms fail here: the header does not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        // Several keys may share a `kid` while one is being rotated out; each is bound to
        // its algorithm, so a token naming a key must also use that key's algorithm.
        let candidates: Vec<&VerifyingKey> = match &header.kid {
            Some(kid) => {
                let named: Vec<&VerifyingKey> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if named.is_empty() {
                    return Err(format!("no key with kid '{kid}'"));
                }
                let bound: Vec<&VerifyingKey> = named
                    .iter()
                    .copied()
                    .filter(|k| k.algorithm == header.alg)
                    .collect();
                if bound.is_empty() {
                    return Err(format!(
                        "key '{kid}' is for {:?}, the token says {:?}",
                        named[0].algorithm, header.alg
                    ));
                }
                bound
            }
            None => self
                .keys
                .iter()
                .filter(|k| k.algorithm == header.alg)
                .collect(),
        };
        if candidates.is_empty() {
            return Err(format!("no key for algorithm {:?}", header.alg));
        }
        let mut last = String::new();
        for key in candidates {
            let mut v = Validation::new(key.algorithm);
            v.leeway = leeway_secs;
            v.validate_nbf = true;
            // A configured issuer or audience must be present, not merely equal when
            // present: jsonwebtoken checks `iss`/`aud` only when the token carries them.
            let mut required = vec!["exp", "sub"];
            if key.issuer.is_some() {
                required.push("iss");
            }
            if key.audience.is_some() {
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            match &key.issuer {
                Some(iss) => v.set_issuer(&[iss]),
                None => v.iss = None,
            }
            match &key.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            match jsonwebtoken::decode::<Claims>(token, &key.key, &v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> SigningKey {
        SigningKey::from_secret(&[7u8; 32]).expect("key")
    }

    fn request(ttl: u64) -> TokenRequest {
        TokenRequest {
            subject: "entra".into(),
            tenants: vec!["acme".into(), "beta".into()],
            scope: "scim:read scim:write".into(),
            ttl_secs: ttl,
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn ring(k: &SigningKey) -> crate::keys::KeyRing {
        KeyRing::load(k, &Default::default()).expect("ring")
    }

    fn mint(k: &SigningKey, req: &TokenRequest, at: i64) -> String {
        k.mint(req, at).expect("mint").0
    }

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let k = key();
        let t = mint(&k, &request(60), now());
        let c = ring(&k).verify(&t, 0).expect("verify");
        assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("entra", "acme"));
        assert!(c.may_act_for("acme") && c.may_act_for("beta") && !c.may_act_for("gamma"));
        assert!(c.has_scope(SCOPE_READ) && c.has_scope(SCOPE_WRITE));
        assert!(c.jti.is_some());
    }

    #[test]
    fn refuses_expired_future_foreign_and_unsigned_tokens() {
        let k = key();
        let r = ring(&k);
        let expired = mint(&k, &request(10), now() - 1000);
        assert!(r.verify(&expired, 30).is_err());
        let future = mint(&k, &request(3600), now() + 600);
        assert!(r.verify(&future, 30).is_err(), "nbf in the future");
        let foreign = mint(
            &SigningKey::from_secret(&[8u8; 32]).expect("key"),
            &request(60),
            now(),
        );
        assert!(r.verify(&foreign, 30).is_err());
        // alg "none": header {"alg":"none","typ":"JWT"} and an empty signature.
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"x","tenant":"acme","scope":"scim:read","exp":{}}}"#,
            now() + 60
        ));
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(r.verify(&none, 30).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_changed_one_is_checked_again() {
        let k = key();
        let r = ring(&k);
        let t = mint(&k, &request(10), now() - 20);
        assert!(
            r.verify(&t, 30).is_ok(),
            "inside the leeway; now remembered"
        );
        assert!(r.verify(&t, 0).is_err(), "the remembered token is past exp");
        let good = mint(&k, &request(60), now());
        assert!(r.verify(&good, 0).is_ok());
        let mut forged = good.clone();
        forged.push('x');
        assert!(
            r.verify(&forged, 0).is_err(),
            "any other text is verified afresh"
        );
    }

    #[test]
    fn tenant_names_are_restricted() {
        assert!(valid_tenant("acme-prod.eu_1"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a b"));
        assert!(!valid_tenant(&"x".repeat(65)));
    }

    #[test]
    fn key_file_is_created_once_with_mode_600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SigningKey::load_or_create(dir.path()).expect("create");
        let t = mint(&a, &request(60), now());
        let b = SigningKey::load_or_create(dir.path()).expect("load");
        assert!(ring(&b).verify(&t, 0).is_ok(), "same key on reload");
        let mode = fs::metadata(dir.path().join(SigningKey::FILE_NAME))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
