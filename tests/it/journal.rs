//! Crash safety and resume: `kill -9` at several points, exact resume, no successful request
//! sent twice, re-deciding without calls, and new keys when the rubric or model changes.

use crate::stub::{Reply, Stub};
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROWS: usize = 120;
/// Rows the judge is asked about (every fourth row is invalid).
const JUDGED: usize = ROWS / 4 * 3;

fn rows_requested(stub: &Stub) -> BTreeSet<usize> {
    stub.bodies()
        .iter()
        .filter_map(|body| {
            let user = body["messages"][1]["content"].as_str()?;
            let start = user.find("Question ")? + "Question ".len();
            user[start..].split('?').next()?.parse().ok()
        })
        .collect()
}

fn rows_done(journal: &Path) -> BTreeSet<usize> {
    let connection = rusqlite::Connection::open(journal).unwrap();
    let mut statement = connection
        .prepare("SELECT row_index FROM requests WHERE status = 'ok'")
        .unwrap();
    statement
        .query_map([], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as usize)
        .collect()
}

fn slow_stub() -> Stub {
    Stub::start(|_, _| Reply::Slow(Duration::from_millis(15)))
}

/// Starts a run and kills it with SIGKILL once the stub has seen `requests` requests.
fn run_and_kill(input: &Path, output: &Path, stub: &Stub, requests: usize) {
    let mut child = rejudge()
        .arg("rerank")
        .arg(input)
        .args([
            "--base-url",
            &stub.url,
            "--model",
            "stub-judge",
            "--concurrency",
            "4",
            "--format",
            "jsonl",
            "--quiet",
            "--output",
        ])
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stub.requests() < requests && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn kill_9_at_any_point_then_resume_gives_the_uninterrupted_output() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(ROWS));

    let reference = folder.path().join("reference");
    let stub = Stub::judging();
    succeeded(&rerank(
        &input,
        &reference,
        &stub.url,
        &["--format", "jsonl"],
    ));
    let expected = jsonl_output(&reference);

    let output = folder.path().join("out");
    let journal = output.join("journal.sqlite");
    // Early, in the middle, and with every request answered (the output is being written).
    for stop_after in [5, JUDGED / 2, JUDGED] {
        let before = if journal.exists() {
            rows_done(&journal)
        } else {
            BTreeSet::new()
        };
        let stub = slow_stub();
        run_and_kill(
            &input,
            &output,
            &stub,
            (stop_after - before.len().min(stop_after)).max(1),
        );
        let requested = rows_requested(&stub);
        let sent_again: Vec<&usize> = requested.intersection(&before).collect();
        assert!(
            sent_again.is_empty(),
            "rows with a committed answer were asked again: {sent_again:?}"
        );
        if stop_after < JUDGED {
            assert!(
                rows_done(&journal).len() < JUDGED,
                "the run was stopped part-way"
            );
        }
    }

    let before = rows_done(&journal);
    let stub = Stub::judging();
    let run = rerank(&input, &output, &stub.url, &["--format", "jsonl"]);
    succeeded(&run);
    let requested = rows_requested(&stub);
    assert!(
        requested.is_disjoint(&before),
        "no committed answer is paid for twice"
    );
    assert_eq!(
        requested.len() + before.len(),
        JUDGED,
        "exactly the missing rows are sent"
    );
    assert_eq!(
        jsonl_output(&output),
        expected,
        "the resumed output equals an uninterrupted run's"
    );
    let report = report(&output);
    assert_eq!(
        report["requests"]["from_journal"].as_u64().unwrap() as usize,
        before.len()
    );
    if !before.is_empty() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&format!("{} of {ROWS} rows already done", before.len())),
            "{stderr}"
        );
    }
}

#[test]
fn changing_only_the_decision_rebuilds_the_output_with_no_calls() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(ROWS));
    let output = folder.path().join("out");
    let first = Stub::judging();
    succeeded(&rerank(&input, &output, &first.url, &["--format", "jsonl"]));
    assert_eq!(first.requests(), JUDGED);
    let strict = jsonl_output(&output);

    let second = Stub::judging();
    let run = rerank(
        &input,
        &output,
        &second.url,
        &["--format", "jsonl", "--tie-margin", "4"],
    );
    succeeded(&run);
    assert_eq!(
        second.requests(),
        0,
        "a decision setting needs no new judge calls"
    );
    let lenient = jsonl_output(&output);
    assert_ne!(strict, lenient);
    let ties = |rows: &[Value]| rows.iter().filter(|r| r["outcome"] == "tie").count();
    assert_eq!((ties(&strict), ties(&lenient)), (ROWS / 4, JUDGED));
    assert!(String::from_utf8_lossy(&run.stdout).contains("0 sent"));

    let parquet = folder.path().join("out-parquet");
    let third = Stub::judging();
    let journal = output.join("journal.sqlite");
    succeeded(&rerank(
        &input,
        &parquet,
        &third.url,
        &["--journal", journal.to_str().unwrap()],
    ));
    assert_eq!(
        third.requests(),
        0,
        "another output format reuses the journal too"
    );
}

#[test]
fn changing_the_rubric_or_the_model_asks_every_question_again() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let output = folder.path().join("out");
    let stub = Stub::judging();
    succeeded(&rerank(&input, &output, &stub.url, &["--format", "jsonl"]));
    assert_eq!(stub.requests(), 30);

    let template = folder.path().join("strict.j2");
    std::fs::write(&template, "Be strict.\n{{ prompt }}\n<response_a_{{ key }}>{{ response_a }}</response_a_{{ key }}>\n<response_b_{{ key }}>{{ response_b }}</response_b_{{ key }}>").unwrap();
    let rubric = Stub::judging();
    succeeded(&rerank(
        &input,
        &output,
        &rubric.url,
        &[
            "--format",
            "jsonl",
            "--template",
            template.to_str().unwrap(),
        ],
    ));
    assert_eq!(rubric.requests(), 30, "a new rubric makes new keys");

    let model = Stub::judging();
    let run = rejudge()
        .arg("rerank")
        .arg(&input)
        .args([
            "--base-url",
            &model.url,
            "--model",
            "another-judge",
            "--quiet",
            "--format",
            "jsonl",
            "--output",
        ])
        .arg(&output)
        .output()
        .unwrap();
    succeeded(&run);
    assert_eq!(model.requests(), 30, "a new model makes new keys");

    let again = Stub::judging();
    succeeded(&rerank(&input, &output, &again.url, &["--format", "jsonl"]));
    assert_eq!(
        again.requests(),
        0,
        "the first settings' answers are still there"
    );
}

#[test]
fn failed_requests_are_recorded_and_tried_again() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let output = folder.path().join("out");
    let down = Stub::start(|_, _| Reply::Status(503, "{\"error\": \"warming up\"}".into(), None));
    exits_with(
        &rerank(
            &input,
            &output,
            &down.url,
            &["--format", "jsonl", "--max-attempts", "1"],
        ),
        FAILED_ROWS,
    );
    assert_eq!(report(&output)["outcomes"]["failed"], 6);
    let connection = rusqlite::Connection::open(output.join("journal.sqlite")).unwrap();
    let failed: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM requests WHERE status = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 6);
    let up = Stub::judging();
    succeeded(&rerank(&input, &output, &up.url, &["--format", "jsonl"]));
    assert_eq!(up.requests(), 6);
    assert_eq!(report(&output)["outcomes"]["failed"], 0);
}
