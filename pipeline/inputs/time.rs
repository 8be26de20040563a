//! The three time formats of the inputs, all turned into UTC milliseconds since the epoch.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta};

/// An RFC 3339 instant with its zone (`2025-03-02T07:14:09.318Z`, `...+02:00`). A time without
/// a zone is refused: guessing its zone could move an endpoint across the inactivity line.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.timestamp_millis())
        .map_err(|error| format!("{text:?} is not an RFC 3339 timestamp with a zone ({error})"))
}

/// LDAP Generalized Time as AD writes it: `20261204150705.0Z`, or with a `+HHMM` offset.
pub fn parse_generalized(text: &str) -> Result<i64, String> {
    let fail = || format!("{text:?} is not LDAP Generalized Time (YYYYMMDDHHMMSS.0Z)");
    let bytes = text.as_bytes();
    if bytes.len() < 15 || !bytes[..14].iter().all(u8::is_ascii_digit) {
        return Err(fail());
    }

    let naive = NaiveDateTime::parse_from_str(&text[..14], "%Y%m%d%H%M%S").map_err(|_| fail())?;
    let mut rest = &text[14..];

    // A fraction of a second may follow; AD always writes `.0`.
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(['.', ',']) {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().map_err(|_| fail())?;
        rest = &fraction[digits..];
    }

    let offset_seconds = match rest {
        "Z" => 0,
        _ if rest.len() == 5 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let hours: i64 = rest[1..3].parse().map_err(|_| fail())?;
            let minutes: i64 = rest[3..5].parse().map_err(|_| fail())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(fail()),
    };

    Ok(naive.and_utc().timestamp_millis() + millis - offset_seconds * 1000)
}

/// A Windows FILETIME (100 ns ticks since 1601-01-01 UTC) as AD stores `lastLogonTimestamp`.
/// Zero means never, so it gives `None`.
pub fn parse_filetime(text: &str) -> Result<Option<i64>, String> {
    let ticks: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a FILETIME (a count of 100 ns ticks)"))?;
    if ticks <= 0 || ticks == i64::MAX {
        return Ok(None);
    }

    let epoch_1601 = NaiveDate::from_ymd_opt(1601, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|instant| instant.and_utc().timestamp_millis())
        .unwrap_or_default();
    let since_1601 = TimeDelta::microseconds(ticks / 10).num_milliseconds();
    Ok(Some(epoch_1601 + since_1601))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn rfc3339_needs_a_zone() {
        assert_eq!(
            parse_rfc3339("2025-03-02T07:14:09.318Z"),
            Ok(1_740_899_649_318)
        );
        assert_eq!(
            parse_rfc3339("2025-03-02T09:14:09.318+02:00"),
            Ok(1_740_899_649_318)
        );
        assert_eq!(parse_rfc3339("2025-03-02T07:14:09Z"), Ok(1_740_899_649_000));
        let error = parse_rfc3339("2025-03-02T07:14:09").unwrap_err();
        assert!(error.contains("with a zone"), "{error}");
    }

    #[test]
    fn generalized_time_forms() {
        assert_eq!(
            parse_generalized("20261204150705.0Z"),
            Ok(ms("2026-12-04T15:07:05Z"))
        );
        assert_eq!(
            parse_generalized("20261204150705Z"),
            Ok(ms("2026-12-04T15:07:05Z"))
        );
        assert_eq!(
            parse_generalized("20261204170705.0+0200"),
            Ok(ms("2026-12-04T15:07:05Z"))
        );
        assert_eq!(
            parse_generalized("20261204150705.25Z"),
            Ok(ms("2026-12-04T15:07:05.250Z"))
        );
        assert!(parse_generalized("2026-12-04").is_err());
        assert!(parse_generalized("20261304150705.0Z").is_err());
        assert!(parse_generalized("20261204150705.0").is_err());
    }

    #[test]
    fn filetime_zero_is_never() {
        // 2026-12-01T00:00:00Z in FILETIME ticks.
        assert_eq!(
            parse_filetime("134405568000000000"),
            Ok(Some(ms("2026-12-01T00:00:00Z")))
        );
        assert_eq!(parse_filetime("0"), Ok(None));
        assert_eq!(parse_filetime("9223372036854775807"), Ok(None));
        assert!(parse_filetime("yesterday").is_err());
    }
}
