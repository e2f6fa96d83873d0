//! When to try again: exponential backoff with full jitter, capped, honouring the
//! server's `Retry-After`.

use std::time::Duration;

/// The retry policy of an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff's ceiling; each attempt doubles it.
    pub base: Duration,
    /// No single wait is longer than this (a `Retry-After` is capped too).
    pub max_delay: Duration,
    /// Attempts per batch before its events are reported as not delivered.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 for the first retry). `retry_after`
    /// is the server's hint; `jitter` is a fraction in [0, 1) from the caller's source
    /// of randomness, so the policy itself is deterministic and testable.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        // Full jitter: anywhere from 0 to the ceiling, so retrying devices spread out.
        let backoff = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(hint) => hint.min(self.max_delay).max(backoff),
            None => backoff,
        }
    }
}

/// A `Retry-After` header value in seconds (HTTP dates are not used by PiSync).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A fraction in [0, 1) from the OS's randomness (0.5 if it is unavailable).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let top = |attempt| p.delay(attempt, None, 0.999_999);
        assert!(top(1) <= Duration::from_millis(200));
        assert!(top(2) > Duration::from_millis(390) && top(2) <= Duration::from_millis(400));
        assert!(top(3) > Duration::from_millis(790));
        assert_eq!(p.delay(40, None, 0.999_999).as_secs(), 29);
        assert_eq!(p.delay(3, None, 0.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2)), 0.1),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600)), 0.1),
            Duration::from_secs(30)
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
