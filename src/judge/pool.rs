//! Several OpenAI-compatible endpoints serving one model, used as one judge: each attempt goes to
//! the least-loaded healthy endpoint (by weight, within its own concurrency); an endpoint that
//! refuses connections, or answers a streak of 5xx, is taken out with a growing backoff and
//! probed again when it ends; an attempt that cannot connect moves to another endpoint at once.
//!
//! The pool is one judge to the rest of rejudge: its fingerprint is its model and sampling, so
//! the journal's keys do not depend on which endpoint answered.

use super::error::JudgeError;
use super::{Judge, JudgeRequest, OpenAiJudge, Reply};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// 5xx answers in a row that take an endpoint out.
const STREAK: u32 = 3;
/// The first time out; doubled each time the endpoint fails its probe.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest time out.
const LONGEST_BACKOFF: Duration = Duration::from_secs(60);

/// One endpoint of a pool.
pub struct Endpoint {
    judge: OpenAiJudge,
    address: String,
    weight: f64,
    concurrency: usize,
    in_flight: AtomicUsize,
    health: Mutex<Health>,
    requests: AtomicU64,
    failures: AtomicU64,
    taken_out: AtomicU64,
    latency_micros: AtomicU64,
}

#[derive(Debug, Default)]
struct Health {
    failing: u32,
    out_until: Option<Instant>,
    backoff: Option<Duration>,
}

impl Endpoint {
    /// An endpoint: its judge, its address as shown (no credentials), its weight and its own
    /// limit of requests in flight.
    pub fn new(judge: OpenAiJudge, address: String, weight: f64, concurrency: usize) -> Self {
        Endpoint {
            judge,
            address,
            weight: weight.max(f64::MIN_POSITIVE),
            concurrency: concurrency.max(1),
            in_flight: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            taken_out: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
        }
    }

    fn available(&self, now: Instant) -> bool {
        let health = self.health.lock().expect("never poisoned; this is a bug");
        health.out_until.is_none_or(|until| until <= now)
    }

    fn load(&self) -> f64 {
        (self.in_flight.load(Ordering::Relaxed) + 1) as f64 / self.weight
    }

    /// Takes the endpoint out for its backoff, doubled from the last time out.
    fn take_out(&self) {
        let mut health = self.health.lock().expect("never poisoned; this is a bug");
        let backoff = health
            .backoff
            .map_or(FIRST_BACKOFF, |last| (last * 2).min(LONGEST_BACKOFF));
        health.backoff = Some(backoff);
        health.out_until = Some(Instant::now() + backoff);
        health.failing = 0;
        self.taken_out.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, outcome: &Result<Reply, JudgeError>, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
        match outcome {
            Ok(_) => {
                let mut health = self.health.lock().expect("never poisoned; this is a bug");
                *health = Health::default();
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if unreachable(error) {
                    self.take_out();
                } else if matches!(
                    error,
                    JudgeError::Status {
                        status: 500..=599,
                        ..
                    }
                ) {
                    let streak = {
                        let mut health = self.health.lock().expect("never poisoned; this is a bug");
                        health.failing += 1;
                        health.failing
                    };
                    if streak >= STREAK {
                        self.take_out();
                    }
                }
            }
        }
    }

    fn figures(&self) -> EndpointFigures {
        let requests = self.requests.load(Ordering::Relaxed);
        let latency = self.latency_micros.load(Ordering::Relaxed) as f64 / 1e3;
        EndpointFigures {
            address: self.address.clone(),
            weight: self.weight,
            requests,
            failures: self.failures.load(Ordering::Relaxed),
            taken_out: self.taken_out.load(Ordering::Relaxed),
            mean_latency_ms: (requests > 0).then(|| latency / requests as f64),
        }
    }
}

/// Whether an error says the endpoint cannot be reached at all: try another one at once.
fn unreachable(error: &JudgeError) -> bool {
    matches!(
        error,
        JudgeError::Connect { .. } | JudgeError::Timeout { .. } | JudgeError::Transport { .. }
    )
}

/// What one endpoint of a pool did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EndpointFigures {
    /// The address, without credentials.
    pub address: String,
    /// Its weight.
    pub weight: f64,
    /// Attempts sent to it.
    pub requests: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Times it was taken out of the pool.
    pub taken_out: u64,
    /// Mean time per attempt, in milliseconds.
    pub mean_latency_ms: Option<f64>,
}

/// A pool of endpoints as one judge.
pub struct PoolJudge {
    endpoints: Vec<Endpoint>,
    freed: Notify,
}

impl PoolJudge {
    /// A pool of `endpoints`; they must serve the same model (the first one's name is the
    /// pool's).
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        assert!(
            !endpoints.is_empty(),
            "a pool has an endpoint; this is a bug"
        );
        PoolJudge {
            endpoints,
            freed: Notify::new(),
        }
    }

    /// What each endpoint did so far.
    pub fn figures(&self) -> Vec<EndpointFigures> {
        self.endpoints.iter().map(Endpoint::figures).collect()
    }

    /// The least-loaded endpoint that is in the pool, has room and was not tried yet; when
    /// every endpoint is out, the one coming back soonest; `None` when all were tried.
    fn pick(&self, tried: &[usize]) -> Option<Pick> {
        let now = Instant::now();
        let untried = || (0..self.endpoints.len()).filter(|i| !tried.contains(i));
        let available: Vec<usize> = untried()
            .filter(|&i| self.endpoints[i].available(now))
            .collect();
        if available.is_empty() {
            let soonest = untried().min_by_key(|&i| {
                let health = self.endpoints[i]
                    .health
                    .lock()
                    .expect("never poisoned; this is a bug");
                health.out_until
            })?;
            return Some(Pick::Use(soonest));
        }
        let roomy = available.iter().copied().filter(|&i| {
            let endpoint = &self.endpoints[i];
            endpoint.in_flight.load(Ordering::Relaxed) < endpoint.concurrency
        });
        match roomy.min_by(|&a, &b| {
            self.endpoints[a]
                .load()
                .total_cmp(&self.endpoints[b].load())
        }) {
            Some(index) => Some(Pick::Use(index)),
            None => Some(Pick::Wait),
        }
    }
}

enum Pick {
    Use(usize),
    Wait,
}

impl Judge for PoolJudge {
    fn model(&self) -> &str {
        self.endpoints[0].judge.model()
    }

    fn fingerprint(&self) -> serde_json::Value {
        self.endpoints[0].judge.fingerprint()
    }

    async fn attempt(&self, request: &JudgeRequest) -> Result<Reply, JudgeError> {
        let mut tried = Vec::new();
        let mut last = None;
        loop {
            let index = match self.pick(&tried) {
                Some(Pick::Use(index)) => index,
                Some(Pick::Wait) => {
                    let freed = self.freed.notified();
                    // An endpoint may have freed up between the pick and here.
                    tokio::select! {
                        () = freed => {}
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                    continue;
                }
                None => return Err(last.expect("a pool tried an endpoint; this is a bug")),
            };
            let endpoint = &self.endpoints[index];
            endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = endpoint.judge.attempt(request).await;
            endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.freed.notify_waiters();
            endpoint.record(&result, started.elapsed());
            match result {
                Err(error) if unreachable(&error) => {
                    tried.push(index);
                    last = Some(error);
                }
                other => return other,
            }
        }
    }

    fn endpoints(&self) -> Vec<EndpointFigures> {
        self.figures()
    }
}
