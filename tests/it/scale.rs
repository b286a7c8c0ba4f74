//! Scale and cost: rate limits with a measured lower bound on wall time, servers that say their
//! limits are used up, and the adaptive in-flight limit.

use crate::stub::{Reply, Stub};
use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn a_request_rate_limit_spreads_the_requests() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(12));
    let stub = Stub::judging();
    let started = Instant::now();
    let flags = [
        "--rpm",
        "120",
        "--order",
        "chosen-first",
        "--concurrency",
        "8",
    ];
    succeeded(&rerank(
        &input,
        &folder.path().join("out"),
        &stub.url,
        &flags,
    ));
    let elapsed = started.elapsed();
    // 9 requests (3 rows are invalid) at 2 a second with a burst of 2: the last one starts
    // (9 - 2) / 2 = 3.5 s after the first.
    assert_eq!(stub.requests(), 9);
    assert!(elapsed >= Duration::from_millis(3_400), "{elapsed:?}");
}

#[test]
fn a_token_rate_limit_counts_prompt_and_completion_tokens() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let stub = Stub::start(|_, _| Reply::Slow(Duration::from_millis(500)));
    let run = |name: &str, extra: &[&str]| {
        let started = Instant::now();
        let flags = [&["--max-tokens", "100", "--order", "chosen-first"], extra].concat();
        succeeded(&rerank(
            &input,
            &folder.path().join(name),
            &stub.url,
            &flags,
        ));
        started.elapsed()
    };
    // Unlimited, the 6 requests go out together and take one answer's time.
    let free = run("free", &[]);
    assert!(free < Duration::from_millis(1_500), "{free:?}");
    // At 60,000 tokens a minute (1,000 a second, a burst of 1,000), a request estimated at
    // about 1,100 tokens (a third of a token per prompt byte, plus the 100 completion tokens)
    // waits for the previous one's reported usage (120 tokens) to give the estimate back: one
    // at a time, half a second each.
    let limited = run("limited", &["--tpm", "60000"]);
    assert!(limited >= Duration::from_millis(2_400), "{limited:?}");
    assert_eq!(stub.requests(), 12);
}

#[test]
fn a_server_whose_limit_is_used_up_pauses_every_request() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let exhausted = vec![
        ("x-ratelimit-remaining-requests".to_owned(), "0".to_owned()),
        ("x-ratelimit-reset-requests".to_owned(), "1.5s".to_owned()),
    ];
    let stub = Stub::start(move |n, _| {
        if n == 0 {
            Reply::JudgeWithHeaders(exhausted.clone())
        } else {
            Reply::Judge
        }
    });
    let started = Instant::now();
    succeeded(&rerank(
        &input,
        &folder.path().join("out"),
        &stub.url,
        &["--order", "chosen-first"],
    ));
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.requests(), 6);
}

#[test]
fn rate_limited_answers_are_retried_after_the_servers_pause() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(16));
    // Every fourth request is refused with a 429 and a one-second Retry-After.
    let stub = Stub::start(|n, _| {
        if n % 4 == 1 {
            Reply::Status(429, "{\"error\": \"slow down\"}".into(), Some(1))
        } else {
            Reply::Judge
        }
    });
    let output = folder.path().join("out");
    succeeded(&rerank(
        &input,
        &output,
        &stub.url,
        &["--concurrency", "8", "--format", "jsonl"],
    ));
    assert_eq!(report(&output)["outcomes"]["failed"], 0);
    assert!(report(&output)["requests"]["retried"].as_u64().unwrap() >= 1);
}

