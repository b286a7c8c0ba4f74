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

pub mod dataset;
pub mod journal;
pub mod judge;
pub mod prompt;
pub mod report;
pub mod run;
pub mod verdict;
