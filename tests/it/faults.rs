//! HTTP faults against the in-test stub: rate limits, server errors, timeouts, garbage,
//! refused authorisation, servers without structured output, answers that do not parse.

use crate::stub::{Reply, Stub};
use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn one_pair(folder: &std::path::Path) -> std::path::PathBuf {
    let input = folder.join("one.jsonl");
    write_jsonl(
        &input,
        &[json!({"prompt": "Q?", "chosen": "bad", "rejected": "good"})],
    );
    input
}

fn only_row(output: &std::path::Path) -> Value {
    jsonl_output(output).remove(0)
}

#[test]
fn rate_limit_with_retry_after_then_success() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|n, _| {
        if n == 0 {
            Reply::Status(429, "{\"error\": \"slow down\"}".into(), Some(1))
        } else {
            Reply::Judge
        }
    });
    let output = folder.path().join("out");
    let started = Instant::now();
    succeeded(&rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(stub.requests(), 2);
    assert_eq!(only_row(&output)["outcome"], "swapped");
    assert_eq!(report(&output)["requests"]["retried"], 1);
}

#[test]
fn server_errors_until_the_attempts_run_out() {
    let folder = tempfile::tempdir().unwrap();
    let stub =
        Stub::start(|_, _| Reply::Status(500, "{\"error\": \"model overloaded\"}".into(), None));
    let output = folder.path().join("out");
    let run = rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &["--format", "jsonl", "--max-attempts", "3"],
    );
    succeeded(&run);
    assert_eq!(stub.requests(), 3);
    let row = only_row(&output);
    assert_eq!(row["outcome"], "failed");
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 500")
            && reason.contains("model overloaded")
            && reason.contains("3 attempts"),
        "{reason}"
    );
    assert_eq!(row["chosen"], "bad", "a failed row keeps its stored order");
}

#[test]
fn timeouts_are_retried_then_fail_the_row() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|_, _| Reply::Slow(Duration::from_secs(3)));
    let output = folder.path().join("out");
    let run = rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &[
            "--format",
            "jsonl",
            "--timeout",
            "0.3",
            "--max-attempts",
            "2",
        ],
    );
    succeeded(&run);
    assert_eq!(stub.requests(), 2);
    let reason = only_row(&output)["failure_reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("timed out") || reason.contains("timeout"),
        "{reason}"
    );
}

#[test]
fn malformed_bodies_are_retried() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|n, _| if n < 2 { Reply::Garbage } else { Reply::Judge });
    let output = folder.path().join("out");
    succeeded(&rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    assert_eq!(stub.requests(), 3);
    assert_eq!(only_row(&output)["outcome"], "swapped");
}

#[test]
fn unauthorised_is_not_retried() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|_, _| {
        Reply::Status(
            401,
            "{\"error\": \"Invalid credentials in Authorization header\"}".into(),
            None,
        )
    });
    let output = folder.path().join("out");
    succeeded(&rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    assert_eq!(stub.requests(), 1);
    let reason = only_row(&output)["failure_reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("HTTP 401")
            && reason.contains("Invalid credentials")
            && reason.contains("1 attempt"),
        "{reason}"
    );
}

#[test]
fn a_server_without_structured_output_gets_plain_requests() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|_, body| {
        if body.get("response_format").is_some() {
            Reply::Status(
                400,
                "{\"error\": \"unsupported parameter: response_format\"}".into(),
                None,
            )
        } else {
            Reply::Judge
        }
    });
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let output = folder.path().join("out");
    succeeded(&rerank(&input, &output, &stub.url, &["--concurrency", "1"]));
    assert_eq!(report(&output)["outcomes"]["failed"], 0);
    assert_eq!(
        stub.requests(),
        7,
        "one rejected request, then six plain ones"
    );
}

#[test]
fn an_unparseable_answer_is_asked_again_once() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|n, _| if n == 0 { Reply::Prose } else { Reply::Judge });
    let output = folder.path().join("out");
    succeeded(&rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    assert_eq!(stub.requests(), 2);
    let second = &stub.bodies()[1]["messages"];
    assert_eq!(
        second.as_array().unwrap().len(),
        4,
        "the retry shows the bad answer and a reminder"
    );
    assert_eq!(only_row(&output)["outcome"], "swapped");
    assert_eq!(report(&output)["requests"]["parse_retries"], 1);

    let always = Stub::start(|_, _| Reply::Prose);
    let output = folder.path().join("out-prose");
    succeeded(&rerank(
        &one_pair(folder.path()),
        &output,
        &always.url,
        &["--format", "jsonl"],
    ));
    assert_eq!(always.requests(), 2);
    let row = only_row(&output);
    assert_eq!(row["outcome"], "failed");
    assert!(
        row["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("unparseable judge answer")
    );
}

#[test]
fn a_server_that_goes_away_leaves_failed_rows_and_loses_nothing() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(12));
    let stub = Stub::judging();
    let url = stub.url.clone();
    drop(stub);
    let output = folder.path().join("out");
    let run = rerank(
        &input,
        &output,
        &url,
        &["--max-attempts", "2", "--format", "jsonl"],
    );
    succeeded(&run);
    let rows = jsonl_output(&output);
    assert_eq!(rows.len(), 12);
    for row in rows.iter().filter(|r| r["outcome"] != "invalid") {
        assert_eq!(row["outcome"], "failed");
        assert!(!row["failure_reason"].as_str().unwrap().is_empty());
    }
}
