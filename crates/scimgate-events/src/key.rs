//! The feed's signing key: Ed25519, made at first start in the data folder (mode 0600) and
//! kept apart from the token secret, so that a receiver verifying events holds only a
//! public key (published as a JWKS, RFC 7517) and can never mint an access token.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use crate::error::EventsError;

pub struct FeedKey {
    /// Parsed once: every event is signed for every receiver, and a signature with the
    /// parsed pair is one scalar multiplication (`jsonwebtoken`'s backend parses the key,
    /// another, on every call).
    pair: Ed25519KeyPair,
    /// The JWS protected header, base64url: the same for every SET.
    header: String,
    /// The public key, base64url (the JWK's `x`).
    x: String,
    /// RFC 7638 thumbprint of the public JWK.
    kid: String,
}

impl std::fmt::Debug for FeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FeedKey(kid {})", self.kid)
    }
}

impl FeedKey {
    pub const FILE_NAME: &'static str = "events-ed25519.pk8";

    /// Reads the key in `data_dir`, making it (PKCS#8, mode 0600) the first time.
    pub fn load_or_create(data_dir: &Path) -> Result<FeedKey, EventsError> {
        let path = data_dir.join(Self::FILE_NAME);
        let failed = |cause: String| EventsError::Key {
            path: path.display().to_string(),
            cause,
        };
        if !path.exists() {
            let rng = ring::rand::SystemRandom::new();
            let document = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| failed("could not generate a key".into()))?;
            let mut file = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
            };
            match &mut file {
                Ok(file) => file
                    .write_all(document.as_ref())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| failed(e.to_string()))?,
                // Another process made it first: read that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        let der = std::fs::read(&path).map_err(|e| failed(e.to_string()))?;
        FeedKey::from_pkcs8(&der).map_err(failed)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<FeedKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        let header = json!({"alg": "EdDSA", "typ": "secevent+jwt", "kid": kid});
        Ok(FeedKey {
            pair,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            x,
            kid,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS document, for receivers to verify events with.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }]})
    }

    /// `claims` as a signed SET: JWS compact serialisation (RFC 7515 §7.1) with `alg`
    /// `EdDSA` (RFC 8037), `typ` `secevent+jwt` (RFC 8417 §2.3) and the key's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, EventsError> {
        let payload = serde_json::to_vec(claims).map_err(|e| EventsError::Sign(e.to_string()))?;
        let mut jws = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(payload));
        let signature = self.pair.sign(jws.as_bytes());
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(jws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[test]
    fn a_signed_event_verifies_with_the_published_key_and_the_key_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = FeedKey::load_or_create(dir.path()).expect("key");
        let again = FeedKey::load_or_create(dir.path()).expect("same key");
        assert_eq!(key.kid(), again.kid(), "made once, then read");
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.path().join(FeedKey::FILE_NAME))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);

        let token = key
            .sign(&json!({"iss": "scimgate", "jti": "1", "iat": 1, "events": {}}))
            .expect("signed");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let jwks: JwkSet = serde_json::from_value(key.jwks()).expect("a JWKS");
        let jwk = jwks.find(key.kid()).expect("the key by kid");
        let decoding = DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verifies");
        assert_eq!(data.claims["jti"], "1");

        let other =
            FeedKey::load_or_create(tempfile::tempdir().expect("tmp").path()).expect("another key");
        let forged = other.sign(&json!({"jti": "1"})).expect("signed");
        assert!(jsonwebtoken::decode::<Value>(&forged, &decoding, &validation).is_err());
    }
}
