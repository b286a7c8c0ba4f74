//! Batch files and the Batch API: export, a replay through an OpenAI-compatible server, import,
//! and the driver against a local server that implements OpenAI's Files and Batches endpoints.

use crate::stub::Stub;
use crate::support::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn script(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Replays batch input files against `url` with scripts/batch-replay.py.
pub fn replay(url: &str, inputs: &[PathBuf], output: &Path) {
    replay_with(url, inputs, output, 4);
}

/// The same, with `concurrency` requests in flight.
pub fn replay_with(url: &str, inputs: &[PathBuf], output: &Path, concurrency: usize) {
    let status = Command::new("python3")
        .arg(script("scripts/batch-replay.py"))
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--base-url", url, "--output"])
        .arg(output)
        .args(inputs)
        .status()
        .unwrap();
    assert!(status.success(), "the replay failed");
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn exported_requests_replayed_and_imported_equal_an_online_run() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(24));
    let stub = Stub::judging();
    let online = folder.path().join("online");
    succeeded(&rerank(&input, &online, &stub.url, &["--format", "jsonl"]));

    let batched = folder.path().join("batched");
    let export = folder.path().join("requests.jsonl");
    let flags = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = ["--model", "stub-judge", "--format", "jsonl", "--output"]
            .map(String::from)
            .to_vec();
        all.push(batched.display().to_string());
        all.extend(extra.iter().map(|s| (*s).to_owned()));
        all
    };
    let run = |extra: &[&str]| {
        rejudge()
            .arg("rerank")
            .arg(&input)
            .arg("--quiet")
            .args(flags(extra))
            .output()
            .unwrap()
    };
    let exported = run(&["--batch-export", export.to_str().unwrap()]);
    succeeded(&exported);
    let requests = lines(&export);
    assert_eq!(requests.len(), 18, "18 rows can be judged, one order each");
    assert_eq!(requests[0]["url"], "/v1/chat/completions");
    assert_eq!(requests[0]["method"], "POST");
    assert!(requests[0]["body"]["response_format"].is_object());
    assert_eq!(stub.requests(), 18, "only the online run asked the stub");

    let answers = folder.path().join("answers.jsonl");
    replay(&stub.url, std::slice::from_ref(&export), &answers);
    let imported = run(&["--batch-import", answers.to_str().unwrap()]);
    let stderr = exits_with(&imported, 0);
    assert!(stderr.contains("imported 18 answers"), "{stderr}");
    assert_eq!(
        jsonl_output(&batched),
        jsonl_output(&online),
        "the same output as the online run"
    );

    // Nothing is pending any more: a second export is empty, and an online rerun asks nothing.
    let again = run(&[
        "--batch-export",
        folder.path().join("again.jsonl").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to export"));
    let before = stub.requests();
    succeeded(&rerank(&input, &batched, &stub.url, &["--format", "jsonl"]));
    assert_eq!(stub.requests(), before);
}

#[test]
fn rows_a_batch_did_not_answer_stay_resumable() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let export = folder.path().join("requests.jsonl");
    let base = ["--model", "stub-judge", "--format", "jsonl"];
    let run = |extra: &[&str]| {
        Rerank::new(&input)
            .output(&output)
            .args(&base)
            .args(extra)
            .run()
    };
    succeeded(&run(&["--batch-export", export.to_str().unwrap()]));
    let answers = folder.path().join("answers.jsonl");
    replay(&stub.url, std::slice::from_ref(&export), &answers);
    // Keep half the answers, and spoil one into a failed request.
    let mut kept: Vec<Value> = lines(&answers).into_iter().take(3).collect();
    kept[2]["response"] = Value::Null;
    kept[2]["error"] =
        serde_json::json!({"code": "server_error", "message": "the batch worker crashed"});
    write_jsonl(&answers, &kept);
    let partial = run(&["--batch-import", answers.to_str().unwrap()]);
    exits_with(&partial, FAILED_ROWS);
    let rows = jsonl_output(&output);
    let failed: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 4);
    let deferred = |r: &&&Value| {
        r["failure_reason"]
            .as_str()
            .unwrap()
            .contains("not answered by a batch yet")
    };
    assert!(failed.iter().all(|r| deferred(&r)));
    // The batch's own failure stays in the journal, and nothing was sent.
    let journal = rusqlite::Connection::open(output.join("journal.sqlite")).unwrap();
    let sql = "SELECT COUNT(*) FROM requests WHERE error LIKE '%the batch worker crashed%'";
    let errors: i64 = journal.query_row(sql, [], |row| row.get(0)).unwrap();
    assert_eq!(errors, 1);
    assert_eq!(report(&output)["requests"]["sent"], 0);
    // The next export holds exactly the four requests still missing.
    let next = folder.path().join("next.jsonl");
    succeeded(&run(&["--batch-export", next.to_str().unwrap()]));
    assert_eq!(lines(&next).len(), 4);
}

/// The local Files and Batches server, answering from `upstream`.
struct FakeOpenAi {
    child: Child,
    url: String,
}

impl FakeOpenAi {
    fn start(upstream: &str, stage_seconds: &str) -> Self {
        let mut child = Command::new("python3")
            .arg(script("tests/batch/fake_openai.py"))
            .args(["--upstream", upstream, "--stage-seconds", stage_seconds])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        FakeOpenAi {
            child,
            url: line.trim().to_owned(),
        }
    }

    fn state(&self) -> Value {
        let root = self.url.trim_end_matches("/v1");
        let output = Command::new("python3")
            .args(["-c", "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"])
            .arg(format!("{root}/_fake/state"))
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_batch_api_driver_submits_once_and_resumes_after_a_kill() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(16));
    let stub = Stub::judging();
    let online = folder.path().join("online");
    succeeded(&rerank(&input, &online, &stub.url, &["--format", "jsonl"]));
    // Each stage of the batch takes a second, so the first run can be killed while it polls.
    let api = FakeOpenAi::start(&stub.url, "1.0");
    let output = folder.path().join("out");
    let command = || {
        let mut command = rejudge();
        command
            .arg("rerank")
            .arg(&input)
            .args([
                "--quiet",
                "--model",
                "stub-judge",
                "--format",
                "jsonl",
                "--batch",
                "openai",
            ])
            .args(["--batch-poll", "0.2", "--base-url", &api.url, "--output"])
            .arg(&output);
        command
    };
    let mut first = command().stderr(Stdio::null()).spawn().unwrap();
    while api.state()["batches"].as_array().is_none_or(Vec::is_empty) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let finished = command().output().unwrap();
    let stderr = exits_with(&finished, 0);
    assert!(
        stderr.contains("0 batches submitted, 1 resumed"),
        "{stderr}"
    );
    assert_eq!(
        api.state()["batches"].as_array().unwrap().len(),
        1,
        "never submitted twice"
    );
    assert_eq!(jsonl_output(&output), jsonl_output(&online));
}
