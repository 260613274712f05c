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

use chrono::{DateTime, Duration, Utc};

/// A parsed cron expression and its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
    expression: String,
}

/// The most fire times counted between two instants (a per-second job down for a week).
pub const MAX_COUNTED: u32 = 100_000;
/// The largest change of a zone's offset at once (daylight saving, a zone moving), hours.
const MAX_SHIFT_HOURS: i64 = 3;
/// The most wall-clock candidates one search looks at.
const MAX_CANDIDATES: usize = 100_000;

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

    /// The first fire time strictly after `t`, in whole seconds.
    ///
    /// The expression matches wall-clock times in the zone. A wall-clock time that happens
    /// twice (clocks going back) fires twice for an interval or wildcard expression
    /// (`*/15 * * * *`: every quarter hour of both passes) and once, at its first pass, for a
    /// fixed time (`30 2 * * *`); one that never happens (clocks going forward) fires at the
    /// end of the gap for a fixed time and not at all for an interval.
    #[must_use]
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::SubsecRound as _;
        let t = t.trunc_subsecs(0);
        // Wall-clock candidates in order; near an offset change, from early enough to catch
        // the second pass of a repeated hour whose wall-clock time is before `t`'s.
        let mut naive = self.local(t) - self.slack(t);
        let mut best: Option<DateTime<Utc>> = None;
        for _ in 0..MAX_CANDIDATES {
            let candidate = self.cron.find_next_occurrence(&naive.and_utc(), false).ok()?.naive_utc();
            if let Some(b) = best
                && candidate > self.local(b) + self.slack(b)
            {
                break;
            }
            for instant in self.instants(candidate) {
                if instant > t && best.is_none_or(|b| instant < b) {
                    best = Some(instant);
                }
            }
            naive = candidate;
        }
        best
    }

    fn local(&self, t: DateTime<Utc>) -> chrono::NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    /// How far wall-clock order may differ from time order around `t`: nothing unless the
    /// zone's offset changes within [`MAX_SHIFT_HOURS`] of it.
    fn slack(&self, t: DateTime<Utc>) -> Duration {
        use chrono::{Offset as _, TimeZone as _};
        let shift = Duration::hours(MAX_SHIFT_HOURS);
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let here = offset(t);
        if offset(t - shift) == here && offset(t + shift) == here { Duration::zero() } else { shift }
    }

    /// The latest fire time at or before `t`, in whole seconds.
    #[must_use]
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::SubsecRound as _;
        let t = t.trunc_subsecs(0);
        let mut naive = self.local(t) + self.slack(t);
        let mut inclusive = true;
        let mut best: Option<DateTime<Utc>> = None;
        for _ in 0..MAX_CANDIDATES {
            let candidate = self.cron.find_previous_occurrence(&naive.and_utc(), inclusive).ok()?.naive_utc();
            inclusive = false;
            if let Some(b) = best
                && candidate < self.local(b) - self.slack(b)
            {
                break;
            }
            for instant in self.instants(candidate) {
                if instant <= t && best.is_none_or(|b| instant > b) {
                    best = Some(instant);
                }
            }
            naive = candidate;
        }
        best
    }

    /// The instants a matching wall-clock time stands for in the zone (see [`Self::next_after`]).
    fn instants(&self, naive: chrono::NaiveDateTime) -> Vec<DateTime<Utc>> {
        use chrono::TimeZone as _;
        let fixed = self.cron.determine_job_type() == croner::JobType::FixedTime;
        match self.tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            chrono::LocalResult::Ambiguous(first, second) => {
                if fixed {
                    vec![first.with_timezone(&Utc)]
                } else {
                    vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
                }
            }
            chrono::LocalResult::None if fixed => {
                // The first wall-clock minute after the gap.
                let mut after = naive;
                for _ in 0..(MAX_SHIFT_HOURS * 60) {
                    after += Duration::minutes(1);
                    if let Some(t) = self.tz.from_local_datetime(&after).earliest() {
                        // 02:30 on the night 02:00 becomes 03:00: 03:00 (whole minutes, as
                        // gaps start and end on them).
                        let t = t.with_timezone(&Utc);
                        return vec![t - Duration::seconds(i64::from(chrono::Timelike::second(&t)))];
                    }
                }
                Vec::new()
            }
            chrono::LocalResult::None => Vec::new(),
        }
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
                last = self.latest_at_or_before(until).or(last);
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ScheduledJob))]
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
    use chrono::Timelike as _;

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
        // Clocks going back: an interval job runs through both passes of the repeated hour,
        // every quarter hour, never earlier than asked.
        let quarter = CronSchedule::parse("*/15 * * * *", "Europe/Berlin").unwrap();
        let (n, _) = quarter.due_between(t("2026-10-24T23:00:00Z"), t("2026-10-25T02:00:00Z"));
        assert_eq!(n, 12, "three hours of quarter hours");
        let mut at = t("2026-10-24T23:50:00Z");
        for _ in 0..12 {
            let next = quarter.next_after(at).unwrap();
            assert_eq!(
                next - at,
                chrono::Duration::minutes(if at.minute().is_multiple_of(15) { 15 } else { 10 }),
                "{at}"
            );
            at = next;
        }
        // A fixed time asked for during the second pass is tomorrow's, not one before.
        let second_pass = t("2026-10-25T01:15:00Z"); // 02:15 CET, after 02:15 CEST
        let next = s.next_after(second_pass).unwrap();
        assert!(next > second_pass);
        assert_eq!(next, t("2026-10-26T01:30:00Z"));
        assert_eq!(s.latest_at_or_before(second_pass), Some(t("2026-10-25T00:30:00Z")));
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
