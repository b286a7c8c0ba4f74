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
    exits_with(&run, FAILED_ROWS);
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
    exits_with(&run, FAILED_ROWS);
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
fn a_wrong_key_stops_the_run_before_it_fans_out() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::start(|_, _| {
        Reply::Status(
            401,
            "{\"error\": {\"message\": \"Invalid credentials in Authorization header\", \"type\": \"auth\"}}".into(),
            None,
        )
    });
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let output = folder.path().join("out");
    let run = rerank(&input, &output, &stub.url, &["--concurrency", "8"]);
    let stderr = exits_with(&run, 1);
    assert_eq!(stub.requests(), 1, "the first request decides, alone");
    assert!(
        stderr.contains("HTTP 401")
            && stderr.contains("Invalid credentials in Authorization header"),
        "the server's own words: {stderr}"
    );
    assert!(
        stderr.contains("hint: the server refused the API key"),
        "{stderr}"
    );
    assert!(
        !parquet_output(&output).exists(),
        "no dataset of failed rows"
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

    // The answer after the reminder is in the journal: a rerun asks nothing and keeps the verdict.
    succeeded(&rerank(
        &one_pair(folder.path()),
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    assert_eq!(stub.requests(), 2, "no request is sent again");
    assert_eq!(only_row(&output)["outcome"], "swapped");

    let always = Stub::start(|_, _| Reply::Prose);
    let output = folder.path().join("out-prose");
    exits_with(
        &rerank(
            &one_pair(folder.path()),
            &output,
            &always.url,
            &["--format", "jsonl"],
        ),
        FAILED_ROWS,
    );
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
fn a_closed_port_stops_the_run_at_once() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(12));
    let stub = Stub::judging();
    let url = stub.url.clone();
    drop(stub);
    let output = folder.path().join("out");
    let started = Instant::now();
    let stderr = exits_with(&rerank(&input, &output, &url, &["--format", "jsonl"]), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no retries against a closed port"
    );
    assert!(stderr.contains("could not connect"), "{stderr}");
    assert!(stderr.contains("hint: nothing listens at"), "{stderr}");
    assert!(!output.join("data").join("train.jsonl").exists());
}
