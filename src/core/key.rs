//! Idempotency keys: the rules of the IETF draft's header value, and UUIDv7 generation.

use super::error::{ErrorCode, OutboxError};
use super::Millis;

/// The longest key accepted; the reference server applies the same limit.
pub const MAX_KEY_LEN: usize = 255;

/// Checks a caller-supplied key: 1 to 255 characters of visible ASCII (`!` to `~`), so it
/// fits an HTTP header unchanged and the server will accept it.
pub fn validate_key(key: &str) -> Result<(), OutboxError> {
    if key.is_empty() {
        return Err(OutboxError::new(ErrorCode::InvalidKey, "the key is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(OutboxError::new(
            ErrorCode::InvalidKey,
            format!(
                "the key is {} bytes long; the limit is {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    // The offending character is located, not quoted: `{:?}` would bring core's escaping
    // and Unicode tables into the wasm module.
    if let Some(at) = key.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(OutboxError::new(
            ErrorCode::InvalidKey,
            format!(
                "the key has a space, control or non-ASCII character at byte {at}; only visible ASCII characters are allowed"
            ),
        ));
    }
    Ok(())
}

/// Makes a UUIDv7 key from the time and ten random bytes (passed in: the core has no
/// random source). Keys made later sort later, which keeps server-side indexes tidy.
pub fn new_key(now: Millis, random: [u8; 10]) -> String {
    uuid::Builder::from_unix_timestamp_millis(now, &random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_and_rejects_the_rest() {
        assert!(validate_key("note-1:edit/2").is_ok());
        assert!(validate_key(&"k".repeat(255)).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert_eq!(
                validate_key(bad).unwrap_err().code,
                ErrorCode::InvalidKey,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generated_keys_are_valid_uuid_v7_and_time_ordered() {
        let a = new_key(1_700_000_000_000, [7; 10]);
        let b = new_key(1_700_000_000_001, [0; 10]);
        assert!(validate_key(&a).is_ok());
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "version nibble");
        assert!(a < b);
    }
}
