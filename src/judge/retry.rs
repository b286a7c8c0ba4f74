//! The one retry layer: any [`Judge`] wrapped in [`Retrying`] gets the same attempts, backoff
//! with full jitter, and `Retry-After` handling. Backends make exactly one attempt each call.

use super::error::{Class, JudgeError, classify};
use super::limit::{Signal, Throttle};
use super::{Judge, JudgeRequest, Reply};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
    /// a server's `Retry-After` replaces the draw, up to [`max_retry_after`](Self::max_retry_after).
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

/// Parses a `Retry-After` value: seconds (an integer or a decimal) or an HTTP date. Absurd
/// values are clamped, never a panic: the policy caps the wait anyway.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return None;
        }
        return Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A request that failed for good: after its retries, or at once when retrying cannot help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} (after {attempts} attempt{})", super::error::describe(error), if *attempts == 1 { "" } else { "s" })]
pub struct Failure {
    /// The last attempt's error.
    pub error: JudgeError,
    /// Attempts made.
    pub attempts: u32,
}

impl Failure {
    /// What the failure means for the run.
    pub fn class(&self) -> Class {
        classify(&self.error)
    }
}

/// Any judge, with retries, and with every attempt paced by a [`Throttle`] when it has one.
pub struct Retrying<J> {
    judge: J,
    policy: RetryPolicy,
    retries: AtomicU64,
    throttle: Option<Arc<Throttle>>,
}

impl<J: Judge> Retrying<J> {
    /// Wraps `judge`.
    pub fn new(judge: J, policy: RetryPolicy) -> Self {
        Retrying {
            judge,
            policy,
            retries: AtomicU64::new(0),
            throttle: None,
        }
    }

    /// Paces every attempt through `throttle`.
    #[must_use]
    pub fn with_throttle(mut self, throttle: Arc<Throttle>) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The throttle in front of the attempts, if any.
    pub fn throttle(&self) -> Option<&Throttle> {
        self.throttle.as_deref()
    }

    /// The wrapped judge.
    pub fn judge(&self) -> &J {
        &self.judge
    }

    /// Attempts beyond the first, over every request so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Gets a reply, trying again after transient failures as the policy allows.
    pub async fn ask(&self, request: &JudgeRequest) -> Result<Reply, Failure> {
        self.ask_with(request, false).await
    }

    /// Like [`ask`](Self::ask) for the first request of a run, which decides whether the judge
    /// is there at all: a refused connection is final at once (nothing listens at the address)
    /// instead of costing every retry.
    pub async fn ask_first(&self, request: &JudgeRequest) -> Result<Reply, Failure> {
        self.ask_with(request, true).await
    }

    async fn ask_with(&self, request: &JudgeRequest, first: bool) -> Result<Reply, Failure> {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.paced_attempt(request).await {
                Ok(mut reply) => {
                    reply.attempts = attempts;
                    reply.latency = started.elapsed();
                    return Ok(reply);
                }
                Err(error) => error,
            };
            let retry = classify(&error) == Class::Transient && !(first && error.is_refused());
            if !retry || !self.policy.allows(attempts) {
                return Err(Failure { error, attempts });
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.policy.delay(attempts, error.retry_after())).await;
        }
    }

    /// One attempt, admitted by the throttle and handed back to it with what happened.
    async fn paced_attempt(&self, request: &JudgeRequest) -> Result<Reply, JudgeError> {
        let Some(throttle) = &self.throttle else {
            return self.judge.attempt(request).await;
        };
        let admission = throttle.admit(request).await;
        let result = self.judge.attempt(request).await;
        let (signal, usage, pause) = match &result {
            Ok(reply) => (Signal::Success, Some(reply.usage), reply.pause),
            Err(error) => {
                let overloaded = matches!(
                    error,
                    JudgeError::Status {
                        status: 429 | 503,
                        ..
                    }
                );
                let signal = if overloaded {
                    Signal::Overloaded
                } else {
                    Signal::Other
                };
                (signal, None, error.retry_after().filter(|_| overloaded))
            }
        };
        throttle.settle(admission, signal, usage, pause);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retry_after_in_seconds_and_dates_is_clamped() {
        let policy = RetryPolicy::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let parse = |value| parse_retry_after(value, now);
        assert_eq!(parse(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse("Wed, 21 Oct 2015 07:28:10 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse("Wed, 21 Oct 2015 07:27:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past"
        );
        assert_eq!(parse("1e20"), Some(Duration::MAX));
        for bad in ["-1", "NaN", "inf", "soon", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(policy.delay(1, parse("1e20")), policy.max_retry_after);
        assert!(!policy.allows(policy.max_attempts));
    }
}
