//! The source of "now" for `meta.created` and `meta.lastModified`, passed in so that tests
//! can pin time; nothing else in the workspace reads the system clock directly.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

/// RFC 3339 in UTC with millisecond precision, as SCIM `dateTime` values are shown.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let millis = t.nanosecond() / 1_000_000 * 1_000_000;
    let t = t.replace_nanosecond(millis).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_utc_with_millis() {
        let t = datetime!(2026-11-28 10:20:30.123456789 +02:00);
        assert_eq!(format_timestamp(t), "2026-11-28T08:20:30.123Z");
    }
}