#[test]
fn a_hard_budget_stops_before_it_could_be_passed_and_a_rerun_continues() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    // Completion tokens only, at $1,000 a million: a request's worst case is its 50 allowed
    // tokens ($0.05), and the stub reports 20 ($0.02). One at a time, request k starts only if
    // 0.02 (k - 1) + 0.05 <= 0.15, so 6 requests go out.
    let prices = [
        "--price-input",
        "0",
        "--price-output",
        "1000",
        "--max-tokens",
        "50",
    ];
    let flags = [
        &prices[..],
        &["--order", "chosen-first", "--concurrency", "1"],
    ]
    .concat();
    let capped = [&flags[..], &["--max-cost", "0.15"]].concat();
    let stderr = exits_with(&rerank(&input, &output, &stub.url, &capped), 4);
    assert!(
        stderr
            .contains("budget reached: $0.1200 of $0.1500; raise --max-cost and rerun to continue"),
        "{stderr}"
    );
    assert_eq!(stub.requests(), 6);
    assert!(!parquet_output(&output).exists(), "no partial dataset");

    let dry = Rerank::new(&input)
        .args(&[&flags[..], &["--dry-run"]].concat())
        .succeeds();
    let stdout = String::from_utf8_lossy(&dry.stdout);
    // 30 requests of at most 50 completion tokens at $1,000 a million.
    assert!(stdout.contains("cost: at most $1.5000"), "{stdout}");

    let raised = [&flags[..], &["--max-cost", "1"]].concat();
    let run = rerank(&input, &output, &stub.url, &raised);
    exits_with(&run, 0);
    assert_eq!(stub.requests(), 30, "the rerun sent only what was missing");
    let cost = &report(&output)["cost"];
    assert!(
        (cost["this_run"].as_f64().unwrap() - 0.48).abs() < 1e-9,
        "{cost}"
    );
    assert!(
        (cost["total"].as_f64().unwrap() - 0.60).abs() < 1e-9,
        "{cost}"
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("cost: $0.4800 in this run, $0.6000 in all")
    );
}

#[test]
fn a_cap_without_prices_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(4));
    let stub = Stub::judging();
    let stderr = Rerank::new(&input)
        .judge(&stub.url)
        .args(&["--max-cost", "5"])
        .fails();
    assert!(
        stderr.contains("--max-cost needs the judge's prices"),
        "{stderr}"
    );
    assert_eq!(stub.requests(), 0);
}

#[test]
fn a_pool_keeps_going_when_one_endpoint_dies() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(60));
    let first = std::sync::Arc::new(Stub::start(|_, _| Reply::Slow(Duration::from_millis(40))));
    let second = Stub::start(|_, _| Reply::Slow(Duration::from_millis(40)));
    let killer = {
        let first = first.clone();
        std::thread::spawn(move || {
            while first.requests() < 6 {
                std::thread::sleep(Duration::from_millis(5));
            }
            first.kill();
        })
    };
    let output = folder.path().join("out");
    let run = rejudge()
        .args([
            "rerank",
            "--quiet",
            "--model",
            "stub-judge",
            "--concurrency",
            "4",
            "--order",
            "chosen-first",
        ])
        .args([
            "--base-url",
            &first.url,
            "--base-url",
            &second.url,
            "--format",
            "jsonl",
        ])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    killer.join().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    exits_with(&run, 0);
    let report = report(&output);
    assert_eq!(
        report["outcomes"]["failed"], 0,
        "no row lost to the dead endpoint"
    );
    assert_eq!(
        report["outcomes"]["kept"].as_u64().unwrap()
            + report["outcomes"]["swapped"].as_u64().unwrap(),
        30
    );
    let endpoints = report["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    assert!(
        endpoints[0]["taken_out"].as_u64().unwrap() >= 1,
        "{endpoints:?}"
    );
    assert!(
        endpoints[1]["requests"].as_u64().unwrap() > endpoints[0]["requests"].as_u64().unwrap()
    );
    assert!(stdout.contains("endpoint http://127.0.0.1:"), "{stdout}");
    // Every answer counted once: the journal holds 45 judgments (the tie rows too).
    assert!(first.requests() + second.requests() >= 45);
}

