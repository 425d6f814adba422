//! When to try again: the configured schedule with jitter, or what the
//! receiver asked for with `Retry-After`, clamped.

use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

/// The delay before the next attempt after `attempts_made` attempts, or
/// `None` when the schedule is spent (the delivery is dead).
pub fn next_delay(
    schedule_secs: &[f64],
    attempts_made: usize,
    jitter: f64,
    retry_after: Option<Duration>,
    retry_after_max: Duration,
) -> Option<Duration> {
    let base = *schedule_secs.get(attempts_made)?;
    if let Some(asked) = retry_after {
        return Some(asked.min(retry_after_max));
    }
    let factor = 1.0 + jitter * (2.0 * unit_random() - 1.0);
    Some(Duration::from_secs_f64((base * factor).max(0.0)))
}

/// A uniform number in [0, 1].
pub(crate) fn unit_random() -> f64 {
    let mut bytes = [0u8; 4];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_with_jitter_then_dead() {
        let schedule = [0.0, 5.0, 300.0];
        let max = Duration::from_secs(3600);
        assert_eq!(
            next_delay(&schedule, 0, 0.2, None, max),
            Some(Duration::ZERO)
        );
        for _ in 0..100 {
            let d = next_delay(&schedule, 1, 0.2, None, max).expect("retry");
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        assert_eq!(next_delay(&schedule, 3, 0.2, None, max), None);
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let schedule = [0.0, 5.0];
        let max = Duration::from_secs(60);
        let asked = Some(Duration::from_secs(30));
        assert_eq!(
            next_delay(&schedule, 1, 0.2, asked, max),
            Some(Duration::from_secs(30))
        );
        let greedy = Some(Duration::from_secs(100_000));
        assert_eq!(next_delay(&schedule, 1, 0.2, greedy, max), Some(max));
        assert_eq!(next_delay(&schedule, 2, 0.2, asked, max), None);
    }

    #[test]
    fn parses_retry_after() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
