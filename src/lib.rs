//! rejudge re-ranks preference datasets (DPO, ORPO, KTO) with an LLM judge.
//!
//! Each row's two responses are rated by a judge on an UltraFeedback-style rubric; pairs the judge
//! prefers the other way round are swapped, ties are flagged, and every row is kept. The crate is
//! laid out as the data flows:
//!
//! - [`dataset`]: readers (JSON Lines, JSON, CSV, Parquet) into Arrow batches, column mapping,
//!   the output batch and its writers;
//! - [`prompt`]: the built-in rubric and user templates;
//! - [`judge`]: the [`judge::Judge`] trait (one attempt), the OpenAI-compatible and in-process
//!   backends, and the one retry layer around them;
//! - [`verdict`]: parsing the judge's answer, deciding each row's [`verdict::Verdict`], and the
//!   output columns it defines;
//! - [`journal`]: the crash-safe store of every request, for exact resume;
//! - [`run`]: the pipeline that ties them together;
//! - [`report`]: statistics, `report.json` and the dataset card;
//! - [`hub`]: the Hugging Face Hub: a dataset's split into the standard cache, the in-process
//!   judge's model file, and an output folder pushed as one commit;
//! - [`settings`]: flags, environment and config file resolved into one struct;
//! - [`secrets`]: keeping API keys and credentials out of everything stored or shown.
//!
//! The library never reads environment variables and never prints; the `rejudge` binary does.
//!
//! Re-ranking a file against an OpenAI-compatible server:
//!
//! ```no_run
//! use rejudge::judge::{OpenAiConfig, OpenAiJudge};
//! use rejudge::prompt::{Mode, PromptBuilder};
//! use rejudge::run::{Input, Judges, Silent, Stop, rerank};
//! use rejudge::settings::{Settings, SettingsLayer};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::resolve(SettingsLayer {
//!     input: Some("pairs.jsonl".into()),
//!     concurrency: Some(16),
//!     ..SettingsLayer::default()
//! })?;
//! let input = Input::open(settings.input.as_ref(), &settings.column_overrides())?;
//! let prompt = PromptBuilder::builtin(input.language(), Mode::Rating);
//! let judge = OpenAiJudge::new(OpenAiConfig {
//!     base_url: "http://localhost:8000/v1".into(),
//!     model: "Qwen/Qwen2.5-72B-Instruct".into(),
//!     api_key: None,
//!     sampling: settings.sampling(),
//!     timeout: settings.timeout(),
//!     structured_output: true,
//!     max_response_bytes: settings.max_response_bytes,
//! })?;
//! let run = settings.run_config();
//! let judges = Judges::single(&judge);
//! let report = rerank(input, &prompt, &judges, &run, &Silent, &Stop::default()).await?;
//! assert_eq!(report.rows, report.outcomes.values().sum::<u64>());
//! # Ok(())
//! # }
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]
// Tests compare values worked out by hand, exactly.
#![cfg_attr(test, allow(clippy::float_cmp))]

pub mod dataset;
pub mod hub;
pub mod journal;
pub mod judge;
pub mod prompt;
pub mod report;
pub mod run;
pub mod secrets;
pub mod settings;
pub mod verdict;
