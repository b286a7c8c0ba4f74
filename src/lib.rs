//! rejudge re-ranks preference datasets (DPO, ORPO, KTO) with an LLM judge.
//!
//! Each row's two responses are rated by a judge on an UltraFeedback-style rubric; pairs the judge
//! prefers the other way round are swapped, ties are flagged, and every row is kept. The crate is
//! laid out as the data flows:
//!
//! - [`dataset`]: readers (JSON Lines, JSON, CSV, Parquet), column mapping, writers;
//! - [`prompt`]: the built-in rubric and user templates;
//! - [`judge`]: the [`judge::Judge`] trait, the OpenAI-compatible and in-process backends, retries;
//! - [`verdict`]: parsing the judge's answer and deciding each row's [`verdict::Outcome`];
//! - [`journal`]: the crash-safe store of every request, for exact resume;
//! - [`run`]: the pipeline that ties them together;
//! - [`report`]: statistics, `report.json` and the dataset card.
//!
//! The library never reads environment variables and never prints; the `rejudge` binary does.
//!
//! Re-ranking a file against an OpenAI-compatible server:
//!
//! ```no_run
//! use rejudge::dataset::{ColumnOverrides, OutputFormat};
//! use rejudge::judge::{OpenAiConfig, OpenAiJudge, RetryPolicy, Sampling};
//! use rejudge::prompt::{Order, PromptBuilder};
//! use rejudge::run::{Input, RunConfig, Silent, rerank};
//! use rejudge::verdict::DecisionPolicy;
//! use std::time::Duration;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let input = Input::open("pairs.jsonl".as_ref(), &ColumnOverrides::default())?;
//! let prompt = PromptBuilder::builtin(input.language());
//! let judge = OpenAiJudge::new(OpenAiConfig {
//!     base_url: "http://localhost:8000/v1".into(),
//!     model: "Qwen/Qwen2.5-72B-Instruct".into(),
//!     api_key: None,
//!     sampling: Sampling::default(),
//!     timeout: Duration::from_secs(120),
//!     retry: RetryPolicy::default(),
//!     structured_output: true,
//! })?;
//! let config = RunConfig {
//!     input: "pairs.jsonl".into(),
//!     output: "rejudged".into(),
//!     format: OutputFormat::Parquet,
//!     journal: "rejudged/journal.sqlite".into(),
//!     concurrency: 16,
//!     limit: None,
//!     order: Order::Random,
//!     seed: 0,
//!     policy: DecisionPolicy::default(),
//! };
//! let report = rerank(input, &prompt, &judge, &config, &Silent).await?;
//! assert_eq!(report.rows, report.outcomes.values().sum::<u64>());
//! # Ok(())
//! # }
//! ```

pub mod dataset;
pub mod journal;
pub mod judge;
pub mod prompt;
pub mod report;
pub mod run;
pub mod verdict;
