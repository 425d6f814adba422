//! One webhook's adaptive concurrency limit: additive increase while the
//! endpoint answers quickly, multiplicative decrease when it shows strain,
//! and a pause when it asks for one with `Retry-After`.

use std::time::{Duration, Instant};

use super::attempt::{AttemptResult, Verdict};

/// How an attempt bears on the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A 2xx within the "slow" threshold.
    Fast,
    /// Timeouts, 429 and 5xx: the endpoint is overloaded.
    Strain { retry_after: Option<Duration> },
    /// Anything else (a slow 2xx, a refused connection, a 4xx) says
    /// nothing about how much concurrency the endpoint takes.
    Neutral,
}

impl Signal {
    pub fn of(result: &AttemptResult, slow: Duration) -> Self {
        let strained = result.error_kind == Some("timeout")
            || matches!(result.status_code, Some(429 | 500..=599));
        match result.verdict {
            Verdict::Succeeded if result.duration <= slow => Signal::Fast,
            Verdict::Retry if strained => Signal::Strain {
                retry_after: result.retry_after,
            },
            _ => Signal::Neutral,
        }
    }
}

/// A cut takes effect for the requests started after it; the ones already
/// in flight fail alike and must not cut again and again.
const CUT_COOLDOWN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Limit {
    value: usize,
    ceiling: usize,
    last_cut: Option<Instant>,
    paused_until: Option<Instant>,
}

impl Limit {
    /// Starts at `initial`, never above `ceiling` nor below 1.
    pub fn new(initial: usize, ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        Self {
            value: initial.clamp(1, ceiling),
            ceiling,
            last_cut: None,
            paused_until: None,
        }
    }

    pub fn value(&self) -> usize {
        self.value
    }

    /// Whether a `Retry-After` still holds new requests back.
    pub fn paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|until| until > now)
    }

    /// Takes one attempt's signal. `constrained`: the limit was what held
    /// deliveries back (requests were waiting, or all of it was in use);
    /// only then does a fast answer earn a higher one. `retry_after_max`
    /// clamps a pause.
    pub fn observe(
        &mut self,
        signal: Signal,
        constrained: bool,
        now: Instant,
        retry_after_max: Duration,
    ) {
        match signal {
            Signal::Fast if constrained => {
                self.value = (self.value + 1).min(self.ceiling);
            }
            Signal::Strain { retry_after } => {
                let cooled = self
                    .last_cut
                    .is_none_or(|at| now.duration_since(at) >= CUT_COOLDOWN);
                if cooled {
                    self.value = (self.value / 2).max(1);
                    self.last_cut = Some(now);
                }
                if let Some(wait) = retry_after {
                    let until = now + wait.min(retry_after_max);
                    self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
                }
            }
            _ => {}
        }
    }

    /// Whether this limit holds nothing worth remembering.
    pub fn is_initial(&self, initial: usize, now: Instant) -> bool {
        self.value == initial.clamp(1, self.ceiling) && !self.paused(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn grows_only_when_constrained_and_never_past_the_ceiling() {
        let now = Instant::now();
        let mut l = Limit::new(8, 10);
        l.observe(Signal::Fast, false, now, MAX);
        assert_eq!(l.value(), 8, "an idle limit does not grow");
        for _ in 0..5 {
            l.observe(Signal::Fast, true, now, MAX);
        }
        assert_eq!(l.value(), 10);
        l.observe(Signal::Neutral, true, now, MAX);
        assert_eq!(l.value(), 10);
        assert_eq!(Limit::new(8, 2).value(), 2, "the ceiling caps the start");
    }

    #[test]
    fn halves_once_per_cooldown_down_to_one() {
        let t0 = Instant::now();
        let strain = Signal::Strain { retry_after: None };
        let mut l = Limit::new(8, 128);
        l.observe(strain, true, t0, MAX);
        l.observe(strain, true, t0 + Duration::from_millis(10), MAX);
        assert_eq!(l.value(), 4, "a burst of failures cuts once");
        for i in 1..10 {
            l.observe(strain, true, t0 + CUT_COOLDOWN * i, MAX);
        }
        assert_eq!(l.value(), 1);
        assert!(!l.paused(t0));
    }

    #[test]
    fn retry_after_pauses_clamped() {
        let t0 = Instant::now();
        let mut l = Limit::new(8, 128);
        let asked = Signal::Strain {
            retry_after: Some(Duration::from_secs(30)),
        };
        l.observe(asked, false, t0, Duration::from_secs(10));
        assert!(l.paused(t0 + Duration::from_secs(9)));
        assert!(!l.paused(t0 + Duration::from_secs(10)));
        assert!(!l.is_initial(8, t0));
    }
}
