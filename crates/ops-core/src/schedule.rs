//! When scheduled jobs (`[[schedule]]`) are due: a cron expression evaluated in an IANA time
//! zone, daylight-saving changes included, and the deterministic jitter every replica agrees
//! on. One home for both the config check (`opsctl config check` names a bad expression) and
//! the scheduler of `ops-server`.
//!
//! ```
//! use ops_core::schedule::CronSchedule;
//! let s = CronSchedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
//! let after = "2026-03-28T12:00:00Z".parse().unwrap();
//! // 02:00 in Berlin is 01:00 UTC in winter time…
//! assert_eq!(s.next_after(after).unwrap().to_rfc3339(), "2026-03-29T01:00:00+00:00");
//! // …and on the night clocks go forward (02:00 does not exist) the job runs at 03:00 local.
//! ```

use std::str::FromStr as _;

use chrono::{DateTime, Utc};

/// A parsed cron expression and its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
    expression: String,
}

/// The most fire times counted between two instants (a per-second job down for a week).
pub const MAX_COUNTED: u32 = 100_000;

impl CronSchedule {
    /// Parses a cron expression (5 fields: minute hour day-of-month month day-of-week, with
    /// month and weekday names, ranges, lists, steps and the `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly` shortcuts; a sixth leading field of seconds is accepted) and an
    /// IANA time zone (`UTC`, `Europe/Berlin`).
    ///
    /// # Errors
    /// What is wrong with the expression or the zone, in words (never the whole config).
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, String> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err("is empty: give five fields like \"0 2 * * *\" or a shortcut like \"@daily\"".into());
        }
        if trimmed.len() > 200 {
            return Err("is longer than 200 characters".into());
        }
        if trimmed.starts_with('@')
            && !["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(trimmed))
        {
            return Err(format!(
                "{trimmed:?} is not a shortcut cron knows: use @hourly, @daily, @weekly, @monthly or @yearly"
            ));
        }
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "has {fields} fields: give five (minute hour day-of-month month day-of-week), like \"0 2 * * *\""
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| format!("is not a valid cron expression: {e}"))?;
        let tz = chrono_tz::Tz::from_str(timezone.trim()).map_err(|_| {
            format!(
                "{:?} is not an IANA time zone (like UTC or Europe/Berlin)",
                timezone.chars().take(64).collect::<String>()
            )
        })?;
        let schedule = Self { cron, tz, expression: trimmed.to_owned() };
        // An expression that never fires (30 February) is a mistake, not a job.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!("{trimmed:?} never fires"));
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's name.
    #[must_use]
    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// The first fire time strictly after `t`.
    #[must_use]
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::SubsecRound as _;
        // Whole seconds in and out: every replica computes the same due time, whatever the
        // fraction of a second it asks at.
        let local = t.trunc_subsecs(0).with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|n| n.with_timezone(&Utc).trunc_subsecs(0))
    }

    /// The fire times in `(after, until]`: how many (at most [`MAX_COUNTED`]) and the latest.
    #[must_use]
    pub fn due_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> (u32, Option<DateTime<Utc>>) {
        let mut count = 0;
        let mut last = None;
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > until {
                break;
            }
            count += 1;
            last = Some(next);
            t = next;
            if count >= MAX_COUNTED {
                // Jump to the latest fire time without counting the rest one by one.
                let local = until.with_timezone(&self.tz);
                last = self.cron.find_previous_occurrence(&local, true).ok().map(|p| p.with_timezone(&Utc)).or(last);
                break;
            }
        }
        (count, last)
    }

    /// The shortest gap between two fire times over the next few, seconds (for a jitter that
    /// must stay below it).
    #[must_use]
    pub fn shortest_gap_secs(&self, from: DateTime<Utc>) -> i64 {
        let mut shortest = i64::MAX;
        let mut t = from;
        for _ in 0..16 {
            let Some(a) = self.next_after(t) else { break };
            let Some(b) = self.next_after(a) else { break };
            shortest = shortest.min((b - a).num_seconds());
            t = a;
        }
        shortest
    }
}

/// A delay in `[0, max_secs]` for the run of `job` due at `due`: the same on every replica
/// (a hash, not a random draw), different from one run to the next.
#[must_use]
pub fn jitter_secs(job: &str, due: DateTime<Utc>, max_secs: u64) -> u64 {
    use sha2::Digest as _;
    if max_secs == 0 {
        return 0;
    }
    let mut h = sha2::Sha256::new();
    h.update(job.as_bytes());
    h.update(due.timestamp().to_be_bytes());
    let digest = h.finalize();
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(eight) % (max_secs + 1)
}

/// One `[[schedule]]` entry as `opsctl schedule list` and `GET /api/v1/schedule` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobStatus {
    /// The entry's name.
    pub name: String,
    /// What it runs (`backup`).
    pub job: String,
    /// Its cron expression.
    pub cron: String,
    /// Its time zone.
    pub timezone: String,
    /// When it is next due (UTC, before jitter).
    pub next: Option<DateTime<Utc>>,
    /// Its newest ledger row.
    pub last: Option<crate::ports::ScheduledRun>,
    /// When it last succeeded.
    pub last_success: Option<DateTime<Utc>>,
}

