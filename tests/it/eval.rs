//! `rejudge eval` against judges whose quality is known: the keyword stub (always right) and a
//! simulated pairwise judge of known accuracy and position pull. Every expected figure is worked
//! out here from the judge's rule, not copied from a run.

use crate::stub::{Reply, Stub, belief, knows};
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;

/// `rejudge eval INPUT --base-url URL --model stub-judge --output OUTPUT --quiet` plus `extra`.
fn eval(input: &Path, output: &Path, url: &str, extra: &[&str]) -> std::process::Output {
    rejudge()
        .arg("eval")
        .arg(input)
        .args([
            "--quiet",
            "--base-url",
            url,
            "--model",
            "stub-judge",
            "--output",
        ])
        .arg(output)
        .args(extra)
        .output()
        .expect("the binary runs")
}

fn eval_json(folder: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(folder.join("eval.json")).unwrap()).unwrap()
}

/// Labelled pairs in the prompt/chosen/rejected layout: `chosen` is the human-preferred one.
fn labelled_rows(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"id": i, "prompt": format!("question {i}: which one is right?"),
                   "chosen": format!("the good answer {i}"), "rejected": format!("the bad answer {i}")})
        })
        .collect()
}

fn prompts(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("question {i}: which one is right?"))
        .collect()
}

const PAIRWISE: [&str; 4] = ["--mode", "pairwise", "--scoring", "logprobs"];

#[test]
fn eval_recovers_a_simulated_judges_accuracy_and_both_orders_cancel_its_position_pull() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("gold.jsonl");
    let rows = 300;
    write_jsonl(&input, &labelled_rows(rows));
    let accuracy = 0.8;
    // The judge is right exactly on the prompts it knows.
    let known = prompts(rows).iter().filter(|p| knows(p, accuracy)).count();
    let expected = known as f64 / rows as f64;

    // No pull, one order: the agreement is the judge's accuracy.
    let plain = Stub::start(move |_, _| Reply::Simulated {
        accuracy,
        pull: 0.0,
    });
    let output = folder.path().join("plain");
    succeeded(&eval(&input, &output, &plain.url, &PAIRWISE));
    let figures = eval_json(&output);
    assert_eq!(figures["agreement"].as_f64().unwrap(), expected);
    assert_eq!(figures["coverage"].as_f64().unwrap(), 1.0);

    // A pull of one half toward position A: every single-order verdict is A, whatever the
    // pair, so the first position wins every time and agreement falls to the share of pairs
    // shown with the preferred response first.
    let pulled = Stub::start(move |_, _| Reply::Simulated {
        accuracy,
        pull: 0.5,
    });
    let output = folder.path().join("pulled");
    succeeded(&eval(&input, &output, &pulled.url, &PAIRWISE));
    let figures = eval_json(&output);
    assert_eq!(
        figures["first_position_win_rate"]["value"]
            .as_f64()
            .unwrap(),
        1.0
    );
    let single = figures["agreement"].as_f64().unwrap();
    assert!((0.35..0.65).contains(&single), "{single}");

    // Both orders, merged: the pull cancels exactly and the accuracy comes back.
    let output = folder.path().join("both");
    let both = [&PAIRWISE[..], &["--order", "both"]].concat();
    succeeded(&eval(&input, &output, &pulled.url, &both));
    let figures = eval_json(&output);
    assert_eq!(figures["agreement"].as_f64().unwrap(), expected);
    // Each order alone still says A: the two orders disagree on every pair.
    assert_eq!(
        figures["position_consistency"]["value"].as_f64().unwrap(),
        0.0
    );

    // FastChat's rule instead: opposite winners make ties, so nothing is decided.
    let output = folder.path().join("fastchat");
    let fastchat = [&both[..], &["--on-inconsistent", "tie"]].concat();
    succeeded(&eval(&input, &output, &pulled.url, &fastchat));
    let figures = eval_json(&output);
    assert_eq!(figures["coverage"].as_f64().unwrap(), 0.0);
    assert_eq!(figures["agreement"].as_f64().unwrap(), 0.5);
}

