//! Escalation helpers, pure functions of time: the runbooks' "a SEV-2 not resolved within
//! 2 hours becomes SEV-1" and "escalate one level if more than 10 reports inside 5 minutes".

use chrono::{DateTime, Duration, Utc};
use ops_core::Severity;
use ops_core::config::EscalationConfig;

/// The severity of a finding open since `opened_at`: one level up once it has been open longer
/// than its severity's window (`open-minutes`; severities without a window never escalate).
#[must_use]
pub fn by_age(severity: Severity, opened_at: DateTime<Utc>, now: DateTime<Utc>, cfg: &EscalationConfig) -> Severity {
    match cfg.open_minutes.get(&severity) {
        Some(&minutes) if now - opened_at > minutes_of(minutes) => severity.escalated(),
        _ => severity,
    }
}

/// The severity of a finding given the times users reported it: one level up when more than
/// `reports` fall within the last `reports-window-minutes`.
#[must_use]
pub fn by_reports(
    severity: Severity,
    reports: &[DateTime<Utc>],
    now: DateTime<Utc>,
    cfg: &EscalationConfig,
) -> Severity {
    let since = now - minutes_of(cfg.reports_window_minutes);
    let recent = reports.iter().filter(|t| **t > since && **t <= now).count();
    if recent > usize::try_from(cfg.reports).unwrap_or(usize::MAX) { severity.escalated() } else { severity }
}

/// Both rules, each applied once: a finding can go up at most two levels.
#[must_use]
pub fn escalate(
    severity: Severity,
    opened_at: DateTime<Utc>,
    reports: &[DateTime<Utc>],
    now: DateTime<Utc>,
    cfg: &EscalationConfig,
) -> Severity {
    by_reports(by_age(severity, opened_at, now, cfg), reports, now, cfg)
}

fn minutes_of(minutes: u64) -> Duration {
    Duration::minutes(i64::try_from(minutes).unwrap_or(i64::MAX / 60_000))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    #[test]
    fn a_p2_open_over_two_hours_is_a_p1() {
        let cfg = EscalationConfig::default();
        assert_eq!(by_age(Severity::P2, at(0), at(120), &cfg), Severity::P2, "exactly 2 h is not over");
        assert_eq!(by_age(Severity::P2, at(0), at(121), &cfg), Severity::P1);
        assert_eq!(by_age(Severity::P3, at(0), at(10_000), &cfg), Severity::P3, "no window for P3 by default");
        let cfg = EscalationConfig { open_minutes: BTreeMap::from([(Severity::P3, 240)]), ..cfg };
        assert_eq!(by_age(Severity::P3, at(0), at(241), &cfg), Severity::P2);
    }

    #[test]
    fn more_than_ten_reports_in_five_minutes_goes_up() {
        let cfg = EscalationConfig::default();
        let ten: Vec<_> = (0..10).map(|_| at(3)).collect();
        assert_eq!(by_reports(Severity::P3, &ten, at(5), &cfg), Severity::P3, "10 is not more than 10");
        let eleven: Vec<_> = (0..11).map(|_| at(3)).collect();
        assert_eq!(by_reports(Severity::P3, &eleven, at(5), &cfg), Severity::P2);
        assert_eq!(by_reports(Severity::P3, &eleven, at(9), &cfg), Severity::P3, "older than the window");
        assert_eq!(escalate(Severity::P2, at(0), &eleven, at(6), &cfg), Severity::P1);
        assert_eq!(escalate(Severity::P3, at(0), &eleven, at(4), &cfg), Severity::P2);
    }
}
