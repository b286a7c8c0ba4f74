//! The spine: formats in, decisions, output schema, reports, errors on bad input.

use crate::stub::Stub;
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;

fn outcomes(report: &Value) -> (u64, u64, u64, u64, u64) {
    let count = |name: &str| report["outcomes"][name].as_u64().unwrap();
    (
        count("kept"),
        count("swapped"),
        count("tie"),
        count("failed"),
        count("invalid"),
    )
}

#[test]
fn jsonl_in_parquet_out_swaps_flags_ties_and_keeps_every_row() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(20));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let run = rerank(&input, &output, &stub.url, &[]);
    succeeded(&run);

    let table = read_parquet(&parquet_output(&output));
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    for (index, row) in rows.iter().enumerate() {
        assert_eq!(row["id"], json!(index), "rows keep the input order");
        let expected = ["kept", "swapped", "tie", "invalid"][index % 4];
        assert_eq!(row["outcome"], expected, "row {index}");
        match expected {
            "kept" | "swapped" => {
                assert_eq!(row["chosen"], "a good answer");
                assert_eq!(row["rejected"], "a bad answer");
                assert_eq!(
                    (row["chosen_score"].as_f64(), row["rejected_score"].as_f64()),
                    (Some(5.0), Some(1.0))
                );
                assert_eq!(row["failure_reason"], Value::Null);
            }
            "tie" => {
                assert_eq!(
                    row["chosen"], "a plain answer",
                    "a tie keeps the stored order"
                );
                assert_eq!(row["chosen_score"], row["rejected_score"]);
            }
            _ => {
                assert_eq!(row["rejected"], Value::Null);
                assert_eq!(row["failure_reason"], "rejected is null");
                assert_eq!(row["chosen_score"], Value::Null);
            }
        }
        assert_eq!(row["judge_model"], "stub-judge");
    }
    let schema = &table["schema"];
    for (column, kind) in [
        ("chosen_score", "double"),
        ("rejected_score", "double"),
        ("chosen_rationale", "string"),
        ("outcome", "string"),
        ("failure_reason", "string"),
        ("judge_model", "string"),
    ] {
        assert_eq!(schema[column], kind, "{column}");
    }

    let report = report(&output);
    assert_eq!(report["rows"], 20);
    assert_eq!(outcomes(&report), (5, 5, 5, 0, 5));
    assert_eq!(report["requests"]["sent"], 15);
    assert_eq!(report["tokens"]["prompt"], 1500);
    assert_eq!(report["judge_model"], "stub-judge");
    assert_eq!(report["template_sha256"].as_str().unwrap().len(), 64);
    let positions = &report["positions"];
    assert_eq!(
        positions["chosen_first"].as_u64().unwrap() + positions["rejected_first"].as_u64().unwrap(),
        15
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("swapped") && stdout.contains("15 sent"),
        "{stdout}"
    );
    assert!(
        output.join("README.md").exists(),
        "a dataset card is written"
    );
}

#[test]
fn the_random_order_shows_both_positions() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    succeeded(&rerank(&input, &output, &stub.url, &[]));
    let firsts: Vec<bool> = stub
        .bodies()
        .iter()
        .map(|body| {
            let user = body["messages"][1]["content"].as_str().unwrap();
            let a = crate::stub::section(user, "response_a");
            a.contains("good") || a.contains("a plain")
        })
        .collect();
    assert!(
        firsts.iter().any(|f| *f) && firsts.iter().any(|f| !*f),
        "both orders occur: {firsts:?}"
    );
    let positions = &report(&output)["positions"];
    assert_eq!(positions["policy"], "random");
}

