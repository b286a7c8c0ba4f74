//! Integration tests: the real `rejudge` binary against an in-test HTTP stub (fault injection),
//! real files (Parquet read back with pyarrow), real SQLite, and a real llama.cpp server and
//! model end to end.

// Test scenarios read top to bottom; splitting them would hide what they check. Counts in tests
// are small, and string building favours plainness over allocation counts. Figures are compared
// exactly where they are computed the same way on both sides.
#![allow(
    clippy::float_cmp,
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::format_push_string,
    clippy::format_collect,
    clippy::map_unwrap_or,
    clippy::redundant_closure_for_method_calls
)]

mod batch;
mod e2e;
mod eval;
mod faults;
mod hardening;
mod hub;
mod journal;
mod publish;
mod rerank;
mod scale;
mod settings;
mod slurm;
mod snapshots;
mod stub;
mod support;
mod types;
