//! When a schedule runs: once at a time, or on a cron expression (the `cron` crate, seconds
//! precision). Times are kept in UTC; `--at` without a zone and cron fields read local time,
//! as an admin at the console means them.

use std::str::FromStr;

use chrono::{DateTime, Local, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    Once { at: String },
    Cron { expression: String },
}

/// The one textual form of a time in the site database: UTC, milliseconds, `Z`, so that
/// comparing the strings compares the times.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `--at`: RFC 3339 (`2026-12-01T02:00:00+01:00`) or local `YYYY-MM-DD HH:MM`.
pub fn parse_at(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .map_err(|_| {
            format!("`{text}` is not a time: use RFC 3339 (2026-12-01T02:00:00+01:00) or local `YYYY-MM-DD HH:MM`")
        })?;
    // In the hour the clocks go back a local time happens twice: take the first.
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("`{text}` does not exist in local time (the clocks skip it)"))
}

/// A cron expression: `sec min hour day-of-month month day-of-week [year]`, or the classic
/// five fields (`min hour dom month dow`), which run at second 0.
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let text = text.trim();
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {text}")
    } else {
        text.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        format!("`{text}` is not a cron expression ({e}): use `sec min hour day-of-month month day-of-week`, e.g. `0 0 2 * * Tue` for 02:00 every Tuesday")
    })
}

impl Timing {
    /// The first run: a one-time schedule's own time (a time already past runs at once), or
    /// the next cron occurrence; `None` when a cron expression never fires again.
    pub fn first(&self) -> Result<Option<DateTime<Utc>>, String> {
        match self {
            Timing::Once { at } => Ok(parse_stamp(at)),
            Timing::Cron { expression } => Ok(next_cron(expression, Utc::now())?),
        }
    }

    /// The run after the one due at `after`; `None` for a one-time schedule.
    pub fn following(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
        match self {
            Timing::Once { .. } => Ok(None),
            Timing::Cron { expression } => next_cron(expression, after.max(Utc::now())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Timing::Once { at } => format!("once at {at}"),
            Timing::Cron { expression } => format!("cron `{expression}`"),
        }
    }
}

fn next_cron(expression: &str, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    let schedule = parse_cron(expression)?;
    Ok(schedule
        .after(&after.with_timezone(&Local))
        .next()
        .map(|t| t.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_rfc3339_and_local_minutes() {
        let t = parse_at("2026-12-01T02:00:00+01:00").unwrap();
        assert_eq!(stamp(t), "2026-12-01T01:00:00.000Z");
        let local = parse_at("2026-12-01 02:00").unwrap();
        assert_eq!(
            local.with_timezone(&Local).format("%H:%M").to_string(),
            "02:00"
        );
        assert!(parse_at("next tuesday").is_err());
    }

    #[test]
    fn cron_takes_five_or_six_fields() {
        assert!(parse_cron("0 2 * * Tue").is_ok());
        assert!(parse_cron("*/2 * * * * *").is_ok());
        assert!(parse_cron("every day")
            .unwrap_err()
            .contains("not a cron expression"));
        let timing = Timing::Cron {
            expression: "*/2 * * * * *".into(),
        };
        let first = timing.first().unwrap().unwrap();
        let second = timing.following(first).unwrap().unwrap();
        assert_eq!((second - first).num_seconds(), 2);
    }

    #[test]
    fn stamps_sort_as_times() {
        let a = parse_at("2026-12-01T09:00:00+00:00").unwrap();
        let b = parse_at("2026-12-01T10:00:00+00:00").unwrap();
        assert!(stamp(a) < stamp(b));
        assert_eq!(parse_stamp(&stamp(a)), Some(a));
    }
}
