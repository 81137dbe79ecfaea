//! UTC time buckets. Timestamps are microseconds since the Unix epoch (the
//! unit of the `ts` column); days are days since the epoch (Arrow `Date32`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::CoreError;

/// Microseconds in one hour.
pub const HOUR_MICROS: i64 = 3_600_000_000;
/// Microseconds in one day.
pub const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// The start of the UTC hour that contains `micros`.
pub fn hour_floor_micros(micros: i64) -> i64 {
    micros.div_euclid(HOUR_MICROS) * HOUR_MICROS
}

/// The UTC day (days since 1970-01-01) that contains `micros`.
pub fn day_of_micros(micros: i64) -> i32 {
    // The quotient of an i64 microsecond value by a day fits in i32 for every
    // date chrono can represent.
    i32::try_from(micros.div_euclid(DAY_MICROS)).unwrap_or(i32::MAX)
}

/// Days since 1970-01-01 of a calendar date.
pub fn date_to_days(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");
    i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX)
}

/// The calendar date of a day number (days since 1970-01-01).
pub fn days_to_date(days: i32) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");
    epoch + chrono::Duration::days(i64::from(days))
}

/// Parses a strict `YYYY-MM-DD` date; impossible dates such as 2024-04-31
/// or 2025-02-29 are errors.
pub fn parse_date(text: &str) -> Result<NaiveDate, CoreError> {
    let trimmed = text.trim();
    if trimmed.len() != 10 {
        return Err(CoreError::InvalidDate { text: text.to_owned() });
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map_err(|_| CoreError::InvalidDate { text: text.to_owned() })
}

/// Parses a timestamp into microseconds since the epoch, UTC.
///
/// Accepted: RFC 3339 with a zone (`2024-05-01T13:00:00Z`,
/// `2024-05-01T15:00:00+02:00`), and zone-less `YYYY-MM-DD HH:MM[:SS]` or
/// `YYYY-MM-DDTHH:MM[:SS]`, which are taken as UTC. Impossible dates and
/// times are errors.
pub fn parse_timestamp_micros(text: &str) -> Result<i64, CoreError> {
    let trimmed = text.trim();
    let invalid = || CoreError::InvalidTimestamp { text: text.to_owned() };
    if let Ok(with_zone) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(with_zone.with_timezone(&Utc).timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(naive.and_utc().timestamp_micros());
        }
    }
    Err(invalid())
}

/// Parses a span: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` or
/// `w` (`500ms`, `30s`, `90d`). Zero is allowed; the caller decides.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{text}' is not a span: give a whole number and ms, s, m, h, d or w (30s, 5m, 24h, 90d)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        "w" => Some(604_800_000),
        _ => None,
    };
    millis.and_then(|unit| number.checked_mul(unit)).map(std::time::Duration::from_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(parse_duration("90d"), Ok(std::time::Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(std::time::Duration::ZERO));
        for bad in ["", "5", "s", "-1s", "3y", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let micros = parse_timestamp_micros("2024-03-05T13:47:12Z").unwrap();
        let hour = hour_floor_micros(micros);
        assert_eq!(hour, parse_timestamp_micros("2024-03-05 13:00:00").unwrap());
        assert_eq!(days_to_date(day_of_micros(micros)), NaiveDate::from_ymd_opt(2024, 3, 5).unwrap());
        assert_eq!(hour_floor_micros(-1), -HOUR_MICROS);
        assert_eq!(day_of_micros(-1), -1);
    }

    #[test]
    fn offsets_become_utc() {
        assert_eq!(
            parse_timestamp_micros("2024-03-05T15:00:00+02:00").unwrap(),
            parse_timestamp_micros("2024-03-05T13:00:00Z").unwrap()
        );
    }

    #[test]
    fn impossible_dates_are_errors() {
        for text in ["2024-04-31", "2025-02-29", "2024-13-01", "24-01-01", "2024-1-1", ""] {
            assert!(parse_date(text).is_err(), "{text}");
        }
        assert!(parse_date("2024-02-29").is_ok());
        for text in ["2024-04-31T00:00:00Z", "2025-02-29 10:00:00", "2024-01-01T25:00:00Z", "yesterday", ""] {
            assert!(parse_timestamp_micros(text).is_err(), "{text}");
        }
    }
}
