//! Progress events: the library reports, the binary draws (or ignores).

use serde::Serialize;

/// Something that happened during a long operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A phase started (`dump`, `verify-upload`, `manifest`, `restore`…).
    Phase {
        /// Its name.
        name: String,
    },
    /// Bytes moved so far in the current phase.
    Bytes {
        /// Uncompressed bytes read (dump) or bytes fed (restore).
        raw: u64,
        /// Compressed bytes written.
        compressed: u64,
        /// Expected raw total, when it can be estimated.
        expected: Option<u64>,
    },
    /// A note for the log.
    Note {
        /// Text.
        message: String,
    },
}

/// Receives progress events. Implementations must be cheap: they are called on the hot path.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: ProgressEvent) {}
}

/// How long one phase of an operation took.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseTime {
    /// The phase (`prepare`, `dump`, `verify-upload`, `manifest`…).
    pub name: String,
    /// Seconds from its start to the start of the next one (or the end).
    pub seconds: f64,
}

/// Passes every event on and times the phases: the report then says where the time went.
pub(crate) struct PhaseClock<'a> {
    inner: &'a dyn Progress,
    started: std::sync::Mutex<Vec<(String, std::time::Instant)>>,
}

impl<'a> PhaseClock<'a> {
    /// A clock whose first phase, `first`, starts now.
    pub(crate) fn new(inner: &'a dyn Progress, first: &str) -> Self {
        Self { inner, started: std::sync::Mutex::new(vec![(first.to_owned(), std::time::Instant::now())]) }
    }

    /// Each phase with its duration, the last one ending now.
    pub(crate) fn times(&self) -> Vec<PhaseTime> {
        let now = std::time::Instant::now();
        let started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        started
            .iter()
            .enumerate()
            .map(|(i, (name, at))| {
                let end = started.get(i + 1).map_or(now, |(_, next)| *next);
                PhaseTime { name: name.clone(), seconds: end.duration_since(*at).as_secs_f64() }
            })
            .collect()
    }
}

impl Progress for PhaseClock<'_> {
    fn event(&self, event: ProgressEvent) {
        if let ProgressEvent::Phase { name } = &event {
            let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            started.push((name.clone(), std::time::Instant::now()));
        }
        self.inner.event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_timed_in_order() {
        let clock = PhaseClock::new(&NoProgress, "prepare");
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.event(ProgressEvent::Phase { name: "dump".to_owned() });
        clock.event(ProgressEvent::Note { message: "x".to_owned() });
        let times = clock.times();
        let names: Vec<&str> = times.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["prepare", "dump"]);
        assert!(times[0].seconds >= 0.02, "{times:?}");
    }
}