#[test]
fn a_calibrated_margin_reaches_its_target_and_rerank_applies_it() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("gold.jsonl");
    let rows = 200;
    write_jsonl(&input, &labelled_rows(rows));
    let accuracy = 0.7;
    let stub = Stub::start(move |_, _| Reply::Simulated {
        accuracy,
        pull: 0.0,
    });
    let output = folder.path().join("eval");
    let calibrate = [
        &PAIRWISE[..],
        &["--order", "chosen-first", "--target-agreement", "0.95"],
    ]
    .concat();
    let run = eval(&input, &output, &stub.url, &calibrate);
    succeeded(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("calibration: margin"), "{stdout}");

    // The decision values the judge gives, toward the preferred response: 2 * belief - 1. The
    // smallest margin at which 95% of the pairs beyond it are right, worked out directly.
    let mut decisions: Vec<f64> = prompts(rows)
        .iter()
        .map(|p| 2.0 * belief(p, accuracy) - 1.0)
        .collect();
    decisions.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
    let mut expected = None;
    let candidates: Vec<f64> = std::iter::once(0.0)
        .chain(decisions.iter().map(|d| d.abs()))
        .collect();
    for margin in candidates {
        let decided: Vec<&f64> = decisions.iter().filter(|d| d.abs() > margin).collect();
        let right = decided.iter().filter(|d| ***d > 0.0).count();
        if !decided.is_empty() && right as f64 / decided.len() as f64 >= 0.95 {
            expected = Some(expected.map_or(margin, |e: f64| e.min(margin)));
        }
    }
    let calibration: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("calibration.json")).unwrap())
            .unwrap();
    let margin = calibration["margin"].as_f64().unwrap();
    assert!(
        (margin - expected.unwrap()).abs() < 1e-9,
        "{margin} vs {expected:?}"
    );
    assert!(calibration["agreement_decided"].as_f64().unwrap() >= 0.95);
    assert!(output.join("agreement.png").exists());

    // rerank with the calibration: its margin decides, and the report says so. The same
    // requests are answered from a fresh stub; nothing about the margin needs the judge.
    let rerank_output = folder.path().join("rerank");
    let file = output.join("calibration.json");
    let flags = [
        &PAIRWISE[..],
        &[
            "--order",
            "chosen-first",
            "--calibration",
            file.to_str().unwrap(),
        ],
    ]
    .concat();
    succeeded(&rerank(&input, &rerank_output, &stub.url, &flags));
    let report = report(&rerank_output);
    assert_eq!(report["tie_margin"].as_f64().unwrap(), margin);
    assert_eq!(report["calibration"]["target_agreement"], json!(0.95));
    let ties = decisions
        .iter()
        .filter(|d| d.abs() <= margin + 1e-9)
        .count() as u64;
    assert_eq!(report["outcomes"]["tie"], json!(ties));

    // A margin fitted under one protocol means nothing under another.
    let rating = ["--calibration", file.to_str().unwrap()];
    let stderr = Rerank::new(&input)
        .judge(&stub.url)
        .output(&folder.path().join("x"))
        .args(&rating)
        .fails();
    assert!(
        stderr.contains("fitted under --mode pairwise --scoring logprobs"),
        "{stderr}"
    );
}

#[test]
fn llmbar_layout_keeps_every_column_and_reports_per_category() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("llmbar.jsonl");
    let rows: Vec<Value> = (0..12)
        .map(|i| {
            let (first, second) = ("a good output", "a bad output");
            let (output_1, output_2, label) = if i % 3 == 0 { (second, first, 2) } else { (first, second, 1) };
            json!({"id": format!("q{i}"), "input": format!("Task {i}?"), "output_1": output_1,
                   "output_2": output_2, "label": label, "category": if i < 6 { "natural" } else { "adversarial" }})
        })
        .collect();
    write_jsonl(&input, &rows);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let run = eval(&input, &output, &stub.url, &["--order", "both"]);
    succeeded(&run);
    let figures = eval_json(&output);
    assert_eq!(
        figures["agreement"].as_f64().unwrap(),
        1.0,
        "the keyword judge is always right"
    );
    assert_eq!(figures["kappa"].as_f64().unwrap(), 1.0);
    assert_eq!(figures["categories"]["natural"]["pairs"], 6);
    assert_eq!(
        figures["position_consistency"]["value"].as_f64().unwrap(),
        1.0
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("| category |") && stdout.contains("| adversarial | 6 |"),
        "{stdout}"
    );

    let table = read_parquet(&parquet_output(&output));
    let written = table["rows"].as_array().unwrap();
    assert_eq!(written.len(), 12);
    for (row, original) in written.iter().zip(&rows) {
        for column in ["id", "input", "output_1", "output_2", "label", "category"] {
            assert_eq!(row[column], original[column], "{column} is kept as it was");
        }
        assert_eq!(row["outcome"], "kept");
        // The preferred output's score goes with `chosen_score`, never swapped.
        assert_eq!(row["chosen_score"], json!(5.0));
    }
}

