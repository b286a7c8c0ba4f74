//! What users read, pinned: the help texts and the one-line errors for bad input.

use crate::support::*;

fn stdout(arguments: &[&str]) -> String {
    let output = rejudge().args(arguments).output().unwrap();
    succeeded(&output);
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("help", stdout(&["--help"]));
    insta::assert_snapshot!("rerank_help", stdout(&["rerank", "--help"]));
    insta::assert_snapshot!("eval_help", stdout(&["eval", "--help"]));
    insta::assert_snapshot!("push_help", stdout(&["push", "--help"]));
}

/// The error for each malformed input, with the temporary folder written as `[TMP]`.
#[test]
fn input_errors() {
    let folder = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 12] = [
        (
            "broken.jsonl",
            b"{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{oops\n",
        ),
        ("scalar.jsonl", b"42\n"),
        ("object.json", b"{\"prompt\": \"a\"}"),
        ("fake.parquet", b"PAR1 this is not parquet"),
        ("ragged.csv", b"prompt,chosen,rejected\na,b,c\nd,e\n"),
        ("tabs.csv", b"prompt\tchosen\trejected\na\tb\tc\n"),
        ("twice.csv", b"prompt,chosen,chosen\na,b,c\n"),
        ("data.txt", b"hello"),
        ("empty.jsonl", b""),
        (
            "columns.jsonl",
            b"{\"query\": \"q\", \"good\": \"a\", \"bad\": \"b\"}\n",
        ),
        (
            "earlier.jsonl",
            b"{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\", \"outcome\": \"kept\"}\n",
        ),
        ("missing.jsonl", b""),
    ];
    let mut transcript = String::new();
    for (name, contents) in cases {
        let input = folder.path().join(name);
        if name != "missing.jsonl" {
            std::fs::write(&input, contents).unwrap();
        }
        let stderr = Rerank::new(&input).judge("http://127.0.0.1:9/v1").fails();
        transcript.push_str(&format!("$ rejudge rerank {name}\n{stderr}\n"));
    }
    let temporary = folder.path().display().to_string();
    insta::with_settings!({filters => vec![(regex_escape(&temporary).as_str(), "[TMP]")]}, {
        insta::assert_snapshot!("input_errors", transcript);
    });
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
