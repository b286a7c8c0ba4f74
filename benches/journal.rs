//! The journal's cost per row: 100,000 answers recorded the way a run records them (many rows in
//! flight, each waiting for its commit), then looked up again as a resumed run would.
//!
//! Run with `cargo bench --bench journal`. Prints microseconds and bytes per row.

// A benchmark reads as one scenario, top to bottom.
#![allow(clippy::too_many_lines)]

use rejudge::journal::{Entry, EntryStatus, Journal, RequestKey};
use rejudge::prompt::ChatMessage;
use rejudge::verdict::{Judgment, Rating};
use std::time::Instant;

const ROWS: u64 = 100_000;
const IN_FLIGHT: u64 = 256;

fn key(row: u64) -> RequestKey {
    let message = ChatMessage {
        role: "user".into(),
        content: format!("row {row}"),
    };
    RequestKey::new(
        &serde_json::json!({"model": "bench"}),
        "template",
        &[message],
    )
}

fn entry(row: u64) -> Entry {
    let rating = |score: f64| Rating {
        score,
        rationale:
            "The answer is correct and complete, and it follows the requested format closely."
                .into(),
        distribution: None,
    };
    let judgment = Judgment::Ratings {
        response_a: rating(4.0),
        response_b: rating(2.0),
    };
    Entry {
        key: key(row),
        run: RequestKey([7; 32]),
        row_index: row,
        status: EntryStatus::Ok,
        response: Some(serde_json::to_string(&judgment).unwrap()),
        judgment: Some(judgment),
        prompt_tokens: 1200,
        completion_tokens: 80,
        cost: 0.0,
        latency_ms: 900,
        attempts: 1,
        error: None,
    }
}

fn main() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("journal.sqlite");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let journal = Journal::open(&path).unwrap();

    let started = Instant::now();
    runtime.block_on(async {
        let journal = &journal;
        let writers = (0..IN_FLIGHT).map(|lane| async move {
            let mut row = lane;
            while row < ROWS {
                journal.record(entry(row)).await.unwrap();
                row += IN_FLIGHT;
            }
        });
        futures_util::future::join_all(writers).await;
    });
    let record = started.elapsed();

    let started = Instant::now();
    let found = runtime.block_on(async {
        let journal = &journal;
        let readers = (0..IN_FLIGHT).map(|lane| async move {
            let mut row = lane;
            let mut found = 0u64;
            while row < ROWS {
                found += u64::from(journal.lookup(key(row)).await.unwrap().is_some());
                row += IN_FLIGHT;
            }
            found
        });
        futures_util::future::join_all(readers)
            .await
            .into_iter()
            .sum::<u64>()
    });
    let lookup = started.elapsed();
    assert_eq!(found, ROWS);
    drop(journal);

    let bytes: u64 = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let per_row = |d: std::time::Duration| d.as_secs_f64() * 1e6 / ROWS as f64;
    println!("journal, {ROWS} rows, {IN_FLIGHT} in flight");
    println!(
        "  record (committed before the row counts):  {:>7.2} us/row  ({:.0} rows/s)",
        per_row(record),
        ROWS as f64 / record.as_secs_f64()
    );
    println!(
        "  lookup (resume):                            {:>7.2} us/row  ({:.0} rows/s)",
        per_row(lookup),
        ROWS as f64 / lookup.as_secs_f64()
    );
    println!(
        "  size on disk:                               {:>7.0} bytes/row ({:.1} MB)",
        bytes as f64 / ROWS as f64,
        bytes as f64 / 1e6
    );
}
