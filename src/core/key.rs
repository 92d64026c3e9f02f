//! Idempotency keys: the rules of the IETF draft's header value, and UUIDv7 generation.

use alloc::string::String;

use super::error::{ErrorCode, OutboxError};
use super::text::{concat, decimal};
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
            concat(&[
                "the key is ",
                &decimal(key.len() as u64),
                " bytes long; the limit is ",
                &decimal(MAX_KEY_LEN as u64),
            ]),
        ));
    }
    // The offending character is located, not quoted: `{:?}` would bring core's escaping
    // and Unicode tables into the wasm module.
    if let Some(at) = key.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(OutboxError::new(
            ErrorCode::InvalidKey,
            concat(&[
                "the key has a space, control or non-ASCII character at byte ",
                &decimal(at as u64),
                "; only visible ASCII characters are allowed",
            ]),
        ));
    }
    Ok(())
}

/// Makes a UUIDv7 key from the time and ten random bytes (passed in: the core has no
/// random source). Keys made later sort later, which keeps server-side indexes tidy.
/// Written out here, not with the uuid crate: less code in the wasm module.
pub fn new_key(now: Millis, random: [u8; 10]) -> String {
    let mut bytes = [0u8; 16];
    // 48 bits of milliseconds, big-endian; then the random bytes.
    bytes[..6].copy_from_slice(&now.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random);
    bytes[6] = 0x70 | (bytes[6] & 0x0f); // version 7
    bytes[8] = 0x80 | (bytes[8] & 0x3f); // the RFC 9562 variant
    let mut key = String::with_capacity(36);
    for (i, b) in bytes.into_iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            key.push('-');
        }
        for nibble in [b >> 4, b & 0x0f] {
            key.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
        }
    }
    key
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
        // As the uuid crate made them.
        assert_eq!(a, "018bcfe5-6800-7707-8707-070707070707");
        assert_eq!(
            new_key(
                0x0123_4567_89ab,
                [0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 1, 2, 3, 4]
            ),
            "01234567-89ab-7ffe-bdfc-fbfa01020304"
        );
        assert_eq!(
            new_key(u64::MAX, [0; 10]),
            "ffffffff-ffff-7000-8000-000000000000"
        );
    }
}
