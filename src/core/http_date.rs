//! HTTP dates (RFC 9110 §5.6.7), for `Retry-After`: the IMF-fixdate form servers send,
//! and the two obsolete forms (RFC 850 and asctime) that a recipient must still accept.
//! Written here rather than taken from the httpdate crate, which brought more
//! code (much of it formatting) into the wasm module for these few lines of parsing.

/// Month abbreviations, in order.
const MONTHS: &[u8] = b"JanFebMarAprMayJunJulAugSepOctNovDec";

/// Weekdays, starting on a Thursday: the weekday of day `n` after 1970-01-01 is `n % 7`.
const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

/// Parses an HTTP date into milliseconds since the Unix epoch. `None` for anything
/// else, for a date that does not exist (February 30, a wrong weekday), and for years
/// outside 1970 to 9999.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let b = value.as_bytes();
    // Each form: (weekday, day, month, year, time of day), and whether the weekday is
    // spelt out.
    let (weekday, day, month, year, time, long) = if b.len() == 29 {
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
        let spaces = b[7] == b' ' && b[11] == b' ' && b[16] == b' ';
        if &b[3..5] != b", " || !spaces || &b[25..] != b" GMT" {
            return None;
        }
        (
            &b[..3],
            &b[5..7],
            &b[8..11],
            digits(&b[12..16])?,
            &b[17..25],
            false,
        )
    } else if b.len() == 24 {
        // asctime: `Sun Nov  6 08:49:37 1994`, the day padded with a space.
        if b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
            return None;
        }
        let day = if b[8] == b' ' { &b[9..10] } else { &b[8..10] };
        (
            &b[..3],
            day,
            &b[4..7],
            digits(&b[20..24])?,
            &b[11..19],
            false,
        )
    } else {
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`, the century implied.
        // Bytes, not `str::split_once`: that links str's searcher and slicing panics.
        let comma = b.windows(2).position(|w| w == b", ")?;
        let (name, r) = (&b[..comma], &b[comma + 2..]);
        if r.len() != 22 || r[2] != b'-' || r[6] != b'-' || r[9] != b' ' || &r[18..] != b" GMT" {
            return None;
        }
        let yy = digits(&r[7..9])?;
        let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
        (name, &r[..2], &r[3..6], year, &r[10..18], true)
    };
    let month = MONTHS.chunks(3).position(|m| m == month)? as u64 + 1;
    let day = digits(day)?;
    if !(1970..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if time[2] != b':' || time[5] != b':' {
        return None;
    }
    let (h, m, s) = (
        digits(&time[..2])?,
        digits(&time[3..5])?,
        digits(&time[6..])?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    let named = WEEKDAYS[(days % 7) as usize].as_bytes();
    if weekday != if long { named } else { &named[..3] } {
        return None;
    }
    Some((((days * 24 + h) * 60 + m) * 60 + s) * 1000)
}

/// A run of ASCII digits.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 => 28 + u64::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of 1970 or later (Howard Hinnant's `days_from_civil`:
/// years counted from March, so the leap day ends a year).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_6_1994: u64 = 784_111_777_000; // 08:49:37 UTC

    #[test]
    fn the_three_forms() {
        let forms = [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ];
        for f in forms {
            assert_eq!(parse_http_date(f), Some(NOV_6_1994), "{f}");
        }
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Thu Jan 11 12:00:00 2024"),
            Some(1_704_974_400_000)
        );
    }

    #[test]
    fn two_digit_years_below_70_are_this_century() {
        assert_eq!(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        // 2069-01-01 was a Tuesday.
        assert_eq!(
            parse_http_date("Tuesday, 01-Jan-69 00:00:00 GMT"),
            parse_http_date("Tue, 01 Jan 2069 00:00:00 GMT")
        );
        assert!(parse_http_date("Tue, 01 Jan 2069 00:00:00 GMT").is_some());
    }

    #[test]
    fn leap_days_and_the_far_future() {
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(1_709_164_800_000)
        );
        assert!(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT").is_some());
        assert_eq!(parse_http_date("Wed, 29 Feb 2023 00:00:00 GMT"), None);
        assert_eq!(parse_http_date("Thu, 29 Feb 2100 00:00:00 GMT"), None);
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799_000)
        );
    }

    #[test]
    fn malformed_and_impossible_dates_are_refused() {
        for bad in [
            "",
            "soon",
            "Mon, 06 Nov 1994 08:49:37 GMT", // the wrong weekday
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nov 1994 08-49-37 GMT",
            "Sun, 06 Nov 19a4 08:49:37 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT", // before the epoch
            "Sat, 01 Jan 10000 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov  6 08:49:37 94  ",
            "Sün, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMTé",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
