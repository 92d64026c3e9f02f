//! What a send attempt ended in, and the status table that decides what happens next.

use alloc::string::String;

use super::http_date::parse_http_date;
use super::Millis;

/// How a response status is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The server has the message: remove it from pending.
    Delivered,
    /// Try again later; counts toward the retry cap.
    Transient,
    /// Resending cannot help: dead-letter it now, so it never blocks the queue.
    Permanent,
}

/// The default status table: 2xx delivered; 408, 409 (the key is still being
/// processed), 425, 429 and 5xx transient; everything else permanent.
pub fn classify_status(status: u16) -> Class {
    match status {
        200..=299 => Class::Delivered,
        408 | 409 | 425 | 429 | 500..=599 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// The result of one attempt, as the driver reports it to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server answered.
    Response {
        /// The HTTP status.
        status: u16,
        /// How to treat it ([`classify_status`] unless the app overrides it).
        class: Class,
        /// The earliest time `Retry-After` allows a resend, if the header was present.
        retry_after: Option<Millis>,
    },
    /// No answer within `requestTimeoutMs`. The server may have seen the request, so it
    /// counts toward the cap.
    Timeout,
    /// No answer at all (offline, DNS, refused, reset). Says nothing about the message,
    /// so it does not count toward the cap.
    NetworkError {
        /// What the browser said.
        message: String,
    },
}

/// Parses a `Retry-After` value, seconds or an HTTP date, into an absolute time.
/// Unparseable values are ignored (`None`), as the RFC asks of a recipient.
pub fn parse_retry_after(value: &str, now: Millis) -> Option<Millis> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(now.saturating_add(secs.saturating_mul(1000)));
    }
    parse_http_date(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify_status(s), Class::Delivered, "{s}");
        }
        for s in [408, 409, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(s), Class::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 410, 413, 422, 301, 100] {
            assert_eq!(classify_status(s), Class::Permanent, "{s}");
        }
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("2", 1_000), Some(3_000));
        assert_eq!(parse_retry_after(" 0 ", 1_000), Some(1_000));
        // 1994-11-06T08:49:37Z
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 0),
            Some(784_111_777_000)
        );
        assert_eq!(parse_retry_after("soon", 1_000), None);
        assert_eq!(parse_retry_after("-3", 1_000), None);
        // A date in the past is still a time; the engine's own backoff is the floor.
        assert_eq!(
            parse_retry_after(" Thu, 01 Jan 1970 00:00:01 GMT ", 5_000),
            Some(1_000)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0),
            Some(253_402_300_799_000)
        );
        assert_eq!(parse_retry_after("Sat, 30 Feb 2030 00:00:00 GMT", 0), None);
        assert_eq!(
            parse_retry_after("99999999999999999999", 1_000),
            None,
            "too many seconds for u64, and no date"
        );
    }
}