#[test]
fn every_input_format_reads_the_same_rows() {
    let folder = tempfile::tempdir().unwrap();
    let rows = keyword_rows(8);
    let jsonl = folder.path().join("pairs.jsonl");
    write_jsonl(&jsonl, &rows);
    let json = folder.path().join("pairs.json");
    std::fs::write(&json, serde_json::to_string(&rows).unwrap()).unwrap();
    let csv = folder.path().join("pairs.csv");
    let mut text = String::from("id,prompt,chosen,rejected\n");
    for row in &rows {
        let cell = |v: &Value| v.as_str().map(|s| format!("\"{s}\"")).unwrap_or_default();
        text += &format!(
            "{},{},{},{}\n",
            row["id"],
            cell(&row["prompt"]),
            cell(&row["chosen"]),
            cell(&row["rejected"])
        );
    }
    std::fs::write(&csv, text).unwrap();
    let parquet = folder.path().join("pairs.parquet");
    let shards = folder.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    python(
        "import sys, json, pyarrow as pa, pyarrow.parquet as pq\n\
         rows = [json.loads(l) for l in open(sys.argv[1])]\n\
         pq.write_table(pa.Table.from_pylist(rows), sys.argv[2])\n\
         pq.write_table(pa.Table.from_pylist(rows[:5]), sys.argv[3] + '/train-00000-of-00002.parquet')\n\
         pq.write_table(pa.Table.from_pylist(rows[5:]), sys.argv[3] + '/train-00001-of-00002.parquet')\n\
         print('{}')",
        &[&jsonl, &parquet, &shards],
    );
    let stub = Stub::judging();
    for (name, input) in [
        ("jsonl", &jsonl),
        ("json", &json),
        ("csv", &csv),
        ("parquet", &parquet),
        ("shards", &shards),
    ] {
        let output = folder.path().join(format!("out-{name}"));
        succeeded(&rerank(input, &output, &stub.url, &[]));
        let table = read_parquet(&parquet_output(&output));
        let found: Vec<&str> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect();
        let expected = ["kept", "swapped", "tie", "invalid"].repeat(2);
        assert_eq!(found, expected, "{name}");
    }
}

#[test]
fn sharegpt_and_message_lists_keep_their_type_when_swapped() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("chat.jsonl");
    let rows = vec![
        json!({
            "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi?"}],
            "chosen": {"from": "gpt", "value": "bad"},
            "rejected": {"from": "gpt", "value": "good"}
        }),
        json!({
            "conversations": [{"from": "human", "value": "Yo?"}],
            "chosen": {"from": "gpt", "value": "good"},
            "rejected": {"from": "gpt", "value": "bad"}
        }),
    ];
    write_jsonl(&input, &rows);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    succeeded(&rerank(&input, &output, &stub.url, &[]));
    let table = read_parquet(&parquet_output(&output));
    let first = &table["rows"][0];
    assert_eq!(first["outcome"], "swapped");
    assert_eq!(first["chosen"], json!({"from": "gpt", "value": "good"}));
    assert_eq!(first["conversations"][0]["value"], "Be brief.");
    let bodies = stub.bodies();
    assert!(
        bodies.iter().any(|b| b["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Be brief.")),
        "the system prompt reaches the judge"
    );

    let messages = folder.path().join("messages.jsonl");
    write_jsonl(
        &messages,
        &[json!({
            "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "bad: 5"}],
            "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "good: 4"}]
        })],
    );
    let output = folder.path().join("out-messages");
    succeeded(&rerank(
        &messages,
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    let row = &jsonl_output(&output)[0];
    assert_eq!(row["outcome"], "swapped");
    assert_eq!(row["chosen"][1]["content"], "good: 4");
}

#[test]
fn column_overrides_and_a_missing_column() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("odd.jsonl");
    write_jsonl(
        &input,
        &[json!({"query": "Q?", "better": "good", "worse": "bad"})],
    );
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let run = rerank(&input, &output, &stub.url, &[]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("odd.jsonl") && stderr.contains("columns present: query, better, worse"),
        "{stderr}"
    );
    let flags = [
        "--prompt-column",
        "query",
        "--chosen-column",
        "better",
        "--rejected-column",
        "worse",
    ];
    succeeded(&rerank(&input, &output, &stub.url, &flags));
    assert_eq!(report(&output)["outcomes"]["kept"], 1);
}

