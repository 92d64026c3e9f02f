//! The `Idempotency-Key` header and the request fingerprint.
//!
//! A key is 1 to 255 visible ASCII characters (0x21..=0x7E), the same rule the client
//! library enforces. The IETF draft defines the header as a Structured Field string
//! (`"abc"`); the durable-outbox client sends the bare token (`abc`). Both are accepted,
//! and the surrounding quotes are not part of the key.
//!
//! The fingerprint is SHA-256 over the method, the path and the canonical JSON body, so a
//! resend that differs only in whitespace or key order is still "the same request", and
//! one that differs in content is a key reuse (422).

use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::problem::{Kind, Problem};

/// Header name (lower case, as `http` stores it).
pub const HEADER: &str = "idempotency-key";

/// Longest accepted key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// Extracts and validates the key from the request headers.
pub fn key_from_headers(headers: &HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all(HEADER).iter();
    let value = values
        .next()
        .ok_or_else(|| Problem::new(Kind::MissingKey, "send the Idempotency-Key header"))?;
    if values.next().is_some() {
        return Err(Problem::new(
            Kind::InvalidKey,
            "Idempotency-Key must be sent once",
        ));
    }
    parse_key(value.as_bytes())
}

/// Validates one key as sent (in the header, or in a batch item), bare or as an
/// sf-string: one pair of surrounding quotes is stripped, and what is inside must pass
/// [`validate_key`]. Returns the key itself.
pub fn parse_key(raw: &[u8]) -> Result<String, Problem> {
    let raw = match raw {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    validate_key(raw).map_err(|detail| Problem::new(Kind::InvalidKey, detail))?;
    Ok(String::from_utf8(raw.to_vec()).expect("visible ASCII is UTF-8"))
}

/// Checks the key rule: 1..=255 bytes, each visible ASCII.
pub fn validate_key(key: &[u8]) -> Result<(), String> {
    if key.is_empty() {
        return Err("Idempotency-Key is empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "Idempotency-Key is {} characters, over {MAX_KEY_LEN}",
            key.len()
        ));
    }
    if let Some(pos) = key.iter().position(|b| !(0x21..=0x7e).contains(b)) {
        return Err(format!(
            "Idempotency-Key has a character outside visible ASCII at {pos}"
        ));
    }
    Ok(())
}

/// Serializes JSON with object keys sorted at every level and no whitespace.
///
/// Written out rather than relying on serde_json's map order, because another crate in
/// the build enabling serde_json's `preserve_order` feature would silently change it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 (lower-case hex) of `method`, `path` and the canonical body, newline-separated.
pub fn fingerprint(method: &str, path: &str, canonical_body: &str) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(canonical_body.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(v: &[u8]) -> Result<String, Problem> {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(v).unwrap());
        key_from_headers(&h)
    }

    #[test]
    fn keys() {
        assert_eq!(key(b"abc-123").unwrap(), "abc-123");
        assert_eq!(key(b"\"quoted\"").unwrap(), "quoted");
        assert_eq!(key(&[b'k'; 255]).unwrap().len(), 255);
        assert_eq!(key(&[b'k'; 256]).unwrap_err().kind(), Kind::InvalidKey);
        assert_eq!(key(b"").unwrap_err().kind(), Kind::InvalidKey);
        assert_eq!(key(b"\"\"").unwrap_err().kind(), Kind::InvalidKey);
        assert_eq!(key(b"a b").unwrap_err().kind(), Kind::InvalidKey);
        assert_eq!(key(b"caf\xc3\xa9").unwrap_err().kind(), Kind::InvalidKey);
        assert_eq!(
            key_from_headers(&HeaderMap::new()).unwrap_err().kind(),
            Kind::MissingKey
        );
    }

    #[test]
    fn canonical_ignores_order_and_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{ "b": [1, {"y":2,"x":1}], "a": "\u00e9" }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"é","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":"é","b":[1,{"x":1,"y":2}]}"#);
        assert_eq!(
            fingerprint("POST", "/v1/messages", &canonical_json(&a)),
            fingerprint("POST", "/v1/messages", &canonical_json(&b))
        );
        assert_ne!(
            fingerprint("POST", "/v1/messages", "1"),
            fingerprint("POST", "/v1/other", "1")
        );
        assert_eq!(fingerprint("POST", "/", "").len(), 64);
    }
}
