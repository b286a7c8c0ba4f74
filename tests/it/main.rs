//! Integration tests: the real `rejudge` binary against an in-test HTTP stub (fault injection),
//! real files (Parquet read back with pyarrow), real SQLite, and a real llama.cpp server and
//! model end to end.

mod e2e;
mod faults;
mod journal;
mod rerank;
mod stub;
mod support;
