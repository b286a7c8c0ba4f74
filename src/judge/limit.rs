//! Pacing the judge: requests and tokens per minute, and a concurrency limit that adapts to the
//! server (halved on 429/503, grown back one step per window of successes), in front of every
//! attempt the retry layer makes.
//!
//! The rate limits are token buckets with a burst of one second's worth. A bucket may go into
//! debt: a request that costs more tokens than one second's burst (a 2,000-token prompt under
//! `--tpm 60000`) waits until the bucket is full, takes what it needs, and the requests after it
//! wait until the debt is paid, so the average rate is exact and nothing is refused. (governor's
//! GCRA, the usual crate for this, refuses a cell larger than its burst, which a token budget
//! meets all the time.)

use super::{JudgeRequest, Usage};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
// The paced clock: tests run it paused, and the buckets must see the same time as the sleeps.
use tokio::time::Instant;

/// How a run paces its requests to one judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Requests per minute at most.
    pub requests_per_minute: Option<f64>,
    /// Tokens per minute at most: prompt tokens (estimated before, corrected after) plus the
    /// completion allowance.
    pub tokens_per_minute: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Whether the in-flight limit adapts to 429 and 503 answers.
    pub adaptive: bool,
    /// The completion tokens each request may use (`--max-tokens`), counted before the answer.
    pub completion_allowance: u64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            requests_per_minute: None,
            tokens_per_minute: None,
            concurrency: 16,
            adaptive: true,
            completion_allowance: 512,
        }
    }
}

/// A token bucket that may go into debt.
#[derive(Debug)]
struct Bucket {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn per_minute(rate: f64) -> Self {
        let per_second = rate / 60.0;
        // One second's worth, and never less than one whole request or token.
        let burst = per_second.max(1.0);
        Bucket {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes `amount`, waiting while the bucket holds less than `amount` (or than its burst, for
    /// amounts beyond it).
    async fn take(&self, amount: f64) -> Duration {
        let mut waited = Duration::ZERO;
        loop {
            let wait = {
                let mut state = self.state.lock().expect("never poisoned; this is a bug");
                let now = Instant::now();
                let (tokens, last) = *state;
                let level = (tokens + now.duration_since(last).as_secs_f64() * self.per_second)
                    .min(self.burst);
                let needed = amount.min(self.burst);
                if level >= needed {
                    *state = (level - amount, now);
                    return waited;
                }
                *state = (level, now);
                Duration::from_secs_f64(((needed - level) / self.per_second).min(3_600.0))
            };
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    /// Corrects an estimate: a positive `delta` takes more, a negative one gives back.
    fn adjust(&self, delta: f64) {
        let mut state = self.state.lock().expect("never poisoned; this is a bug");
        state.0 = (state.0 - delta).min(self.burst);
    }
}

/// The in-flight limit: additive increase, multiplicative decrease.
#[derive(Debug)]
struct Adaptive {
    ceiling: usize,
    adapts: bool,
    state: Mutex<AdaptiveState>,
    freed: Notify,
}

#[derive(Debug)]
struct AdaptiveState {
    limit: usize,
    in_flight: usize,
    successes: usize,
    last_cut: Option<Instant>,
}

impl Adaptive {
    fn new(ceiling: usize, adaptive: bool) -> Self {
        let ceiling = ceiling.max(1);
        Adaptive {
            ceiling,
            adapts: adaptive,
            state: Mutex::new(AdaptiveState {
                limit: ceiling,
                in_flight: 0,
                successes: 0,
                last_cut: None,
            }),
            freed: Notify::new(),
        }
    }

    async fn enter(&self) {
        loop {
            let notified = self.freed.notified();
            {
                let mut state = self.state.lock().expect("never poisoned; this is a bug");
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    return;
                }
            }
            notified.await;
        }
    }

    fn leave(&self, signal: Signal) {
        let mut state = self.state.lock().expect("never poisoned; this is a bug");
        state.in_flight = state.in_flight.saturating_sub(1);
        if self.adapts {
            match signal {
                Signal::Overloaded => {
                    // Answers to requests sent before the cut arrive together; one cut a
                    // second is enough to react without collapsing to one.
                    let recent = state
                        .last_cut
                        .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
                    if !recent {
                        state.limit = (state.limit / 2).max(1);
                        state.successes = 0;
                        state.last_cut = Some(Instant::now());
                    }
                }
                Signal::Success => {
                    state.successes += 1;
                    if state.successes >= state.limit && state.limit < self.ceiling {
                        state.limit += 1;
                        state.successes = 0;
                    }
                }
                Signal::Other => {}
            }
        }
        drop(state);
        self.freed.notify_waiters();
    }

    fn limits(&self) -> (usize, usize) {
        let state = self.state.lock().expect("never poisoned; this is a bug");
        (state.limit, state.in_flight)
    }
}

/// How an attempt ended, as the pacing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An answer.
    Success,
    /// 429 or 503: the server asks for fewer requests.
    Overloaded,
    /// Anything else.
    Other,
}

/// The pace of a run's requests to one judge, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pace {
    /// The current in-flight limit (below `--concurrency` after 429s).
    pub limit: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Whether requests are waiting for a rate limit or a server's pause right now.
    pub throttled: bool,
    /// Seconds spent waiting for rate limits, over all requests.
    pub waited_seconds: f64,
    /// US dollars spent so far, when the judge's prices are known.
    pub spent: Option<f64>,
}

/// An attempt admitted by the throttle; hand it back with [`Throttle::settle`].
#[must_use]
#[derive(Debug)]
pub struct Admission {
    estimated_tokens: f64,
}

/// Requests per minute, tokens per minute and the adaptive in-flight limit of one judge.
#[derive(Debug)]
pub struct Throttle {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    concurrency: Adaptive,
    completion_allowance: u64,
    paused_until: Mutex<Option<Instant>>,
    waiting: AtomicU64,
    waited_micros: AtomicU64,
}

impl Throttle {
    /// A throttle for `pacing`.
    pub fn new(pacing: &Pacing) -> Self {
        Throttle {
            requests: pacing.requests_per_minute.map(Bucket::per_minute),
            tokens: pacing.tokens_per_minute.map(Bucket::per_minute),
            concurrency: Adaptive::new(pacing.concurrency, pacing.adaptive),
            completion_allowance: pacing.completion_allowance,
            paused_until: Mutex::new(None),
            waiting: AtomicU64::new(0),
            waited_micros: AtomicU64::new(0),
        }
    }

