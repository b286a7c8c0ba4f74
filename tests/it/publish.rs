//! What an output folder publishes: a card that `huggingface_hub` and `datasets` read (its
//! declared features equal the data's), real PNG plots, and a review page that works in a real
//! headless Chromium with no network.

use crate::stub::Stub;
use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Loads the folder as the Hub would: the card through `huggingface_hub`, the data through
/// `datasets`, and compares the card's features with the data's.
fn load_as_hub_dataset(folder: &Path) -> Value {
    python(
        "import sys, json, datasets\n\
         from huggingface_hub import DatasetCard\n\
         card = DatasetCard.load(sys.argv[1] + '/README.md')\n\
         data = card.data.to_dict()\n\
         ds = datasets.load_dataset(sys.argv[1], split='train')\n\
         info = data['dataset_info']\n\
         declared = datasets.Features._from_yaml_list(info['features']) if 'features' in info else None\n\
         print(json.dumps({'rows': ds.num_rows, 'columns': ds.column_names,\n\
             'features_declared': declared is not None, 'same_features': declared == ds.features,\n\
             'configs': data['configs'], 'language': data['language'], 'tags': data['tags'],\n\
             'num_examples': info['splits'][0]['num_examples'], 'text': card.text}))",
        &[folder],
    )
}

/// The width and height in a PNG's header, after checking its signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let number = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

#[test]
fn the_card_loads_with_its_features_and_the_plots_are_pngs() {
    let folder = tempfile::tempdir().unwrap();
    let stub = Stub::judging();
    // A ShareGPT file: lists of structs and structs, the types the card's features must spell.
    let sharegpt = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dpo_en_demo_40.json");
    let output = folder.path().join("sharegpt");
    succeeded(&rerank(&sharegpt, &output, &stub.url, &["--limit", "8"]));
    let loaded = load_as_hub_dataset(&output);
    assert_eq!(loaded["rows"], 8);
    assert_eq!(loaded["num_examples"], 8);
    assert_eq!(loaded["features_declared"], true);
    assert_eq!(loaded["same_features"], true, "{loaded}");
    assert_eq!(loaded["language"], json!(["en"]));
    assert!(loaded["tags"].as_array().unwrap().contains(&json!("dpo")));

    let input = folder.path().join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(12));
    let output = folder.path().join("jsonl");
    succeeded(&rerank(&input, &output, &stub.url, &["--format", "jsonl"]));
    let loaded = load_as_hub_dataset(&output);
    assert_eq!(loaded["rows"], 12);
    assert_eq!(loaded["same_features"], true, "{loaded}");
    assert_eq!(
        loaded["configs"][0]["data_files"][0]["path"],
        "data/train.jsonl"
    );
    let text = loaded["text"].as_str().unwrap();
    for section in [
        "## How the pairs were judged",
        "## Outcomes",
        "## Position and length",
        "## Repeat it",
    ] {
        assert!(text.contains(section), "{section} in {text}");
    }
    for plot in ["outcomes", "scores", "margins", "swap-rate"] {
        let path = output.join("plots").join(format!("{plot}.png"));
        let (width, height) = png_size(&path);
        assert!(width >= 800 && height >= 400, "{plot}: {width}x{height}");
        assert!(
            text.contains(&format!("(plots/{plot}.png)")),
            "the card embeds {plot}"
        );
    }
    // The margin plot of the pairwise protocol is drawn on its own scale.
    let output = folder.path().join("pairwise");
    succeeded(&rerank(
        &input,
        &output,
        &stub.url,
        &["--mode", "pairwise", "--scoring", "logprobs"],
    ));
    assert!(output.join("plots/margins.png").exists());
    assert!(
        !output.join("plots/scores.png").exists(),
        "no scores to draw under the pairwise protocol"
    );
}

fn browser_folder() -> PathBuf {
    let folder = std::env::var("REJUDGE_BROWSER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/rejudge/browser")
        });
    assert!(
        folder.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing in {}\nhint: run scripts/chromium.sh (scripts/test.sh does)",
        folder.display()
    );
    folder
}

/// Rows of the review page that a filter and a search leave visible, counted from the data.
fn visible(rows: &[Value], outcomes: &[&str], query: &str) -> usize {
    rows.iter()
        .filter(|row| outcomes.contains(&row["outcome"].as_str().unwrap()))
        .filter(|row| {
            let fields = [
                "prompt",
                "chosen",
                "rejected",
                "chosen_rationale",
                "rejected_rationale",
                "failure_reason",
            ];
            fields
                .iter()
                .filter_map(|f| row[*f].as_str())
                .any(|text| text.to_lowercase().contains(query))
                || query.is_empty()
        })
        .count()
}

#[test]
fn the_review_page_works_in_headless_chromium_without_network() {
    let browser = browser_folder();
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("pairs.jsonl");
    let mut rows = keyword_rows(12);
    let probe = "<img src=x onerror=\"window.__pwned=1\"></script><b>zebra</b>";
    rows[1]["rejected"] = json!(format!("a good answer {probe}"));
    write_jsonl(&input, &rows);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    succeeded(&rerank(&input, &output, &stub.url, &["--format", "jsonl"]));
    let page = output.join("review.html");
    let written = jsonl_output(&output);
    let review_rows: Vec<Value> = written
        .iter()
        .zip(&rows)
        .map(|(out, original)| {
            json!({"outcome": out["outcome"], "prompt": original["prompt"], "chosen": out["chosen"],
                   "rejected": out["rejected"], "chosen_rationale": out["chosen_rationale"],
                   "rejected_rationale": out["rejected_rationale"], "failure_reason": out["failure_reason"]})
        })
        .collect();
    let expect = json!({
        "default_visible": visible(&review_rows, &["swapped", "tie"], ""),
        "after_toggle": {"outcome": "kept", "visible": visible(&review_rows, &["swapped", "tie", "kept"], "")},
        "search": {"text": "zebra", "visible": visible(&review_rows, &["swapped", "tie", "kept"], "zebra")},
        "rows_in_file": 12,
        "notices": 0,
        "literal_texts": [probe],
    });
    assert_eq!(
        expect["search"]["visible"], 1,
        "the probe row is swapped and holds the word"
    );
    let expect_path = folder.path().join("expect.json");
    std::fs::write(&expect_path, expect.to_string()).unwrap();
    let shot = folder.path().join("review.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/review.mjs");
    let run = Command::new("node")
        .arg(&script)
        .arg(&page)
        .arg(&expect_path)
        .arg(&shot)
        .env("REJUDGE_BROWSER_DIR", &browser)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the review page failed in Chromium:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (width, _) = png_size(&shot);
    assert!(width >= 1000, "a screenshot was taken");
}