/// A judge that always answers "A" must not look right under `--order chosen-first`: the
/// order policy places the pair's own first response, never the human-preferred one, so the
/// label does not leak into the position.
#[test]
fn chosen_first_shows_the_pairs_first_response_not_the_preferred_one() {
    let folder = tempfile::tempdir().unwrap();
    // A pull above one half: response A wins whatever the pair holds.
    let always_a = Stub::start(|_, _| Reply::Simulated {
        accuracy: 1.0,
        pull: 0.6,
    });
    let chosen_first = [&PAIRWISE[..], &["--order", "chosen-first"]].concat();

    // LLMBar's layout: the first response is output_1, preferred on 20 of 30 pairs.
    let input = folder.path().join("llmbar.jsonl");
    let rows: Vec<Value> = (0..30)
        .map(|i| {
            let label = if i % 3 == 0 { 2 } else { 1 };
            json!({"input": format!("Task {i}?"), "output_1": format!("one {i}"),
                   "output_2": format!("two {i}"), "label": label})
        })
        .collect();
    write_jsonl(&input, &rows);
    let output = folder.path().join("llmbar");
    succeeded(&eval(&input, &output, &always_a.url, &chosen_first));
    let figures = eval_json(&output);
    assert_eq!(figures["agreement"].as_f64().unwrap(), 20.0 / 30.0);

    // A prompt/chosen/rejected set has no first response of its own: a seeded coin places the
    // preferred one, so a judge of position alone agrees about half the time.
    let input = folder.path().join("gold.jsonl");
    write_jsonl(&input, &labelled_rows(300));
    let output = folder.path().join("gold");
    succeeded(&eval(&input, &output, &always_a.url, &chosen_first));
    let figures = eval_json(&output);
    let agreement = figures["agreement"].as_f64().unwrap();
    assert!((0.4..0.6).contains(&agreement), "{agreement}");
    assert_eq!(
        figures["first_position_win_rate"]["value"]
            .as_f64()
            .unwrap(),
        1.0
    );
}

#[test]
fn a_gold_column_names_the_preferred_response() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("votes.jsonl");
    let rows = vec![
        json!({"prompt": "p1?", "chosen": "a good one", "rejected": "a bad one", "human": "a"}),
        json!({"prompt": "p2?", "chosen": "a good one", "rejected": "a bad one", "human": "B"}),
        json!({"prompt": "p3?", "chosen": "a good one", "rejected": "a bad one", "human": "chosen"}),
        json!({"prompt": "p4?", "chosen": "a good one", "rejected": "a bad one", "human": "maybe"}),
    ];
    write_jsonl(&input, &rows);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let run = eval(
        &input,
        &output,
        &stub.url,
        &["--gold-column", "human", "--format", "jsonl"],
    );
    exits_with(&run, 0);
    let written = jsonl_output(&output);
    let outcomes: Vec<&str> = written
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["kept", "swapped", "kept", "invalid"]);
    assert!(
        written[3]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("human is \"maybe\"")
    );
    let figures = eval_json(&output);
    assert_eq!(
        (figures["judged"].as_u64(), figures["unjudged"].as_u64()),
        (Some(3), Some(1))
    );
}

#[test]
fn pairwise_rerank_reads_one_token_verdicts() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let flags = [&PAIRWISE[..], &["--max-tokens", "1", "--format", "jsonl"]].concat();
    succeeded(&rerank(&input, &output, &stub.url, &flags));
    let report = report(&output);
    assert_eq!(report["outcomes"]["kept"], 2);
    assert_eq!(report["outcomes"]["swapped"], 2);
    assert_eq!(report["outcomes"]["tie"], 2);
    assert_eq!(report["mode"], "pairwise");
    let body = &stub.bodies()[0];
    assert!(
        body.get("response_format").is_none(),
        "no JSON schema for a first-token verdict"
    );
    assert_eq!(body["max_tokens"], 1);
    let written = jsonl_output(&output);
    let swapped = written.iter().find(|r| r["outcome"] == "swapped").unwrap();
    let preference = swapped["preference"].as_array().unwrap();
    assert!(
        preference[0].as_f64().unwrap() > 0.9,
        "the new chosen is the preferred one: {swapped}"
    );
    assert!(swapped["margin"].as_f64().unwrap() > 0.9);
    assert_eq!(swapped["chosen_score"], Value::Null);
}

