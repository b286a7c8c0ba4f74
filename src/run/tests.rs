//! The pipeline with a fake judge and no HTTP: how many requests are in flight, the order rows
//! come out in, and what a cancelled run leaves behind.

use super::*;
use crate::judge::{JudgeError, JudgeRequest, Reply, Usage};
use crate::prompt::Mode;
use serde_json::json;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// Prefers Response A; waits `delay(row)` first, where `row` is read from the prompt
/// ("Question N?").
struct FakeJudge {
    delay: fn(u64) -> Duration,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    attempts: AtomicUsize,
    /// Answers every attempt with this HTTP status instead of a verdict.
    status: Option<u16>,
}

impl FakeJudge {
    fn new(delay: fn(u64) -> Duration) -> Self {
        FakeJudge {
            delay,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
            status: None,
        }
    }
}

fn row_of(request: &JudgeRequest) -> u64 {
    let text = &request.messages.last().expect("a user message").content;
    let after = text.split("Question ").nth(1).unwrap_or("0");
    after
        .split('?')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Judge for FakeJudge {
    #[allow(clippy::unnecessary_literal_bound)] // The trait's signature.
    fn model(&self) -> &str {
        "fake"
    }

    fn fingerprint(&self) -> serde_json::Value {
        json!({"backend": "fake"})
    }

    async fn attempt(&self, request: &JudgeRequest) -> Result<Reply, JudgeError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep((self.delay)(row_of(request))).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(status) = self.status {
            return Err(JudgeError::Status {
                status,
                url: "http://judge.invalid/v1/chat/completions".into(),
                request_id: None,
                body: "no such route".into(),
                retry_after: None,
            });
        }
        let text = r#"{"response_a": {"rationale": "first", "score": 5}, "response_b": {"rationale": "second", "score": 1}}"#;
        Ok(Reply {
            text: text.into(),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 2,
            },
            probabilities: None,
            structured: false,
            pause: None,
            attempts: 1,
            latency: Duration::ZERO,
        })
    }
}

fn setup(rows: usize, concurrency: usize) -> (tempfile::TempDir, RunConfig) {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    let text: String = (0..rows)
        .map(|i| format!("{}\n", json!({"id": i, "prompt": format!("Question {i}?"), "chosen": "yes", "rejected": "no"})))
        .collect();
    std::fs::write(&input, text).unwrap();
    let output = folder.path().join("out");
    let config = RunConfig {
        input: input.display().to_string(),
        journal: output.join("journal.sqlite"),
        output,
        format: OutputFormat::Jsonl,
        concurrency,
        limit: None,
        order: Order::ChosenFirst,
        seed: 0,
        policy: DecisionPolicy::default(),
        retry: RetryPolicy::default(),
        settings: None,
        scoring: crate::judge::Scoring::Score,
        calibration: None,
        pacing: crate::judge::Pacing {
            concurrency,
            ..crate::judge::Pacing::default()
        },
        prices: None,
        max_cost: None,
        shard: None,
    };
    (folder, config)
}

async fn run(judge: &FakeJudge, config: &RunConfig) -> Result<Report, RunError> {
    let input = Input::open(config.input.as_ref(), &ColumnOverrides::default()).unwrap();
    let prompt = PromptBuilder::builtin(Language::En, Mode::Rating);
    rerank(
        input,
        &prompt,
        &Judges::single(judge),
        config,
        &Silent,
        &Stop::default(),
    )
    .await
}

fn ids(config: &RunConfig) -> Vec<u64> {
    let text = std::fs::read_to_string(config.format.data_path(&config.output)).unwrap();
    text.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_never_exceed_the_concurrency() {
    let (_folder, config) = setup(40, 3);
    let judge = FakeJudge::new(|_| Duration::from_millis(15));
    let report = run(&judge, &config).await.unwrap();
    assert_eq!(report.rows, 40);
    assert_eq!(judge.most_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_come_out_in_input_order_when_later_rows_finish_first() {
    let (_folder, config) = setup(30, 8);
    let judge = FakeJudge::new(|row| Duration::from_millis(60u64.saturating_sub(row * 2)));
    let report = run(&judge, &config).await.unwrap();
    assert_eq!(report.outcomes["kept"], 30);
    assert_eq!(ids(&config), (0..30).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_leaves_no_data_file_and_the_next_asks_only_the_rest() {
    let (_folder, config) = setup(60, 4);
    let judge = FakeJudge::new(|_| Duration::from_millis(20));
    let cancelled = tokio::time::timeout(Duration::from_millis(150), run(&judge, &config)).await;
    assert!(cancelled.is_err(), "the run was still going");
    let data = config.output.join("data");
    let files: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert!(
        files.is_empty(),
        "no data file and no temporary file: {files:?}"
    );

    let first = judge.attempts.load(Ordering::SeqCst);
    assert!(first > 0 && first < 60, "{first}");
    let again = FakeJudge::new(|_| Duration::from_millis(1));
    let report = run(&again, &config).await.unwrap();
    let committed = usize::try_from(report.requests.from_journal).unwrap();
    assert_eq!(again.attempts.load(Ordering::SeqCst) + committed, 60);
    assert!(
        committed > 0 && committed <= first,
        "{committed} of {first}"
    );
    assert_eq!(ids(&config), (0..60).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_failure_of_the_first_request_is_the_only_request() {
    let (_folder, config) = setup(40, 8);
    let mut judge = FakeJudge::new(|_| Duration::from_millis(10));
    judge.status = Some(404);
    let error = run(&judge, &config).await.unwrap_err();
    assert!(matches!(error, RunError::Setup { .. }), "{error}");
    // The rows that waited behind the first request stop with its error; none sends its own.
    assert_eq!(judge.attempts.load(Ordering::SeqCst), 1);
}
