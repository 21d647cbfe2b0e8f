//! The source of "now" for `meta.created` and `meta.lastModified`, passed in so that tests
//! can pin time; nothing else in the workspace reads the system clock directly.

use time::OffsetDateTime;
use time::macros::format_description;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock, in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned reading of the system clock
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// RFC 3339 in UTC with exactly three fraction digits, as SCIM `dateTime` values are shown.
/// The fixed width makes the text sort in time order, which storage relies on.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Any RFC 3339 time rewritten as [`format_timestamp`] writes it, so that it compares with
/// stored times as text; `None` when it is not RFC 3339.
pub fn normalize_timestamp(text: &str) -> Option<String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(format_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_utc_with_three_fraction_digits() {
        let t = datetime!(2026-11-28 10:20:30.123456789 +02:00);
        assert_eq!(format_timestamp(t), "2026-11-28T08:20:30.123Z");
        assert_eq!(
            normalize_timestamp("2026-11-28T10:20:30+02:00").as_deref(),
            Some("2026-11-28T08:20:30.000Z")
        );
        assert_eq!(normalize_timestamp("yesterday"), None);
        assert_eq!(
            format_timestamp(datetime!(2026-11-28 10:20:30.37 UTC)),
            "2026-11-28T10:20:30.370Z"
        );
        assert_eq!(
            format_timestamp(datetime!(2026-11-28 10:20:30 UTC)),
            "2026-11-28T10:20:30.000Z"
        );
    }
}