#[test]
fn malformed_inputs_fail_with_one_line_naming_the_file() {
    let folder = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "broken.jsonl",
            b"{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{oops\n",
            "line 2: invalid JSON",
        ),
        ("scalar.jsonl", b"42\n", "line 1: expected a JSON object"),
        (
            "object.json",
            b"{\"prompt\": \"a\"}",
            "expected a JSON array",
        ),
        ("truncated.json", b"[{\"prompt\": ", "invalid JSON"),
        (
            "fake.parquet",
            b"PAR1 this is not parquet",
            "not a readable Parquet file",
        ),
        (
            "ragged.csv",
            b"prompt,chosen,rejected\na,b,c\nd,e\n",
            "row 1",
        ),
        ("data.txt", b"hello", "unknown input format"),
        ("empty.jsonl", b"", "no rows"),
        ("empty-array.json", b"[]", "no rows"),
    ];
    let stub = Stub::judging();
    for (name, contents, problem) in cases {
        let input = folder.path().join(name);
        std::fs::write(&input, contents).unwrap();
        let run = rerank(&input, &folder.path().join("out"), &stub.url, &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(problem),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| !l.starts_with("hint:")).count(),
            1,
            "{name}: {stderr}"
        );
    }
    let missing = rerank(
        Path::new("/nonexistent/pairs.jsonl"),
        &folder.path().join("out"),
        &stub.url,
        &[],
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/pairs.jsonl: no such file")
    );
    assert_eq!(
        stub.requests(),
        0,
        "no judge call before the input is known good"
    );
}

#[test]
fn dry_run_renders_and_estimates_without_calling() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let stub = Stub::judging();
    let run = rerank(
        &input,
        &folder.path().join("out"),
        &stub.url,
        &["--dry-run"],
    );
    succeeded(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("--- system ---") && stdout.contains("Question 0?"),
        "{stdout}"
    );
    assert!(stdout.contains("6 rows to judge, 2 invalid"), "{stdout}");
    assert_eq!(stub.requests(), 0);
}

#[test]
fn limit_italian_rubric_and_a_user_template() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("it.jsonl");
    write_jsonl(
        &input,
        &(0..6)
            .map(|i| json!({"prompt": format!("Qual è la capitale della Francia e perché è importante? {i}"), "chosen": "good", "rejected": "bad"}))
            .collect::<Vec<_>>(),
    );
    let stub = Stub::judging();
    let output = folder.path().join("out");
    succeeded(&rerank(
        &input,
        &output,
        &stub.url,
        &["--limit", "4", "--format", "jsonl"],
    ));
    assert_eq!(jsonl_output(&output).len(), 4);
    assert_eq!(report(&output)["language"], "it");
    let system = stub.bodies()[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(system.contains("Sei un giudice imparziale"), "{system}");

    let template = folder.path().join("mine.j2");
    std::fs::write(
        &template,
        "Q: {{ prompt }}\n<response_a_{{ key }}>{{ response_a }}</response_a_{{ key }}>\n<response_b_{{ key }}>{{ response_b }}</response_b_{{ key }}>",
    )
    .unwrap();
    let before = stub.requests();
    let output = folder.path().join("out-template");
    succeeded(&rerank(
        &input,
        &output,
        &stub.url,
        &["--template", template.to_str().unwrap(), "--limit", "1"],
    ));
    let body = &stub.bodies()[before];
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("Q: Qual")
    );
}

