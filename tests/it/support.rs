//! Helpers shared by the integration tests.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `rejudge` binary built for these tests.
pub fn rejudge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rejudge"));
    command
        .env_remove("OPENAI_API_KEY")
        .env_remove("HF_TOKEN")
        .env("NO_COLOR", "1");
    command
}

/// A `rejudge rerank` command line under construction: the input, `--quiet`, and whatever the
/// test adds; `run`, `succeeds` and `fails` execute it.
pub struct Rerank {
    command: Command,
}

impl Rerank {
    /// `rejudge rerank INPUT --quiet`.
    pub fn new(input: &Path) -> Self {
        let mut command = rejudge();
        command.arg("rerank").arg(input).arg("--quiet");
        Rerank { command }
    }

    /// Judged by the server at `url` as model `stub-judge`.
    pub fn judge(mut self, url: &str) -> Self {
        self.command
            .args(["--base-url", url, "--model", "stub-judge"]);
        self
    }

    /// Into the folder `output`.
    pub fn output(mut self, output: &Path) -> Self {
        self.command.arg("--output").arg(output);
        self
    }

    /// More flags.
    pub fn args(mut self, arguments: &[&str]) -> Self {
        self.command.args(arguments);
        self
    }

    /// An environment variable for the run.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env(name, value);
        self
    }

    /// Runs it, whatever the outcome.
    pub fn run(mut self) -> Output {
        self.command.output().expect("the binary runs")
    }

    /// Runs it and asserts it succeeded.
    pub fn succeeds(self) -> Output {
        let output = self.run();
        succeeded(&output);
        output
    }

    /// Runs it and asserts it failed with exit status 1; returns its stderr.
    pub fn fails(self) -> String {
        let output = self.run();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "expected exit 1: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}

/// Runs `rejudge rerank INPUT --base-url URL --model stub-judge --output OUTPUT` plus `extra`.
pub fn rerank(input: &Path, output: &Path, url: &str, extra: &[&str]) -> Output {
    Rerank::new(input)
        .judge(url)
        .output(output)
        .args(extra)
        .run()
}

/// Asserts a run ended with exit status `code`; returns its stderr.
pub fn exits_with(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The exit status of a run that finished with failed rows.
pub const FAILED_ROWS: i32 = 3;

/// Asserts a run succeeded, showing its output when it did not.
pub fn succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "rejudge failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Rows with a known verdict under the stub judge: per four rows, one kept, one swapped, one
/// tie, one invalid (a null rejected response).
pub fn keyword_rows(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| match i % 4 {
            0 => json!({"id": i, "prompt": format!("Question {i}?"), "chosen": "a good answer", "rejected": "a bad answer"}),
            1 => json!({"id": i, "prompt": format!("Question {i}?"), "chosen": "a bad answer", "rejected": "a good answer"}),
            2 => json!({"id": i, "prompt": format!("Question {i}?"), "chosen": "a plain answer", "rejected": "another plain answer"}),
            _ => json!({"id": i, "prompt": format!("Question {i}?"), "chosen": "a good answer", "rejected": null}),
        })
        .collect()
}

/// Writes rows as JSON Lines.
pub fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Runs a Python snippet with `sys.argv[1:]` = `arguments` and parses its stdout as JSON.
pub fn python(code: &str, arguments: &[&Path]) -> Value {
    let output = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(arguments)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python prints JSON")
}

/// Reads a Parquet file with pyarrow: `{"schema": {name: type}, "rows": [...]}`.
pub fn read_parquet(path: &Path) -> Value {
    python(
        "import json, sys, pyarrow.parquet as pq\n\
         t = pq.read_table(sys.argv[1])\n\
         print(json.dumps({'schema': {f.name: str(f.type) for f in t.schema}, 'rows': t.to_pylist()}, default=str))",
        &[path],
    )
}

/// The Parquet output of a run folder.
pub fn parquet_output(folder: &Path) -> PathBuf {
    folder.join("data").join("train-00000-of-00001.parquet")
}

/// The report of a run folder.
pub fn report(folder: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).unwrap()).unwrap()
}

/// The JSON Lines output of a run folder.
pub fn jsonl_output(folder: &Path) -> Vec<Value> {
    std::fs::read_to_string(folder.join("data").join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
