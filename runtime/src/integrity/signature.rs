//! Detached signatures: a tenant's components signed with a key its ceiling lists.
//!
//! The format is minisign's (Ed25519, a `.minisig` file beside the signed file), verified by
//! minisign's author's own crate: the runtime writes no crypto. An operator lists a tenant's
//! public keys (the base64 line `minisign -G` writes to its `.pub` file); every component the
//! tenant names must then carry `<component>.minisig` made by one of them. A signature is
//! checked against the exact bytes that are hashed and compiled, as a `sha256:` pin is.

use minisign_verify::{Error, PublicKey, Signature};

/// A public key a tenant's components may be signed with.
#[derive(Clone)]
pub struct SigningKey {
    key: PublicKey,
    /// As the operator wrote it, for messages and `check`.
    text: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SigningKey").field(&self.text).finish()
    }
}

impl SigningKey {
    /// A key from its base64 line (`RW...`), or from a whole `.pub` file's text (the comment
    /// line, then the key). The error says what is wrong, for a `ConfigError`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let key = if text.contains('\n') { PublicKey::decode(text) } else { PublicKey::from_base64(text) };
        let key = key.map_err(|e| format!("'{}' is not a minisign public key: {e}", short(text)))?;
        let line = text.lines().last().unwrap_or(text).trim().to_owned();
        Ok(Self { key, text: line })
    }

    /// The key as written: minisign's base64 line.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Check that `signature` (a `.minisig` file's text) signs `bytes` with one of `keys`, and
/// return that key. The error says why not, for the operator and the tenant to read.
pub fn verify<'k>(keys: &'k [SigningKey], bytes: &[u8], signature: &str) -> Result<&'k SigningKey, String> {
    let signature = Signature::decode(signature).map_err(|e| format!("not a minisign signature: {e}"))?;
    let mut other_key = true;
    for key in keys {
        // Minisign's legacy (not prehashed) signatures are Ed25519 over the bytes themselves:
        // as sound, and `minisign -V` accepts them too.
        match key.key.verify(bytes, &signature, true) {
            Ok(()) => return Ok(key),
            Err(Error::UnexpectedKeyId) => {}
            Err(_) => other_key = false,
        }
    }
    Err(if other_key {
        "signed by a key that is not one of the tenant's".to_owned()
    } else {
        "the signature does not match the component's bytes".to_owned()
    })
}

/// The start of a long text, for a message.
fn short(text: &str) -> String {
    match text.char_indices().nth(24) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pair() -> (minisign::SecretKey, SigningKey) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = SigningKey::parse(&pair.pk.to_base64()).unwrap();
        (pair.sk, public)
    }

    fn sign(secret: &minisign::SecretKey, bytes: &[u8]) -> String {
        minisign::sign(None, secret, std::io::Cursor::new(bytes), None, None).unwrap().to_string()
    }

    #[test]
    fn a_signature_by_one_of_the_keys_is_accepted() {
        let (secret, public) = key_pair();
        let (_, other) = key_pair();
        let keys = [other, public.clone()];
        let signed = verify(&keys, b"component", &sign(&secret, b"component")).unwrap();
        assert_eq!(signed.as_str(), public.as_str());
    }

    #[test]
    fn other_bytes_or_another_key_are_refused() {
        let (secret, public) = key_pair();
        let (stranger, _) = key_pair();
        let keys = [public];
        let tampered = verify(&keys, b"component!", &sign(&secret, b"component")).unwrap_err();
        assert!(tampered.contains("does not match"), "{tampered}");
        let foreign = verify(&keys, b"component", &sign(&stranger, b"component")).unwrap_err();
        assert!(foreign.contains("not one of the tenant's"), "{foreign}");
        assert!(verify(&keys, b"component", "garbage").unwrap_err().contains("not a minisign signature"));
        assert!(verify(&[], b"component", &sign(&secret, b"component")).is_err());
    }

    #[test]
    fn keys_are_read_from_their_line_or_their_file() {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let line = pair.pk.to_base64();
        let file = pair.pk.to_box().unwrap().to_string();
        assert_eq!(SigningKey::parse(&file).unwrap().as_str(), line);
        assert!(SigningKey::parse("RWQnotakey").unwrap_err().contains("not a minisign public key"));
    }
}
