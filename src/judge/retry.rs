//! When to try a request again, and how long to wait: a pure classification of failures and one
//! shared backoff policy (exponential, full jitter, `Retry-After` honoured).

use std::time::Duration;

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with this HTTP status.
    Status(u16),
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke off.
    Connection,
    /// The server answered 2xx with a body that is not a chat completion.
    MalformedBody,
}

/// Whether trying again may succeed. Rate limits, server errors, timeouts and broken connections
/// pass; other client errors (bad request, unauthorised, not found) will fail the same way again.
pub fn is_transient(failure: &Failure) -> bool {
    match failure {
        Failure::Status(status) => matches!(status, 408 | 409 | 425 | 429 | 500..=599),
        Failure::Timeout | Failure::Connection | Failure::MalformedBody => true,
    }
}

/// Attempts and waits for transient failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt, doubled for each one after.
    pub base_delay: Duration,
    /// The longest wait drawn by the backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a server asking for more gets this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` failures (1-based). Full jitter
    /// (a uniform draw up to the exponential cap) spreads out many clients that failed together;
    /// a server's `Retry-After` replaces the draw.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }

    /// Whether another attempt is allowed after `attempt` failures.
    pub fn allows(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is rare from APIs and is
/// left to the backoff).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures() {
        let table = [
            (Failure::Status(429), true),
            (Failure::Status(500), true),
            (Failure::Status(503), true),
            (Failure::Status(408), true),
            (Failure::Status(400), false),
            (Failure::Status(401), false),
            (Failure::Status(403), false),
            (Failure::Status(404), false),
            (Failure::Status(422), false),
            (Failure::Timeout, true),
            (Failure::Connection, true),
            (Failure::MalformedBody, true),
        ];
        for (failure, expected) in table {
            assert_eq!(is_transient(&failure), expected, "{failure:?}");
        }
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            let cap = policy
                .base_delay
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(policy.max_delay);
            assert!(policy.delay(attempt, None) <= cap);
        }
        let draws: std::collections::BTreeSet<_> = (0..20).map(|_| policy.delay(5, None)).collect();
        assert!(draws.len() > 1, "full jitter draws different waits");
    }

    #[test]
    fn retry_after_wins_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(9_999))),
            policy.max_retry_after
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert!(!policy.allows(policy.max_attempts));
    }
}