    /// Waits until `request` may be sent: no pause asked by the server, a free in-flight slot,
    /// and room in both rate limits.
    pub async fn admit(&self, request: &JudgeRequest) -> Admission {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let pause = *self
            .paused_until
            .lock()
            .expect("never poisoned; this is a bug");
        if let Some(until) = pause.filter(|until| *until > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        self.concurrency.enter().await;
        if let Some(bucket) = &self.requests {
            bucket.take(1.0).await;
        }
        let estimated_tokens = estimated_prompt_tokens(request) + self.completion_allowance as f64;
        if let Some(bucket) = &self.tokens {
            bucket.take(estimated_tokens).await;
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.waited_micros.fetch_add(waited, Ordering::Relaxed);
        Admission { estimated_tokens }
    }

    /// Hands back an admitted attempt: frees its slot, corrects the token estimate by the
    /// usage the server reported, adapts the in-flight limit, and honours a pause the server
    /// asked for (`Retry-After` on a 429, or `x-ratelimit-*` headers saying nothing is left).
    #[allow(clippy::needless_pass_by_value)] // taking it by value hands it back exactly once
    pub fn settle(
        &self,
        admission: Admission,
        signal: Signal,
        usage: Option<Usage>,
        pause: Option<Duration>,
    ) {
        if let (Some(bucket), Some(usage)) = (&self.tokens, usage) {
            let used = usage.prompt_tokens.saturating_add(usage.completion_tokens) as f64;
            bucket.adjust(used - admission.estimated_tokens);
        }
        if let Some(pause) = pause.filter(|p| !p.is_zero()) {
            let until = Instant::now() + pause.min(Duration::from_secs(300));
            let mut paused = self
                .paused_until
                .lock()
                .expect("never poisoned; this is a bug");
            if paused.is_none_or(|current| current < until) {
                *paused = Some(until);
            }
        }
        self.concurrency.leave(signal);
    }

    /// How the requests are paced right now.
    pub fn pace(&self) -> Pace {
        let (limit, in_flight) = self.concurrency.limits();
        Pace {
            limit,
            in_flight,
            throttled: self.waiting.load(Ordering::Relaxed) > 0,
            waited_seconds: self.waited_micros.load(Ordering::Relaxed) as f64 / 1e6,
            spent: None,
        }
    }
}

/// A generous estimate of a request's prompt tokens before it is sent: a UTF-8 byte for a third
/// of a token (about right for English, high for most text, not low even for Chinese), and a
/// few tokens per message for the chat template.
pub fn estimated_prompt_tokens(request: &JudgeRequest) -> f64 {
    request
        .messages
        .iter()
        .map(|message| message.content.len() as f64 / 3.0 + 8.0)
        .sum()
}

/// Parses the `x-ratelimit-reset-*` duration format: `"1s"`, `"6m0s"`, `"20ms"`, `"1.5s"`, or a
/// bare number of seconds. `None` for anything else.
pub fn parse_reset(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let mut total = 0.0f64;
    let mut number = String::new();
    let mut rest = value;
    while let Some(character) = rest.chars().next() {
        if character.is_ascii_digit() || character == '.' {
            number.push(character);
            rest = &rest[1..];
            continue;
        }
        let (unit, length) = if rest.starts_with("ms") {
            (0.001, 2)
        } else {
            match character {
                'h' => (3_600.0, 1),
                'm' => (60.0, 1),
                's' => (1.0, 1),
                _ => return None,
            }
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
        rest = &rest[length..];
    }
    if !number.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::ChatMessage;

    #[test]
    fn reset_durations() {
        assert_eq!(parse_reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_reset("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_reset("2"), Some(Duration::from_secs(2)));
        for bad in ["soon", "1x", "-1s", "", "1e400"] {
            assert_eq!(parse_reset(bad), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_bucket_paces_to_its_rate() {
        let bucket = Bucket::per_minute(120.0);
        let started = tokio::time::Instant::now();
        for _ in 0..10 {
            bucket.take(1.0).await;
        }
        // Two a second with a burst of two: the first two at once, then one every half second.
        let elapsed = started.elapsed().as_secs_f64();
        assert!((3.9..4.1).contains(&elapsed), "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_bucket_goes_into_debt_for_large_requests() {
        // 600 tokens a minute: 10 a second, a burst of 10. A 50-token request waits for a full
        // bucket (none: it starts full), takes 50, and the next waits until the debt of 40 and
        // its own 10 are paid: 5 seconds.
        let bucket = Bucket::per_minute(600.0);
        let started = tokio::time::Instant::now();
        bucket.take(50.0).await;
        bucket.take(10.0).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert!((4.9..5.1).contains(&elapsed), "{elapsed}");
        // Usage lower than the estimate gives tokens back.
        bucket.adjust(-1_000.0);
        let before = tokio::time::Instant::now();
        bucket.take(10.0).await;
        assert!(before.elapsed() < Duration::from_millis(1));
    }

    #[test]
    fn the_limit_halves_on_overload_and_grows_back() {
        let adaptive = Adaptive::new(16, true);
        adaptive.state.lock().unwrap().in_flight = 3;
        adaptive.leave(Signal::Overloaded);
        assert_eq!(adaptive.limits().0, 8);
        adaptive.leave(Signal::Overloaded);
        assert_eq!(adaptive.limits().0, 8, "one cut per second");
        adaptive.state.lock().unwrap().in_flight = 8;
        for _ in 0..8 {
            adaptive.leave(Signal::Success);
        }
        assert_eq!(adaptive.limits().0, 9, "a window of successes adds one");
        let fixed = Adaptive::new(4, false);
        fixed.leave(Signal::Overloaded);
        assert_eq!(fixed.limits().0, 4);
    }

    #[test]
    fn estimates_are_generous() {
        let request = JudgeRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "a".repeat(300),
            }],
        };
        assert!((estimated_prompt_tokens(&request) - 108.0).abs() < 1e-9);
    }
}
