//! Settings: a config file with the flags' keys, layered under the flags; every run writes its
//! settings to `OUTPUT/rejudge.toml`, and `--config` on that file repeats the run. Input
//! problems that settings and columns can cause are refused before any call.

use crate::stub::Stub;
use crate::support::*;

#[test]
fn the_written_config_repeats_the_run() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(12));
    let stub = Stub::judging();
    let output = folder.path().join("out");
    Rerank::new(&input)
        .judge(&stub.url)
        .output(&output)
        .args(&["--order", "both", "--tie-margin", "0.5", "--limit", "8"])
        .succeeds();
    let sent = stub.requests();
    assert_eq!(sent, 12, "6 judgeable rows of the first 8, in both orders");
    let config = std::fs::read_to_string(output.join("rejudge.toml")).unwrap();
    for line in [
        "order = \"both\"",
        "tie-margin = 0.5",
        "limit = 8",
        "model = \"stub-judge\"",
    ] {
        assert!(config.contains(line), "{config}");
    }
    assert!(!config.contains("api-key ="), "{config}");

    let again = rejudge()
        .current_dir(std::env::current_dir().unwrap())
        .args(["rerank", "--quiet", "--config"])
        .arg(output.join("rejudge.toml"))
        .output()
        .unwrap();
    succeeded(&again);
    assert_eq!(
        stub.requests(),
        sent,
        "the repeat is served from the journal"
    );
    assert_eq!(report(&output)["rows"], 8);
}

#[test]
fn flags_win_over_the_config_file_and_unknown_keys_are_refused() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let stub = Stub::judging();
    let config = folder.path().join("rejudge.toml");
    std::fs::write(
        &config,
        format!(
            "base-url = \"{}\"\nmodel = \"stub-judge\"\nlimit = 2\n",
            stub.url
        ),
    )
    .unwrap();
    let output = folder.path().join("out");
    Rerank::new(&input)
        .output(&output)
        .args(&["--config", config.to_str().unwrap(), "--limit", "4"])
        .succeeds();
    assert_eq!(report(&output)["rows"], 4);

    std::fs::write(&config, "concurency = 4\n").unwrap();
    let stderr = Rerank::new(&input)
        .args(&["--config", config.to_str().unwrap()])
        .fails();
    assert!(stderr.contains("unknown field `concurency`"), "{stderr}");
    assert!(stderr.contains("rejudge.toml"), "{stderr}");
}

#[test]
fn numeric_flags_are_checked() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(4));
    for (flag, value) in [
        ("--timeout", "inf"),
        ("--timeout", "0"),
        ("--tie-margin", "-1"),
        ("--temperature", "NaN"),
        ("--concurrency", "0"),
    ] {
        let stderr = Rerank::new(&input)
            .judge("http://127.0.0.1:9/v1")
            .args(&[flag, value])
            .fails();
        assert!(
            stderr.contains(&format!("{flag} ")),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn a_duplicated_csv_header_and_reserved_column_names_are_refused() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::judging();
    let csv = folder.path().join("twice.csv");
    std::fs::write(&csv, "prompt,chosen,rejected,chosen\np,a,b,c\n").unwrap();
    let stderr = Rerank::new(&csv).judge(&stub.url).fails();
    assert!(
        stderr.contains("twice.csv: the column name \"chosen\" appears twice"),
        "{stderr}"
    );

    let earlier = folder.path().join("earlier.jsonl");
    write_jsonl(
        &earlier,
        &[
            serde_json::json!({"prompt": "p", "chosen": "a", "rejected": "b", "outcome": "kept", "chosen_score": 4}),
        ],
    );
    let stderr = Rerank::new(&earlier).judge(&stub.url).fails();
    assert!(
        stderr.contains("the input already has the columns outcome, chosen_score"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(stub.requests(), 0);
}
