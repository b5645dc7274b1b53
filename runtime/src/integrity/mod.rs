//! Integrity pins: the SHA-256 of an initialiser's code, as the operator reviewed it.
//!
//! An init-file entry may say `sha256: <64 hex digits>`. The runtime hashes the exact bytes it
//! is about to compile (a component file as read once at start-up, or a builtin's embedded
//! bytes) and refuses to start if they differ, so a component swapped on disk after review is
//! never run. Upper- and lowercase hex digits are both accepted (`sha256sum` prints lowercase,
//! some tools uppercase); digests are always printed lowercase.
//!
//! A tenant's components may also have to be signed ([`signature`]): a pin says which bytes,
//! a signature says whose.

pub mod signature;

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// A digest computed elsewhere (the build's, for the builtins).
    pub(crate) const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parse 64 hex digits, either case. The error says what is wrong, for a `ConfigError`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return Err(format!(
                "'{text}' is not a SHA-256 digest: expected 64 hex digits (as `sha256sum` prints), got {} characters",
                text.chars().count()
            ));
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(high), Some(low)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(format!("'{text}' is not a SHA-256 digest: only hex digits 0-9 and a-f are allowed"));
            };
            *byte = high << 4 | low;
        }
        Ok(Self(digest))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    /// Lowercase hex, as `sha256sum` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digests_match_sha256sum() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(Digest::parse(EMPTY), Ok(Digest::of(b"")));
    }

    #[test]
    fn uppercase_is_the_same_digest() {
        assert_eq!(Digest::parse(&EMPTY.to_uppercase()), Ok(Digest::of(b"")));
    }

    #[test]
    fn malformed_digests_are_refused() {
        assert!(Digest::parse("").unwrap_err().contains("64 hex digits"));
        assert!(Digest::parse(&EMPTY[1..]).unwrap_err().contains("got 63 characters"));
        assert!(Digest::parse(&format!("{}g", &EMPTY[1..])).unwrap_err().contains("only hex digits"));
        assert!(Digest::parse(&format!("sha256:{EMPTY}")).is_err());
        // 64 bytes, not 64 characters: a multi-byte character must not slice a pair.
        assert!(Digest::parse(&format!("é{}", &EMPTY[2..])).is_err());
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let digest = Digest::of(&bytes);
            prop_assert_eq!(Digest::parse(&digest.to_string()), Ok(digest));
            prop_assert_eq!(Digest::parse(&digest.to_string().to_uppercase()), Ok(digest));
        }

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = Digest::parse(&text);
        }
    }
}
