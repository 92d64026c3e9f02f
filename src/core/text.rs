//! Messages put together without `core::fmt`: its formatting machinery is several KB
//! of the wasm module, and the outbox's messages are only words and whole numbers.

use alloc::string::String;

/// The parts, one after another.
pub fn concat(parts: &[&str]) -> String {
    let mut text = String::new();
    for part in parts {
        text.push_str(part);
    }
    text
}

/// `n` in decimal.
pub fn decimal(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut text = String::new();
    for &d in &digits[start..] {
        text.push(char::from(d));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_what_format_writes() {
        for n in [0, 1, 9, 10, 99, 100, 503, 65_535, 1 << 53, u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }

    #[test]
    fn concat_joins_in_order() {
        assert_eq!(concat(&[]), "");
        assert_eq!(concat(&["HTTP ", &decimal(503), "!"]), "HTTP 503!");
    }
}