#[test]
fn a_pool_spreads_requests_by_weight() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(80));
    let heavy = Stub::start(|_, _| Reply::Slow(Duration::from_millis(20)));
    let light = Stub::start(|_, _| Reply::Slow(Duration::from_millis(20)));
    let config = folder.path().join("pool.toml");
    std::fs::write(
        &config,
        format!(
            "model = \"stub-judge\"\norder = \"chosen-first\"\nconcurrency = 8\n\n[[endpoint]]\nurl = \"{}\"\nweight = 3.0\n\n[[endpoint]]\nurl = \"{}\"\nweight = 1.0\n",
            heavy.url, light.url
        ),
    )
    .unwrap();
    let output = folder.path().join("out");
    let run = rejudge()
        .arg("rerank")
        .arg(&input)
        .args(["--quiet", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    exits_with(&run, 0);
    // 60 requests; with 8 in flight the least-loaded pick by weight sends about three to the
    // heavy endpoint for each one to the light one.
    let (h, l) = (heavy.requests() as f64, light.requests() as f64);
    assert_eq!(h + l, 60.0);
    assert!(h / l > 1.8 && h / l < 5.0, "{h} vs {l}");
}

/// The rows of a run folder, every data file in name order (shards in order).
fn all_rows(folder: &std::path::Path) -> Vec<serde_json::Value> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(folder.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

#[test]
fn shards_merged_equal_an_unsharded_run() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(42));
    let stub = Stub::judging();
    let whole = folder.path().join("whole");
    succeeded(&rerank(&input, &whole, &stub.url, &["--format", "jsonl"]));
    let sharded = folder.path().join("sharded");
    for index in [2, 0, 1] {
        let shard = format!("{index}/4");
        succeeded(&rerank(
            &input,
            &sharded,
            &stub.url,
            &["--format", "jsonl", "--shard", &shard],
        ));
    }
    // One shard missing: merge refuses.
    let merge = |folder: &std::path::Path| rejudge().arg("merge").arg(folder).output().unwrap();
    let stderr = exits_with(&merge(&sharded), 1);
    assert!(
        stderr.contains("1 of 4 shards are not finished: 3"),
        "{stderr}"
    );
    // The last shard through the scheduler's environment, as a Slurm array task.
    let run = rejudge()
        .args([
            "rerank",
            "--quiet",
            "--model",
            "stub-judge",
            "--format",
            "jsonl",
            "--shard",
            "auto",
            "--base-url",
        ])
        .arg(&stub.url)
        .arg(&input)
        .arg("--output")
        .arg(&sharded)
        .env("SLURM_ARRAY_TASK_ID", "4")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "4")
        .output()
        .unwrap();
    succeeded(&run);
    assert!(sharded.join("data/train-00003-of-00004.jsonl").exists());
    let merged = merge(&sharded);
    let stdout = exits_with(&merged, 0);
    assert!(
        String::from_utf8_lossy(&merged.stdout).contains("merged 4 shards"),
        "{stdout}"
    );
    assert_eq!(
        all_rows(&sharded),
        all_rows(&whole),
        "the same rows, in the same order, with the same verdicts"
    );
    let (one, many) = (report(&whole), report(&sharded));
    for key in ["rows", "outcomes", "positions", "mean_scores"] {
        assert_eq!(one[key], many[key], "{key}");
    }
    assert_eq!(many["files"].as_array().unwrap().len(), 4);
    for published in ["README.md", "review.html", "plots/outcomes.png"] {
        assert!(sharded.join(published).exists(), "{published}");
    }
    let loaded = python(
        "import sys, json, datasets\nd = datasets.load_dataset(sys.argv[1], split='train')\nprint(json.dumps({'rows': d.num_rows}))",
        &[&sharded],
    );
    assert_eq!(loaded["rows"], 42, "the folder loads as one split");

    // A shard judged with other settings is refused.
    let odd = folder.path().join("odd");
    for (index, seed) in [(0, "0"), (1, "7")] {
        let shard = format!("{index}/2");
        succeeded(&rerank(
            &input,
            &odd,
            &stub.url,
            &["--format", "jsonl", "--shard", &shard, "--seed", seed],
        ));
    }
    let stderr = exits_with(&merge(&odd), 1);
    assert!(
        stderr.contains("shard 00001-of-00002 was judged with other judges or settings"),
        "{stderr}"
    );
}
