//! End to end with a real model: llama.cpp's own server (`llama-server`) serving the
//! gemma-3-270m GGUF as an OpenAI-compatible judge, and the same model in-process.
//!
//! `scripts/test.sh` fetches the model and builds the server first; their paths can also be given
//! with `REJUDGE_TEST_MODEL` and `REJUDGE_TEST_LLAMA_SERVER`.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pairwise protocol decided by the verdict token's probabilities, one token an answer.
const ONE_TOKEN_PAIRWISE: [&str; 6] = [
    "--mode",
    "pairwise",
    "--scoring",
    "logprobs",
    "--max-tokens",
    "1",
];

/// The model runs one test at a time: two cores cannot serve two.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const SLICE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/dpo_en_demo_40.json"
);

fn cache() -> PathBuf {
    let home = std::env::var("HOME").expect("HOME is set");
    std::env::var("REJUDGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&home).join(".cache/rejudge"))
}

fn model() -> PathBuf {
    let path = std::env::var("REJUDGE_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache().join("models/gemma-3-270m-q4_k_m.gguf"));
    assert!(
        path.is_file(),
        "{} is missing\nhint: run scripts/test.sh, which fetches it",
        path.display()
    );
    path
}

fn server_binary() -> PathBuf {
    let path = std::env::var("REJUDGE_TEST_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache().join("llama.cpp-11434.0.0-noamx/bin/llama-server"));
    assert!(
        path.is_file(),
        "{} is missing\nhint: run scripts/test.sh, which builds it",
        path.display()
    );
    path
}

/// A llama-server on a free loopback port, stopped on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&["--parallel", "2"])
    }

    /// One slot and no prompt cache: every request is computed from an empty context, so the
    /// same request gets the same logits whatever came before it.
    fn start_deterministic() -> Server {
        Server::start_with(&["--parallel", "1", "--no-cache-prompt", "--cache-ram", "0"])
    }

    fn start_with(slots: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(server_binary())
            .arg("-m")
            .arg(model())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(slots)
            .args(["--ctx-size", "8192", "--threads", "2", "--no-webui"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-server starts");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let health = format!(
            "127.0.0.1:{}",
            self.url.split(':').nth(2).unwrap().trim_end_matches("/v1")
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(&health) {
                use std::io::{Read, Write};
                let _ = stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("llama-server did not become healthy within 120 s");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn scored_rows(rows: &[Value]) -> Vec<&Value> {
    rows.iter()
        .filter(|r| matches!(r["outcome"].as_str(), Some("kept" | "swapped" | "tie")))
        .collect()
}

fn check_rows(rows: &[Value], expected: usize) {
    assert_eq!(rows.len(), expected);
    for row in rows {
        match row["outcome"].as_str().unwrap() {
            "kept" | "swapped" | "tie" => {
                for column in ["chosen_score", "rejected_score"] {
                    let score = row[column].as_f64().unwrap();
                    assert!((1.0..=5.0).contains(&score), "{column} {score}");
                }
            }
            "failed" => assert!(!row["failure_reason"].as_str().unwrap().is_empty()),
            other => panic!("unexpected outcome {other}"),
        }
    }
}

#[test]
fn llama_server_judges_a_real_slice_into_parquet_that_datasets_loads() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start();
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().join("out");
    let run = rejudge()
        .args([
            "rerank",
            SLICE,
            "--base-url",
            &server.url,
            "--model",
            "gemma-3-270m",
            "--limit",
            "10",
            "--concurrency",
            "4",
            "--output",
        ])
        .arg(&output)
        .output()
        .unwrap();
    succeeded(&run);
    let table = read_parquet(&parquet_output(&output));
    let rows = table["rows"].as_array().unwrap();
    check_rows(rows, 10);
    assert!(!scored_rows(rows).is_empty(), "the real judge scored rows");
    assert_eq!(
        table["schema"]["chosen"], "struct<from: string, value: string>",
        "ShareGPT cells keep their type"
    );
    let loaded = python(
        "import sys, json, datasets\n\
         d = datasets.load_dataset('parquet', data_files=sys.argv[1], split='train')\n\
         print(json.dumps({'rows': d.num_rows, 'columns': d.column_names}))",
        &[&parquet_output(&output)],
    );
    assert_eq!(loaded["rows"], 10);
    assert!(
        loaded["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "outcome")
    );
    let report = report(&output);
    let total: u64 = report["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);
    assert!(
        report["tokens"]["prompt"].as_u64().unwrap() > 1000,
        "the server's token usage is counted"
    );
}

#[test]
fn llama_server_logprobs_give_continuous_scores() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start();
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().join("out");
    let run = rejudge()
        .args([
            "rerank",
            SLICE,
            "--base-url",
            &server.url,
            "--model",
            "gemma-3-270m",
            "--limit",
            "4",
            "--scoring",
            "logprobs",
        ])
        .args(["--format", "jsonl", "--quiet", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    succeeded(&run);
    let rows = jsonl_output(&output);
    check_rows(&rows, 4);
    let scored = scored_rows(&rows);
    assert!(!scored.is_empty());
    for row in scored {
        let score = row["chosen_score"].as_f64().unwrap();
        assert!(
            score.fract() != 0.0,
            "an expected score, not a digit: {score}"
        );
        let distribution = row["chosen_score_distribution"].as_array().unwrap();
        let total: f64 = distribution.iter().map(|p| p.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}

#[test]
fn stopping_the_server_mid_run_stops_the_run_and_a_restart_finishes_it() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start();
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().join("out");
    let command = |url: &str| {
        let mut command = rejudge();
        command
            .args([
                "rerank",
                SLICE,
                "--base-url",
                url,
                "--model",
                "gemma-3-270m",
            ])
            .args([
                "--limit",
                "16",
                "--concurrency",
                "2",
                "--max-attempts",
                "2",
                "--quiet",
            ])
            .args(["--format", "jsonl", "--output"])
            .arg(&output);
        command
    };
    let run = command(&server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let a few rows finish, then take the server away.
    let journal = output.join("journal.sqlite");
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished_requests(&journal) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop();
    let ended = run.wait_with_output().unwrap();
    let stderr = exits_with(&ended, 1);
    assert!(stderr.contains("requests in a row failed"), "{stderr}");
    assert!(stderr.contains("hint: nothing listens at"), "{stderr}");
    assert!(
        !output.join("data").join("train.jsonl").exists(),
        "no half dataset"
    );
    let answered = finished_requests(&journal);
    assert!(
        answered >= 3,
        "every answer before the stop is kept: {answered}"
    );

    let server = Server::start();
    succeeded(&command(&server.url).output().unwrap());
    let rows = jsonl_output(&output);
    check_rows(&rows, 16);
    let report = report(&output);
    assert!(report["requests"]["from_journal"].as_i64().unwrap() >= answered);
    assert_eq!(report["outcomes"]["failed"], 0);
}

fn finished_requests(journal: &Path) -> i64 {
    let Ok(connection) =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    connection
        .query_row(
            "SELECT COUNT(*) FROM requests WHERE status = 'ok'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

#[cfg(feature = "local")]
#[test]
fn the_in_process_judge_scores_in_both_modes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let folder = tempfile::tempdir().unwrap();
    for (mode, limit) in [("score", "6"), ("logprobs", "6")] {
        let output = folder.path().join(mode);
        let run = rejudge()
            .args([
                "rerank",
                SLICE,
                "--limit",
                limit,
                "--scoring",
                mode,
                "--concurrency",
                "4",
                "--format",
                "jsonl",
                "--quiet",
            ])
            .arg("--model-file")
            .arg(model())
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        succeeded(&run);
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("tiny gemma-3-270m demo model"),
            "the demo judge is labelled"
        );
        let rows = jsonl_output(&output);
        check_rows(&rows, 6);
        let scored = scored_rows(&rows);
        assert_eq!(scored.len(), 6, "grammar-constrained answers always parse");
        if mode == "logprobs" {
            assert!(
                scored
                    .iter()
                    .all(|r| r["chosen_score"].as_f64().unwrap().fract() != 0.0)
            );
        }
    }
}

#[test]
fn batch_files_replayed_through_llama_server_equal_an_online_run() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start_deterministic();
    let folder = tempfile::tempdir().unwrap();
    // One request at a time on both paths, on one slot without a prompt cache: a server's
    // batching and a reused prefix change its arithmetic, and the two outputs are compared
    // exactly.
    let run = |output: &Path, extra: &[&str]| {
        rejudge()
            .args([
                "rerank", SLICE, "--limit", "4", "--format", "jsonl", "--quiet",
            ])
            .args(ONE_TOKEN_PAIRWISE)
            .args(["--order", "both", "--concurrency", "1"])
            .args(["--base-url", &server.url, "--model", "gemma-3-270m"])
            .args(extra)
            .arg("--output")
            .arg(output)
            .output()
            .unwrap()
    };
    // The tiny model sometimes leaves every verdict token out of its top ten: online, that
    // answer is asked again once and then fails; through batches, the re-ask is exported in a
    // second round. Both paths must end in the same rows either way.
    let online = folder.path().join("online");
    let online_status = run(&online, &[]).status.code();
    assert!(matches!(online_status, Some(0 | 3)), "{online_status:?}");

    let batched = folder.path().join("batched");
    let mut imported_total = 0;
    for round in 1..=3 {
        let requests = folder.path().join(format!("requests-{round}.jsonl"));
        succeeded(&run(
            &batched,
            &["--batch-export", requests.to_str().unwrap()],
        ));
        let exported = std::fs::read_to_string(&requests).unwrap().lines().count();
        if round == 1 {
            assert_eq!(exported, 8, "4 rows, both orders");
        }
        if exported == 0 {
            break;
        }
        imported_total += exported;
        let answers = folder.path().join(format!("answers-{round}.jsonl"));
        crate::batch::replay_with(&server.url, &[requests], &answers, 1);
        let imported = run(&batched, &["--batch-import", answers.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&imported.stderr).into_owned();
        // Every line is an answer to a request of this run, read or unreadable.
        assert!(
            stderr.contains("0 failed; 0 lines for requests this run does not need"),
            "{stderr}"
        );
        assert_eq!(imported.status.code(), online_status, "{stderr}");
        if !stderr.contains("not answered by a batch yet")
            && !String::from_utf8_lossy(&imported.stdout).contains("not answered by a batch yet")
        {
            break;
        }
    }
    let online_report = report(&online);
    assert_eq!(
        online_report["requests"]["sent"].as_u64(),
        Some(imported_total as u64),
        "the batches carried the same requests as the online run"
    );
    let online_rows = jsonl_output(&online);
    assert!(
        !scored_rows(&online_rows).is_empty(),
        "the real judge decided rows"
    );
    assert_eq!(jsonl_output(&batched), online_rows);
    assert_eq!(
        report(&batched)["requests"]["sent"],
        0,
        "every answer came from the batch"
    );
}

const LLMBAR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/llmbar/llmbar.jsonl"
);

/// `rejudge eval` over the first LLMBar pairs with the one-token pairwise protocol in both
/// orders, with the judge `judge` names; checks what eval.json and the per-row data must hold
/// whatever this weak judge decides.
fn eval_llmbar(judge: &[&std::ffi::OsStr], output: &Path) -> Value {
    let run = rejudge()
        .arg("eval")
        .arg(LLMBAR)
        .args(["--limit", "6", "--format", "jsonl", "--quiet"])
        .args(ONE_TOKEN_PAIRWISE)
        .args([
            "--order",
            "both",
            "--concurrency",
            "2",
            "--target-agreement",
            "0.6",
        ])
        .args(judge)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap();
    // 3: a pair whose answer the tiny model never makes readable fails and is counted so.
    let code = run.status.code();
    assert!(
        matches!(code, Some(0 | 3)),
        "{code:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("agreement"),
        "the summary is printed: {stdout}"
    );
    let figures: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("eval.json")).unwrap()).unwrap();
    assert_eq!(figures["rows"], 6);
    let judged = figures["judged"].as_u64().unwrap();
    assert!(judged >= 3, "most pairs are judged: {figures}");
    let agreement = figures["agreement"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&agreement));
    assert_eq!(
        figures["position_consistency"]["of"].as_u64().unwrap(),
        judged,
        "both orders were judged for every judged pair"
    );
    assert!(figures["tokens"]["prompt"].as_u64().unwrap() > 6 * 200);
    assert!(output.join("agreement.png").is_file());
    let rows = jsonl_output(output);
    assert_eq!(rows.len(), 6);
    for row in &rows {
        for column in ["input", "output_1", "output_2", "label"] {
            assert!(!row[column].is_null(), "{column} is kept: {row}");
        }
    }
    figures
}

#[test]
fn eval_measures_llama_server_on_llmbar() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start();
    let folder = tempfile::tempdir().unwrap();
    let judge =
        ["--base-url", server.url.as_str(), "--model", "gemma-3-270m"].map(std::ffi::OsStr::new);
    let figures = eval_llmbar(&judge, &folder.path().join("eval"));
    assert!(figures["requests"]["sent"].as_u64().unwrap() >= 12);
}

#[cfg(feature = "local")]
#[test]
fn eval_measures_the_in_process_judge_on_llmbar() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let folder = tempfile::tempdir().unwrap();
    let model = model();
    let judge = [std::ffi::OsStr::new("--model-file"), model.as_os_str()];
    eval_llmbar(&judge, &folder.path().join("eval"));
}

#[cfg(feature = "local")]
#[test]
fn hub_models_are_reused_from_the_cache_offline() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let home = tempfile::tempdir().unwrap();
    let snapshot = home.path().join(
        "hub/models--rejudge-test--tiny-judge/snapshots/0123456789abcdef0123456789abcdef01234567",
    );
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(
        home.path()
            .join("hub/models--rejudge-test--tiny-judge/refs"),
    )
    .unwrap();
    std::fs::write(
        home.path()
            .join("hub/models--rejudge-test--tiny-judge/refs/main"),
        "0123456789abcdef0123456789abcdef01234567",
    )
    .unwrap();
    std::os::unix::fs::symlink(model(), snapshot.join("judge.gguf")).unwrap();
    let output = home.path().join("out");
    let run = rejudge()
        .args([
            "rerank", SLICE, "--limit", "2", "--format", "jsonl", "--quiet",
        ])
        .args([
            "--model-file",
            "hf://rejudge-test/tiny-judge/judge.gguf",
            "--output",
        ])
        .arg(&output)
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    succeeded(&run);
    assert_eq!(jsonl_output(&output).len(), 2);
}

#[cfg(feature = "local")]
#[test]
fn without_a_model_or_the_hub_the_error_says_how_to_supply_one() {
    let home = tempfile::tempdir().unwrap();
    for offline in ["1", "0"] {
        let run = rejudge()
            .args(["rerank", SLICE, "--limit", "1", "--output"])
            .arg(home.path().join("out"))
            .env("HF_HOME", home.path())
            .env("HF_HUB_OFFLINE", offline)
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env_remove("REJUDGE_MODEL_FILE")
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("Qwen/Qwen2.5-1.5B-Instruct-GGUF"),
            "{stderr}"
        );
        assert!(
            stderr.contains("--model-file") && stderr.contains("REJUDGE_MODEL_FILE"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