#[test]
fn secrets_reach_the_server_and_nowhere_else() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(4));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let secret = "sk-test-do-not-leak-1234567890";
    let run = rejudge()
        .arg("rerank")
        .arg(&input)
        .args(["--base-url", &stub.url, "--model", "stub-judge", "--output"])
        .arg(&output)
        .args(["--api-key-env", "MY_JUDGE_KEY", "--format", "jsonl"])
        .env("MY_JUDGE_KEY", secret)
        .output()
        .unwrap();
    succeeded(&run);
    assert_eq!(
        stub.headers()[0]["authorization"],
        format!("Bearer {secret}")
    );
    for entry in walk(&output) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{} holds the key",
            entry.display()
        );
    }
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!printed.contains(secret));
}

fn walk(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_judge_that_favours_position_a_shows_in_the_report() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let stub = favours_a();
    let output = folder.path().join("out");
    let run = rerank(&input, &output, &stub.url, &[]);
    succeeded(&run);
    let positions = &report(&output)["positions"];
    assert_eq!(positions["first_shown_won"], 30);
    assert_eq!(positions["second_shown_won"], 0);
    assert!(
        String::from_utf8_lossy(&run.stdout)
            .contains("the response shown first won 30 of 30 decided judgments (100.0%)")
    );
    let swapped = report(&output)["outcomes"]["swapped"].as_u64().unwrap();
    assert_eq!(
        swapped,
        positions["rejected_first"].as_u64().unwrap(),
        "with a random order, a biased judge swaps where it saw rejected first"
    );
}

#[test]
fn both_orders_cancel_a_position_bias() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let biased = favours_a();
    let output = folder.path().join("biased");
    succeeded(&rerank(
        &input,
        &output,
        &biased.url,
        &["--order", "both", "--format", "jsonl"],
    ));
    assert_eq!(biased.requests(), 60, "two requests per judged row");
    let report = report(&output);
    assert_eq!(
        (
            report["outcomes"]["tie"].as_u64(),
            report["outcomes"]["swapped"].as_u64()
        ),
        (Some(30), Some(0))
    );
    let row = &jsonl_output(&output)[0];
    assert_eq!(row["shown_first"], "both");
    assert_eq!(row["chosen_score"], 3.0);
    assert_eq!(row["chosen_rationale"], "first | second");

    let fair = Stub::judging();
    let output = folder.path().join("fair");
    succeeded(&rerank(&input, &output, &fair.url, &["--order", "both"]));
    assert_eq!(fair.requests(), 60);
    let outcomes = &crate::support::report(&output)["outcomes"];
    assert_eq!(
        (
            outcomes["kept"].as_u64(),
            outcomes["swapped"].as_u64(),
            outcomes["tie"].as_u64()
        ),
        (Some(10), Some(10), Some(10))
    );
}

#[test]
fn a_column_of_mixed_types_survives_as_json_text() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("mixed.jsonl");
    write_jsonl(
        &input,
        &[
            json!({"prompt": "Q1?", "chosen": "good", "rejected": "bad", "meta": 7}),
            json!({"prompt": "Q2?", "chosen": "good", "rejected": "bad", "meta": {"source": "web"}}),
            json!({"prompt": "Q3?", "chosen": "good", "rejected": "bad", "meta": "plain"}),
        ],
    );
    let stub = Stub::judging();
    let output = folder.path().join("out");
    succeeded(&rerank(&input, &output, &stub.url, &[]));
    let table = read_parquet(&parquet_output(&output));
    assert_eq!(table["schema"]["meta"], "string");
    let metas: Vec<&Value> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["meta"])
        .collect();
    assert_eq!(
        metas,
        [&json!("7"), &json!("{\"source\":\"web\"}"), &json!("plain")]
    );
}

/// A judge that always scores Response A 5 and Response B 1, whatever they say.
fn favours_a() -> Stub {
    let answer = json!({
        "choices": [{"message": {"role": "assistant", "content": "{\"response_a\": {\"rationale\": \"first\", \"score\": 5}, \"response_b\": {\"rationale\": \"second\", \"score\": 1}}"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}
    })
    .to_string();
    Stub::start(move |_, _| crate::stub::Reply::Status(200, answer.clone(), None))
}
