//! Page cursors (RFC 9865 `cursor`, `/admin/audit`'s `cursor`) are sealed: the position
//! is encrypted and authenticated with a key derived from the data folder's secret, and
//! bound to what the page is of (tenant, resource type, filter, order). A client cannot
//! read a position (which would reveal the server's global sequence, and so other tenants'
//! write volume), make one, or carry one to another tenant or query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use serde_json::Value;

/// Longest cursor text looked at; a sealed position is far shorter.
const MAX_CURSOR_LEN: usize = 4096;

pub struct CursorKey(LessSafeKey);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

impl CursorKey {
    /// A key of its own derived from `secret`, so that a cursor key can never be used to
    /// sign a token or the other way round.
    pub fn derive(secret: &[u8]) -> Self {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret),
            b"scimgate page cursor key v1",
        );
        let key = UnboundKey::new(&CHACHA20_POLY1305, tag.as_ref())
            // A 32-byte HMAC-SHA256 tag is exactly a ChaCha20-Poly1305 key.
            .unwrap_or_else(|_| unreachable!("32-byte key"));
        CursorKey(LessSafeKey::new(key))
    }

    /// The cursor text for `position`, valid only with the same `binding`.
    pub fn seal(&self, binding: &str, position: &Value) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = position.to_string().into_bytes();
        // Sealing into a Vec cannot fail but for a message longer than ChaCha20 allows.
        if self
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(binding.as_bytes()),
                &mut data,
            )
            .is_err()
        {
            return String::new();
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The position in `text`, when this server sealed it with the same `binding`.
    pub fn open(&self, binding: &str, text: &str) -> Option<Value> {
        let text = text.trim();
        if text.len() > MAX_CURSOR_LEN {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(binding.as_bytes()), &mut sealed)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cursor_opens_only_with_its_key_and_binding() {
        let key = CursorKey::derive(&[1u8; 32]);
        let text = key.seal("acme/User/x", &json!({"k": 42, "i": "id"}));
        assert_eq!(
            key.open("acme/User/x", &text),
            Some(json!({"k": 42, "i": "id"}))
        );
        assert!(!text.contains("42"), "the position is not readable");
        let cases = [
            ("another binding", key.open("beta/User/x", &text)),
            (
                "another key",
                CursorKey::derive(&[2u8; 32]).open("acme/User/x", &text),
            ),
            ("not base64", key.open("acme/User/x", "!!")),
            ("too short", key.open("acme/User/x", "AAAA")),
            (
                "client-made",
                key.open(
                    "acme/User/x",
                    &URL_SAFE_NO_PAD.encode(json!({"k": 1, "i": "a"}).to_string()),
                ),
            ),
        ];
        for (what, opened) in cases {
            assert_eq!(opened, None, "{what}");
        }
        let mut tampered = URL_SAFE_NO_PAD.decode(&text).expect("b64");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            key.open("acme/User/x", &URL_SAFE_NO_PAD.encode(tampered)),
            None,
            "tampered"
        );
    }

    #[test]
    fn two_seals_of_one_position_differ() {
        let key = CursorKey::derive(&[1u8; 32]);
        let p = json!({"k": 1, "i": "a"});
        assert_ne!(key.seal("b", &p), key.seal("b", &p));
    }
}