/// A config file with a panel of two judges (a keyword judge and one that always calls a
/// tie), optionally a spread limit and an escalation judge.
fn panel_config(
    path: &Path,
    keyword: &str,
    fence: &str,
    spread: Option<f64>,
    referee: Option<&str>,
) {
    let mut text = String::new();
    if let Some(spread) = spread {
        text.push_str(&format!("[panel]\nmax-spread = {spread}\n\n"));
    }
    if let Some(referee) = referee {
        text.push_str(&format!(
            "[escalation]\nbelow = 2.5\nbase-url = \"{referee}\"\nmodel = \"referee\"\n\n"
        ));
    }
    text.push_str(&format!(
        "[[judges]]\nbase-url = \"{keyword}\"\nmodel = \"keyword\"\n\n"
    ));
    text.push_str(&format!(
        "[[judges]]\nbase-url = \"{fence}\"\nmodel = \"fence-sitter\"\nweight = 1.0\n"
    ));
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_panel_averages_its_judges_and_escalation_decides_the_near_ties() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let keyword = Stub::judging();
    let tie = r#"{"response_a": {"rationale": "same", "score": 3}, "response_b": {"rationale": "same", "score": 3}}"#;
    let fence = Stub::start(move |_, _| Reply::Text(tie.to_owned()));
    let referee = Stub::judging();
    let run = |name: &str, spread: Option<f64>, escalate: bool| {
        let config = folder.path().join(format!("{name}.toml"));
        panel_config(
            &config,
            &keyword.url,
            &fence.url,
            spread,
            escalate.then_some(referee.url.as_str()),
        );
        let output = folder.path().join(name);
        let mut command = rejudge();
        command.arg("rerank").arg(&input).args([
            "--quiet",
            "--format",
            "jsonl",
            "--order",
            "chosen-first",
            "--config",
        ]);
        command.arg(&config).arg("--output").arg(&output);
        let result = command.output().unwrap();
        (
            exits_with(&result, 0),
            String::from_utf8_lossy(&result.stdout).into_owned(),
            output,
        )
    };

    // Averaged: the keyword judge's 5 vs 1 (4 points) and the fence-sitter's 0 give 2 points.
    let (_, stdout, output) = run("mean", None, false);
    let rows = jsonl_output(&output);
    assert_eq!(rows[0]["outcome"], "kept");
    assert_eq!(rows[0]["margin"], json!(2.0));
    assert_eq!(rows[0]["judge_model"], "panel(keyword, fence-sitter)");
    assert_eq!(rows[1]["outcome"], "swapped");
    let judging = &report(&output)["judging"];
    // The two judges agree only on the tie rows (2 of the 6 judged).
    assert_eq!(
        (
            judging["panel_rows"].as_u64(),
            judging["panel_unanimous"].as_u64()
        ),
        (Some(6), Some(2))
    );
    assert!(
        stdout.contains("panel: every judge gave the same outcome on 2 of 6 rows"),
        "{stdout}"
    );
    assert_eq!(keyword.requests(), 6);
    assert_eq!(fence.requests(), 6);

    // Judges 4 points apart, more than the panel allows: a tie.
    let (_, _, output) = run("spread", Some(3.0), false);
    assert_eq!(report(&output)["outcomes"]["tie"], 6);

    // Rows within 2.5 points of a tie (all of them here) go to the referee, which decides.
    let (_, stdout, output) = run("escalate", None, true);
    let rows = jsonl_output(&output);
    assert_eq!(rows[0]["judge_model"], "referee");
    assert_eq!(rows[0]["margin"], json!(4.0));
    let judging = &report(&output)["judging"];
    assert_eq!(judging["escalated"], 6);
    assert_eq!(judging["escalation_changed"], 0);
    assert_eq!(judging["decided_by"]["referee"], 6);
    assert!(
        stdout.contains("escalation: 6 rows went to the escalation judge"),
        "{stdout}"
    );
    assert_eq!(referee.requests(), 6);
    // Three runs, three fresh output folders: the panel judges were asked every time.
    assert_eq!(keyword.requests(), 3 * 6);
}