/// Every entry with its next due time and, from the ledger, its last run and last success.
///
/// # Errors
/// The store's error when the ledger cannot be read.
pub async fn overview(
    entries: &[crate::config::ScheduleConfig],
    store: &dyn crate::ports::StateStore,
    now: DateTime<Utc>,
) -> crate::Result<Vec<JobStatus>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let next = CronSchedule::parse(&e.cron, &e.timezone).ok().and_then(|s| s.next_after(now));
        let q = |status: Option<&str>| crate::ports::ScheduleQuery {
            job: Some(e.name.clone()),
            status: status.map(str::to_owned),
            limit: 1,
        };
        let last = store.scheduled_runs(&q(None)).await?.into_iter().next();
        let last_success =
            store.scheduled_runs(&q(Some("success"))).await?.into_iter().next().and_then(|r| r.finished_at);
        out.push(JobStatus {
            name: e.name.clone(),
            job: e.job.as_str().to_owned(),
            cron: e.cron.trim().to_owned(),
            timezone: e.timezone.trim().to_owned(),
            next,
            last,
            last_success,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_names_and_shortcuts() {
        let s = CronSchedule::parse("0 3 * * SUN", "UTC").unwrap();
        // 2026-12-02 is a Wednesday: the next Sunday is the 6th.
        assert_eq!(s.next_after(t("2026-12-02T18:00:00Z")).unwrap(), t("2026-12-06T03:00:00Z"));
        let s = CronSchedule::parse("@daily", "UTC").unwrap();
        assert_eq!(s.next_after(t("2026-12-02T18:00:00Z")).unwrap(), t("2026-12-03T00:00:00Z"));
        let s = CronSchedule::parse("0 0,12 * * *", "UTC").unwrap();
        assert_eq!(s.next_after(t("2026-12-02T00:00:00Z")).unwrap(), t("2026-12-02T12:00:00Z"));
        let s = CronSchedule::parse("0 4 1 * *", "UTC").unwrap();
        assert_eq!(s.next_after(t("2026-12-02T00:00:00Z")).unwrap(), t("2027-01-01T04:00:00Z"));
        // Seconds as a sixth, leading field.
        let s = CronSchedule::parse("*/10 * * * * *", "UTC").unwrap();
        assert_eq!(s.next_after(t("2026-12-02T00:00:01Z")).unwrap(), t("2026-12-02T00:00:10Z"));
        // The same due time whatever the fraction of a second asked at.
        let every = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(every.next_after(t("2026-12-02T00:00:01.345Z")).unwrap(), t("2026-12-02T00:00:02Z"));
        assert_eq!(every.next_after(t("2026-12-02T00:00:01.999Z")).unwrap(), t("2026-12-02T00:00:02Z"));
    }

    #[test]
    fn bad_expressions_and_zones_say_why() {
        for (expr, needle) in [
            ("", "empty"),
            ("0 2 * *", "4 fields"),
            ("0 2 * * * * *", "7 fields"),
            ("61 2 * * *", "not a valid cron"),
            ("@sometimes", "shortcut"),
            ("0 0 30 2 *", "never fires"),
        ] {
            let e = CronSchedule::parse(expr, "UTC").unwrap_err();
            assert!(e.contains(needle), "{expr:?}: {e}");
        }
        let e = CronSchedule::parse("@daily", "Mars/Olympus").unwrap_err();
        assert!(e.contains("IANA"), "{e}");
    }

    #[test]
    fn daylight_saving_changes_neither_skip_nor_double_a_daily_job() {
        let s = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // Spring forward (2026-03-29 02:00 -> 03:00): 02:30 does not exist; the job still runs
        // that day, once, right after the gap.
        let (n, _) = s.due_between(t("2026-03-28T12:00:00Z"), t("2026-03-29T12:00:00Z"));
        assert_eq!(n, 1);
        let spring = s.next_after(t("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(spring.with_timezone(&chrono_tz::Europe::Berlin).date_naive().to_string(), "2026-03-29");
        // Fall back (2026-10-25 03:00 -> 02:00): 02:30 happens twice; the job runs once.
        let (n, _) = s.due_between(t("2026-10-24T12:00:00Z"), t("2026-10-25T12:00:00Z"));
        assert_eq!(n, 1);
        // A fixed UTC offset would be an hour off half the year.
        assert_eq!(s.next_after(t("2026-07-01T12:00:00Z")).unwrap(), t("2026-07-02T00:30:00Z"));
        assert_eq!(s.next_after(t("2026-12-01T12:00:00Z")).unwrap(), t("2026-12-02T01:30:00Z"));
    }

    #[test]
    fn counts_missed_times_and_bounds_the_count() {
        let s = CronSchedule::parse("0 * * * *", "UTC").unwrap();
        let (n, last) = s.due_between(t("2026-12-01T00:00:00Z"), t("2026-12-02T00:30:00Z"));
        assert_eq!((n, last), (24, Some(t("2026-12-02T00:00:00Z"))));
        let every_second = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let (n, last) = every_second.due_between(t("2026-11-01T00:00:00Z"), t("2026-12-02T00:00:00Z"));
        assert_eq!(n, MAX_COUNTED);
        assert_eq!(last, Some(t("2026-12-02T00:00:00Z")));
        assert_eq!(s.shortest_gap_secs(t("2026-12-01T00:00:00Z")), 3600);
    }

    #[test]
    fn jitter_is_bounded_and_the_same_everywhere() {
        let due = t("2026-12-02T02:00:00Z");
        assert_eq!(jitter_secs("backup", due, 0), 0);
        let a = jitter_secs("backup", due, 300);
        assert!(a <= 300);
        assert_eq!(a, jitter_secs("backup", due, 300));
        let spread: std::collections::BTreeSet<u64> =
            (0..50).map(|h| jitter_secs("backup", due + chrono::Duration::hours(h), 300)).collect();
        assert!(spread.len() > 10, "{spread:?}");
    }
}
