//! The Hugging Face Hub, against tests/hub/fake_hub.py (a local stand-in that speaks the Hub's
//! HTTP API) and a cache shared with the real `huggingface_hub` client: `hf://` inputs in three
//! layouts, offline reruns, resumed downloads, pushes in one commit, and where the token goes.

use crate::stub::Stub;
use crate::support::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The only token the fake Hub accepts.
const TOKEN: &str = "hf_rejudge_test_token_5f2c9d";

fn fake_hub_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub/fake_hub.py")
}

/// A running fake Hub; killed when dropped.
struct FakeHub {
    child: Child,
    url: String,
}

impl FakeHub {
    /// Starts the server on a free port; it prints its address once it listens.
    fn start(root: &Path, extra: &[&str]) -> FakeHub {
        let mut child = Command::new("python3")
            .arg(fake_hub_script())
            .arg("--root")
            .arg(root)
            .args(["--token", TOKEN])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the fake Hub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        assert!(url.starts_with("http://"), "the fake Hub printed {line:?}");
        FakeHub { child, url }
    }

    /// One request to the server; the status and the JSON body (null when not JSON).
    fn http(&self, method: &str, path: &str, body: Option<&Value>, token: bool) -> (u16, Value) {
        let host = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = if token {
            format!("Authorization: Bearer {TOKEN}\r\n")
        } else {
            String::new()
        };
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Every request so far (the test hooks' own excepted).
    fn log(&self) -> Vec<Value> {
        self.http("GET", "/_fake/log", None, false)
            .1
            .as_array()
            .unwrap()
            .clone()
    }

    fn clear_log(&self) {
        self.http("DELETE", "/_fake/log", None, false);
    }

    fn fail(&self, rule: &Value) {
        assert_eq!(self.http("POST", "/_fake/fail", Some(rule), false).0, 200);
    }

    fn disarm(&self) {
        self.http("DELETE", "/_fake/fail", None, false);
    }

    /// The commits of a dataset repository's branch, newest first.
    fn commits(&self, repo: &str, branch: &str) -> Vec<Value> {
        let (status, commits) = self.http(
            "GET",
            &format!("/api/datasets/{repo}/commits/{branch}"),
            None,
            true,
        );
        assert_eq!(status, 200, "{commits}");
        commits.as_array().unwrap().clone()
    }

    /// The file paths of a dataset repository's branch.
    fn files(&self, repo: &str, branch: &str) -> Vec<String> {
        let path = format!("/api/datasets/{repo}/tree/{branch}?recursive=true");
        let (status, tree) = self.http("GET", &path, None, true);
        assert_eq!(status, 200, "{tree}");
        let mut files: Vec<String> = tree
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["type"] == "file")
            .map(|entry| entry["path"].as_str().unwrap().to_owned())
            .collect();
        files.sort();
        files
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Imports `files` as one commit of a dataset repository (the server may be running).
fn seed(root: &Path, repo: &str, files: &[(&str, Vec<u8>)], extra: &[&str]) {
    let folder = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = folder.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let status = Command::new("python3")
        .arg(fake_hub_script())
        .args(["seed", "--root"])
        .arg(root)
        .args(["--repo", repo, "--from"])
        .arg(folder.path())
        .args(extra)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "seeding {repo}");
}

fn jsonl(rows: &[Value]) -> Vec<u8> {
    rows.iter()
        .map(|row| format!("{row}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Rows as a Parquet file, written by pyarrow.
fn parquet(rows: &[Value]) -> Vec<u8> {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("rows.parquet");
    let source = folder.path().join("rows.json");
    std::fs::write(&source, Value::from(rows.to_vec()).to_string()).unwrap();
    python(
        "import json, sys, pyarrow as pa, pyarrow.parquet as pq\n\
         pq.write_table(pa.Table.from_pylist(json.load(open(sys.argv[1]))), sys.argv[2])\n\
         print('{}')",
        &[&source, &path],
    );
    std::fs::read(path).unwrap()
}

/// Where a test keeps the fake Hub's repositories, the Hugging Face home and cache, and its
/// output folders.
struct Place {
    folder: tempfile::TempDir,
    /// A cache named by `HF_HUB_CACHE` rather than found under `HF_HOME`.
    hub_cache: Option<PathBuf>,
}

impl Place {
    fn new() -> Place {
        Place {
            folder: tempfile::tempdir().unwrap(),
            hub_cache: None,
        }
    }

    /// A place whose cache is named by `HF_HUB_CACHE`, outside `HF_HOME`.
    fn with_hub_cache() -> Place {
        let mut place = Place::new();
        place.hub_cache = Some(place.path("elsewhere/cache"));
        place
    }

    fn root(&self) -> PathBuf {
        self.folder.path().join("hub-root")
    }

    fn home(&self) -> PathBuf {
        self.folder.path().join("hf-home")
    }

    fn cache(&self) -> PathBuf {
        self.hub_cache
            .clone()
            .unwrap_or_else(|| self.home().join("hub"))
    }

    /// Sets or removes `HF_HUB_CACHE` for a command, as this place has it.
    fn cache_variable(&self, command: &mut Command) {
        match &self.hub_cache {
            Some(cache) => command.env("HF_HUB_CACHE", cache),
            None => command.env_remove("HF_HUB_CACHE"),
        };
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// `rejudge ARGUMENTS` pointed at `endpoint`, with this place's Hugging Face home, and
    /// nothing of the machine's own Hugging Face settings.
    fn rejudge(&self, endpoint: &str, arguments: &[&str]) -> Command {
        let mut command = rejudge();
        command
            .args(arguments)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HOME", self.home())
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN_PATH")
            .current_dir(self.folder.path());
        self.cache_variable(&mut command);
        command
    }

    /// Runs huggingface_hub code with `sys.argv[1:]` = `arguments` against `endpoint` and
    /// this place's cache; parses what it prints as JSON.
    fn python(&self, endpoint: &str, code: &str, arguments: &[&str]) -> Value {
        let mut command = Command::new("python3");
        command
            .arg("-c")
            .arg(code)
            .args(arguments)
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HOME", self.home())
            .env("HF_TOKEN", TOKEN)
            .env("HF_HUB_DISABLE_XET", "1")
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env("HF_DATASETS_CACHE", self.path("datasets-cache"))
            .env_remove("HF_HUB_OFFLINE");
        self.cache_variable(&mut command);
        let output = command.output().expect("python3 runs");
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("python printed {stdout:?}: {e}"))
    }
}

fn run(mut command: Command) -> Output {
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sha256(path: &Path) -> String {
    sha256_of(&std::fs::read(path).unwrap())
}

fn sha256_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `folder`, following no links.
fn walk(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found
}

fn assert_no_token_in(folder: &Path) {
    for file in walk(folder) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "{} holds the token",
            file.display()
        );
    }
}

/// The rows of an output folder's Parquet file, by id.
fn ids_and_outcomes(output: &Path) -> Vec<(u64, String)> {
    read_parquet(&parquet_output(output))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["id"].as_u64().unwrap(),
                row["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected(ids: std::ops::Range<u64>) -> Vec<(u64, String)> {
    ids.map(|id| {
        (
            id,
            ["kept", "swapped", "tie", "invalid"][(id % 4) as usize].to_owned(),
        )
    })
    .collect()
}

const CARD: &str = "---
license: mit
configs:
- config_name: default
  default: true
  data_files:
  - split: train
    path: data/train-*   # two shards
  - split: test
    path: data/test-*
- config_name: extra
  data_files:
  - split: validation
    path: [\"extra/*.jsonl\"]
---
# Pairs
";

const HF_HUB_FINDS: &str = r"
import json, sys
from huggingface_hub import hf_hub_download, scan_cache_dir
paths = {}
for name in sys.argv[3:]:
    paths[name] = hf_hub_download(sys.argv[1], name, repo_type='dataset', revision=sys.argv[2], local_files_only=True)
info = scan_cache_dir()
repos = {r.repo_id: r.nb_files for r in info.repos}
print(json.dumps({'paths': paths, 'repos': repos, 'warnings': [str(w) for w in info.warnings]}))
";

#[test]
fn a_card_configs_dataset_is_read_into_the_shared_cache_and_again_offline() {
    let place = Place::new();
    let rows = keyword_rows(12);
    seed(
        &place.root(),
        "org/prefs",
        &[
            ("README.md", CARD.as_bytes().to_vec()),
            ("data/train-00000-of-00002.jsonl", jsonl(&rows[..5])),
            ("data/train-00001-of-00002.jsonl", jsonl(&rows[5..8])),
            ("data/test-00000-of-00001.jsonl", jsonl(&rows[8..])),
            ("extra/more.jsonl", jsonl(&rows[..4])),
        ],
        &[],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let stub = Stub::judging();
    let output = place.path("train");
    let address = "hf://datasets/org/prefs";
    let mut first = place.rejudge(&hub.url, &["rerank", address, "--quiet"]);
    first
        .args(["--base-url", &stub.url, "--model", "stub-judge", "--output"])
        .arg(&output);
    let first = run(first);
    succeeded(&first);
    assert_eq!(
        ids_and_outcomes(&output),
        expected(0..8),
        "both shards, in order"
    );
    assert_eq!(report(&output)["input"], address);
    let card = std::fs::read_to_string(output.join("README.md")).unwrap();
    assert!(
        card.contains("source_datasets:\n- \"org/prefs\"\n"),
        "the card links its source: {card}"
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("subset default, split train, 2 files"),
        "{stderr}"
    );

    let repo = place.cache().join("datasets--org--prefs");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    let shard = repo
        .join("snapshots")
        .join(&commit)
        .join("data/train-00000-of-00002.jsonl");
    let target = std::fs::read_link(&shard).expect("the snapshot holds a link");
    assert!(
        target.starts_with("../../../blobs/"),
        "{}",
        target.display()
    );
    let found = place.python(
        &hub.url,
        HF_HUB_FINDS,
        &[
            "org/prefs",
            "main",
            "README.md",
            "data/train-00000-of-00002.jsonl",
            "data/train-00001-of-00002.jsonl",
        ],
    );
    assert_eq!(
        found["paths"]["data/train-00000-of-00002.jsonl"],
        shard.to_str().unwrap()
    );
    assert_eq!(found["repos"]["org/prefs"], 3, "{found}");
    assert_eq!(found["warnings"], json!([]));

    // Another subset and split, then the server goes away: the cache alone serves it.
    let extra = place.path("extra");
    let mut other = place.rejudge(
        &hub.url,
        &[
            "rerank",
            address,
            "--quiet",
            "--subset",
            "extra",
            "--split",
            "validation",
        ],
    );
    other
        .args(["--base-url", &stub.url, "--model", "stub-judge", "--output"])
        .arg(&extra);
    succeeded(&run(other));
    assert_eq!(ids_and_outcomes(&extra), expected(0..4));
    let endpoint = hub.url.clone();
    drop(hub);
    let offline = place.path("offline");
    let mut again = place.rejudge(&endpoint, &["rerank", address, "--quiet", "--output"]);
    again
        .arg(&offline)
        .args(["--base-url", &stub.url, "--model", "stub-judge"])
        .env("HF_HUB_OFFLINE", "1");
    succeeded(&run(again));
    assert_eq!(ids_and_outcomes(&offline), expected(0..8));

    // The test split was never downloaded: offline, it is not there.
    let labelled = place.path("eval");
    let eval = || {
        let mut eval = place.rejudge(&endpoint, &["eval", address, "--quiet", "--split", "test"]);
        eval.arg("--output")
            .arg(&labelled)
            .args(["--base-url", &stub.url, "--model", "stub-judge"])
            .env("HF_HUB_OFFLINE", "1");
        eval
    };
    let uncached = exits_with(&run(eval()), 1);
    assert!(
        uncached.contains("not in the Hugging Face cache"),
        "{uncached}"
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let mut online = eval();
    online
        .env("HF_ENDPOINT", &hub.url)
        .env_remove("HF_HUB_OFFLINE");
    succeeded(&run(online));
    assert!(labelled.join("eval.json").is_file());
    assert_eq!(report(&labelled)["input"], address);
}

#[test]
fn sharded_parquet_without_a_card_is_read_page_by_page_and_named_after_the_dataset() {
    let place = Place::with_hub_cache();
    let rows = keyword_rows(10);
    seed(
        &place.root(),
        "org/sharded",
        &[
            ("data/train-00000-of-00002.parquet", parquet(&rows[..6])),
            ("data/train-00001-of-00002.parquet", parquet(&rows[6..8])),
            ("data/test-00000-of-00001.parquet", parquet(&rows[8..])),
        ],
        &[],
    );
    // Two entries per page: the listing takes several pages.
    let hub = FakeHub::start(&place.root(), &["--page-size", "2"]);
    let stub = Stub::judging();
    let mut command = place.rejudge(
        &hub.url,
        &["rerank", "hf://datasets/org/sharded", "--quiet"],
    );
    command.args(["--base-url", &stub.url, "--model", "stub-judge"]);
    succeeded(&run(command));
    let output = place.path("sharded-rejudged");
    assert_eq!(ids_and_outcomes(&output), expected(0..8));
    let pages = hub
        .log()
        .iter()
        .filter(|entry| entry["path"].as_str().unwrap().contains("/tree/"))
        .count();
    assert!(pages >= 3, "{pages} pages");
    let commit =
        std::fs::read_to_string(place.cache().join("datasets--org--sharded/refs/main")).unwrap();
    let found = place.python(
        &hub.url,
        HF_HUB_FINDS,
        &[
            "org/sharded",
            &commit,
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
        ],
    );
    assert_eq!(found["warnings"], json!([]));
}

#[test]
fn a_dataset_with_only_the_parquet_conversion_is_read_from_it() {
    let place = Place::new();
    let rows = keyword_rows(8);
    seed(
        &place.root(),
        "org/scripted",
        &[(
            "scripted.py",
            b"# a loading script rejudge cannot run\n".to_vec(),
        )],
        &[],
    );
    seed(
        &place.root(),
        "org/scripted",
        &[
            ("default/train/0000.parquet", parquet(&rows[..3])),
            ("default/train/0001.parquet", parquet(&rows[3..])),
        ],
        &["--branch", "refs/convert/parquet"],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let stub = Stub::judging();
    let output = place.path("out");
    let mut command = place.rejudge(
        &hub.url,
        &[
            "rerank",
            "hf://datasets/org/scripted",
            "--quiet",
            "--output",
        ],
    );
    command
        .arg(&output)
        .args(["--base-url", &stub.url, "--model", "stub-judge"]);
    let ran = run(command);
    succeeded(&ran);
    assert!(String::from_utf8_lossy(&ran.stderr).contains("the Hub's Parquet conversion"));
    assert_eq!(ids_and_outcomes(&output), expected(0..8));
    let found = place.python(
        &hub.url,
        HF_HUB_FINDS,
        &[
            "org/scripted",
            "refs/convert/parquet",
            "default/train/0000.parquet",
            "default/train/0001.parquet",
        ],
    );
    assert_eq!(found["warnings"], json!([]));
    let endpoint = hub.url.clone();
    drop(hub);
    let offline = place.path("offline");
    let mut again = place.rejudge(
        &endpoint,
        &[
            "rerank",
            "hf://datasets/org/scripted",
            "--quiet",
            "--output",
        ],
    );
    again
        .arg(&offline)
        .args(["--base-url", &stub.url, "--model", "stub-judge"])
        .env("HF_HUB_OFFLINE", "1");
    succeeded(&run(again));
    assert_eq!(ids_and_outcomes(&offline), expected(0..8));
}

#[test]
fn a_download_cut_half_way_resumes_with_a_range_request() {
    let place = Place::new();
    let data = parquet(&keyword_rows(16));
    let half = data.len() / 2;
    seed(
        &place.root(),
        "org/big",
        &[("data/train-00000-of-00001.parquet", data.clone())],
        &[],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    hub.fail(&json!({"path": "^/_fake/cdn/", "method": "GET", "truncate": half, "times": 1}));
    let stub = Stub::judging();
    let output = place.path("out");
    let mut command = place.rejudge(
        &hub.url,
        &["rerank", "hf://datasets/org/big", "--quiet", "--output"],
    );
    command
        .arg(&output)
        .args(["--base-url", &stub.url, "--model", "stub-judge"]);
    succeeded(&run(command));
    assert_eq!(ids_and_outcomes(&output).len(), 16);
    let downloads: Vec<Value> = hub
        .log()
        .into_iter()
        .filter(|entry| {
            entry["path"].as_str().unwrap().starts_with("/_fake/cdn/") && entry["method"] == "GET"
        })
        .collect();
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    assert_eq!(downloads[0]["sent"], half);
    assert_eq!(downloads[1]["range"], format!("bytes={half}-"));
    assert_eq!(downloads[1]["status"], 206);
    let blobs = place.cache().join("datasets--org--big/blobs");
    let names: Vec<String> = std::fs::read_dir(blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let digest = sha256_of(&data);
    assert!(
        names.contains(&digest),
        "the blob is named by its SHA-256: {names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with(".incomplete")));
}

#[test]
fn the_token_reaches_the_hub_and_nothing_else() {
    let place = Place::new();
    seed(
        &place.root(),
        "org/private",
        &[(
            "data/train-00000-of-00001.parquet",
            parquet(&keyword_rows(4)),
        )],
        &["--private"],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let stub = Stub::judging();
    let address = "hf://datasets/org/private";
    let judged = |extra: &[&str], token: Option<&str>| {
        let mut command = place.rejudge(&hub.url, &["rerank", address, "--quiet"]);
        command
            .args(["--base-url", &stub.url, "--model", "stub-judge"])
            .args(extra);
        if let Some(token) = token {
            command.env("HF_TOKEN", token);
        }
        run(command)
    };
    let anonymous = exits_with(&judged(&["--output", "a"], None), 1);
    assert!(
        anonymous.contains("HTTP 401") && anonymous.contains("hint: the repository may be private"),
        "{anonymous}"
    );
    let wrong = exits_with(
        &judged(&["--output", "b"], Some("hf_not_the_right_token_000")),
        1,
    );
    assert!(wrong.contains("refused the token"), "{wrong}");
    assert!(!wrong.contains("hf_not_the_right_token_000"), "{wrong}");

    hub.clear_log();
    let ran = judged(&["--output", "c"], Some(TOKEN));
    succeeded(&ran);
    let log = hub.log();
    let (cdn, on_hub): (Vec<&Value>, Vec<&Value>) = log
        .iter()
        .partition(|entry| entry["path"].as_str().unwrap().starts_with("/_fake/cdn/"));
    assert!(
        !cdn.is_empty() && cdn.iter().all(|entry| entry["authorized"] == false),
        "{cdn:?}"
    );
    assert!(
        cdn.iter()
            .all(|entry| entry["host"].as_str().unwrap().starts_with("localhost:"))
    );
    assert!(
        on_hub.iter().all(|entry| entry["authorized"] == true),
        "{on_hub:?}"
    );
    for text in [
        stdout(&ran),
        String::from_utf8_lossy(&ran.stderr).into_owned(),
    ] {
        assert!(!text.contains(TOKEN));
    }
    assert_no_token_in(&place.path("c"));
    assert_no_token_in(&place.cache());

    // With the token in a variable of the user's choosing.
    let mut named = place.rejudge(
        &hub.url,
        &[
            "rerank",
            address,
            "--quiet",
            "--output",
            "d",
            "--hf-token-env",
            "MY_HUB_TOKEN",
        ],
    );
    named
        .args(["--base-url", &stub.url, "--model", "stub-judge"])
        .env("MY_HUB_TOKEN", TOKEN);
    succeeded(&run(named));
    let settings = std::fs::read_to_string(place.path("d").join("rejudge.toml")).unwrap();
    assert!(
        settings.contains("hf-token-env = \"MY_HUB_TOKEN\""),
        "{settings}"
    );
    assert_no_token_in(&place.path("d"));
}

#[test]
fn missing_subsets_splits_and_cache_entries_say_what_there_is() {
    let place = Place::new();
    let rows = keyword_rows(4);
    seed(
        &place.root(),
        "org/prefs",
        &[
            ("README.md", CARD.as_bytes().to_vec()),
            ("data/train-00000-of-00001.jsonl", jsonl(&rows)),
        ],
        &[],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let stub = Stub::judging();
    let fails = |arguments: &[&str], offline: bool| {
        let mut command = place.rejudge(&hub.url, arguments);
        command.args(["--quiet", "--base-url", &stub.url, "--model", "stub-judge"]);
        if offline {
            command.env("HF_HUB_OFFLINE", "1");
        }
        exits_with(&run(command), 1)
    };
    let split = fails(
        &[
            "rerank",
            "hf://datasets/org/prefs",
            "--split",
            "nope",
            "-o",
            "x",
        ],
        false,
    );
    assert!(
        split.contains("subset default has no split nope"),
        "{split}"
    );
    assert!(
        split.contains("subset default: train, test") && split.contains("subset extra: validation"),
        "{split}"
    );
    assert!(split.contains("hint: choose one with --subset"), "{split}");
    let subset = fails(
        &[
            "rerank",
            "hf://datasets/org/prefs",
            "--subset",
            "nope",
            "-o",
            "x",
        ],
        false,
    );
    assert!(subset.contains("declares no subset nope"), "{subset}");
    let anonymous = fails(&["rerank", "hf://datasets/org/absent", "-o", "x"], false);
    assert!(
        anonymous.contains("HTTP 401") && anonymous.contains("set HF_TOKEN"),
        "{anonymous}"
    );
    let mut with_token = place.rejudge(
        &hub.url,
        &["rerank", "hf://datasets/org/absent", "-o", "x", "--quiet"],
    );
    with_token
        .args(["--base-url", &stub.url, "--model", "stub-judge"])
        .env("HF_TOKEN", TOKEN);
    let missing = exits_with(&run(with_token), 1);
    assert!(
        missing.contains("HTTP 404") && missing.contains("hint: check the repository's name"),
        "{missing}"
    );
    let revision = fails(&["rerank", "hf://datasets/org/prefs@v9", "-o", "x"], false);
    assert!(
        revision.contains("RevisionNotFound") || revision.contains("revision after @"),
        "{revision}"
    );
    let uncached = fails(&["rerank", "hf://datasets/org/other", "-o", "x"], true);
    assert!(
        uncached.contains("not in the Hugging Face cache") && uncached.contains("HF_HUB_OFFLINE"),
        "{uncached}"
    );
    let address = fails(&["rerank", "hf://org/prefs", "-o", "x"], false);
    assert!(address.contains("only datasets can be read"), "{address}");
    let local = fails(
        &["rerank", "pairs.jsonl", "--split", "test", "-o", "x"],
        false,
    );
    assert!(
        local.contains("--subset and --split choose the files of an hf://"),
        "{local}"
    );
    let offline_push = fails(
        &[
            "rerank",
            "hf://datasets/org/prefs",
            "-o",
            "x",
            "--push-to-hub",
            "org/out",
        ],
        true,
    );
    assert!(offline_push.contains("needs the network"), "{offline_push}");
    let tokenless = fails(
        &[
            "rerank",
            "hf://datasets/org/prefs",
            "-o",
            "x",
            "--push-to-hub",
            "org/out",
        ],
        false,
    );
    assert!(tokenless.contains("needs a Hub token"), "{tokenless}");
    assert_eq!(
        stub.requests(),
        0,
        "no row was judged before a push that cannot happen"
    );
}

/// A finished run's output folder, judged from a local file.
fn finished_run(place: &Place, stub: &Stub, name: &str) -> PathBuf {
    let input = place.path("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let output = place.path(name);
    succeeded(&rerank(&input, &output, &stub.url, &[]));
    output
}

const DOWNLOAD_BACK: &str = r"
import hashlib, json, sys
from huggingface_hub import hf_hub_download
digests = {}
for name in sys.argv[4:]:
    path = hf_hub_download(sys.argv[1], name, repo_type='dataset', revision=sys.argv[2], cache_dir=sys.argv[3])
    digests[name] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
print(json.dumps(digests))
";

#[test]
fn push_to_hub_makes_one_commit_that_huggingface_hub_and_datasets_read_back() {
    let place = Place::new();
    // Small parts, so the Parquet file goes up as a multipart upload.
    let hub = FakeHub::start(&place.root(), &["--multipart-chunk", "2048"]);
    let stub = Stub::judging();
    let input = place.path("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(8));
    let output = place.path("out");
    let mut command = place.rejudge(&hub.url, &["rerank"]);
    command.arg(&input).args([
        "--quiet",
        "--base-url",
        &stub.url,
        "--model",
        "stub-judge",
        "--output",
    ]);
    command
        .arg(&output)
        .args(["--push-to-hub", "org/out", "--private"])
        .env("HF_TOKEN", TOKEN);
    let ran = run(command);
    succeeded(&ran);
    assert!(
        stdout(&ran).contains("pushed 5 files to"),
        "{}",
        stdout(&ran)
    );
    assert!(!stdout(&ran).contains(TOKEN) && !String::from_utf8_lossy(&ran.stderr).contains(TOKEN));

    assert_eq!(
        hub.commits("org/out", "main").len(),
        2,
        "the repository's first commit and ours"
    );
    let log = hub.log();
    let commits = log
        .iter()
        .filter(|e| e["method"] == "POST" && e["path"] == "/api/datasets/org/out/commit/main")
        .count();
    assert_eq!(commits, 1);
    assert!(
        log.iter()
            .any(|e| e["path"].as_str().unwrap().starts_with("/_fake/lfs/part/")),
        "multipart"
    );
    let files = hub.files("org/out", "main");
    assert_eq!(
        files,
        [
            ".gitattributes",
            "README.md",
            "data/train-00000-of-00001.parquet",
            "rejudge.toml",
            "report.json",
            "review.html"
        ]
    );
    assert_eq!(
        hub.http("GET", "/api/datasets/org/out", None, false).0,
        401,
        "private"
    );
    assert_eq!(
        hub.http("GET", "/api/datasets/org/out", None, true).1["private"],
        true
    );

    let pushed = &files[1..];
    let downloads = place.path("downloads");
    let mut arguments = vec!["org/out", "main", downloads.to_str().unwrap()];
    arguments.extend(pushed.iter().map(String::as_str));
    let digests = place.python(&hub.url, DOWNLOAD_BACK, &arguments);
    for name in pushed {
        assert_eq!(digests[name], sha256(&output.join(name)), "{name}");
    }
    let loaded = place.python(
        &hub.url,
        "import json\nfrom datasets import load_dataset\nrows = load_dataset('org/out', split='train')\nprint(json.dumps({'rows': len(rows), 'outcome': rows[1]['outcome']}))",
        &[],
    );
    assert_eq!(loaded, json!({"rows": 8, "outcome": "swapped"}));
}

#[test]
fn rejudge_push_sends_the_journal_only_when_asked_to_a_branch_and_nothing_twice() {
    let place = Place::new();
    let hub = FakeHub::start(&place.root(), &[]);
    let stub = Stub::judging();
    let output = finished_run(&place, &stub, "out");
    std::fs::write(
        output.join("margins.png"),
        b"\x89PNG\r\n\x1a\nnot really a plot",
    )
    .unwrap();
    std::fs::write(output.join("notes.txt"), "mine").unwrap();
    let push = |extra: &[&str]| {
        let mut command = place.rejudge(&hub.url, &["push"]);
        command
            .arg(&output)
            .arg("org/out2")
            .args(extra)
            .env("HF_TOKEN", TOKEN);
        run(command)
    };
    // One passing server error is tried again.
    hub.fail(&json!({"path": "/preupload/", "status": 503, "times": 1}));
    succeeded(&push(&[]));
    assert_eq!(
        hub.files("org/out2", "main"),
        [
            ".gitattributes",
            "README.md",
            "data/train-00000-of-00001.parquet",
            "margins.png",
            "rejudge.toml",
            "report.json",
            "review.html"
        ]
    );
    let ran = push(&["--push-journal", "--revision", "experiment"]);
    succeeded(&ran);
    assert!(
        stdout(&ran).contains("pushed 1 file to"),
        "only the journal is new: {}",
        stdout(&ran)
    );
    assert!(
        hub.files("org/out2", "experiment")
            .contains(&"journal.sqlite".to_owned())
    );
    assert!(
        !hub.files("org/out2", "main")
            .contains(&"journal.sqlite".to_owned())
    );
    let before = hub.commits("org/out2", "experiment").len();
    let again = push(&["--push-journal", "--revision", "experiment"]);
    succeeded(&again);
    assert!(
        stdout(&again).contains("nothing to push"),
        "{}",
        stdout(&again)
    );
    assert_eq!(hub.commits("org/out2", "experiment").len(), before);

    hub.clear_log();
    let public = exits_with(&push(&["--private"]), 1);
    assert!(public.contains("exists and is public"), "{public}");
    assert!(
        !hub.log()
            .iter()
            .any(|e| e["method"] == "PUT" || e["path"].as_str().unwrap().contains("/commit/"))
    );
    let unfinished = place.path("empty");
    std::fs::create_dir_all(&unfinished).unwrap();
    let mut command = place.rejudge(&hub.url, &["push"]);
    command
        .arg(&unfinished)
        .arg("org/out3")
        .env("HF_TOKEN", TOKEN);
    assert!(exits_with(&run(command), 1).contains("not the output of a finished run"));

    // The same run written as JSON Lines: the push replaces the Parquet file, whose name the
    // card's data/train* pattern would otherwise still match.
    succeeded(&rerank(
        &place.path("pairs.jsonl"),
        &output,
        &stub.url,
        &["--format", "jsonl"],
    ));
    let replaced = push(&[]);
    succeeded(&replaced);
    assert!(
        stdout(&replaced).contains("1 deleted"),
        "{}",
        stdout(&replaced)
    );
    let files = hub.files("org/out2", "main");
    assert!(files.contains(&"data/train.jsonl".to_owned()), "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with(".parquet")), "{files:?}");
}

#[test]
fn a_push_that_failed_half_way_is_completed_without_sending_the_objects_again() {
    let place = Place::new();
    let hub = FakeHub::start(&place.root(), &[]);
    let stub = Stub::judging();
    let output = finished_run(&place, &stub, "out");
    let journal = sha256(&output.join("journal.sqlite"));
    hub.fail(&json!({"path": format!("^/_fake/lfs/upload/{journal}"), "method": "PUT", "status": 500, "times": 50}));
    let push = || {
        let mut command = place.rejudge(&hub.url, &["push"]);
        command
            .arg(&output)
            .args(["org/resumed", "--push-journal"])
            .env("HF_TOKEN", TOKEN);
        run(command)
    };
    let failed = exits_with(&push(), 1);
    assert!(
        failed.contains("HTTP 500") && failed.contains("hint: the Hub had a problem"),
        "{failed}"
    );
    let puts = |log: &[Value]| -> Vec<String> {
        log.iter()
            .filter(|e| e["method"] == "PUT" && e["status"] == 200)
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        puts(&hub.log()).len(),
        1,
        "the Parquet file went up, the journal did not"
    );
    assert_eq!(hub.commits("org/resumed", "main").len(), 1, "no commit yet");

    hub.disarm();
    hub.clear_log();
    succeeded(&push());
    let sent = puts(&hub.log());
    assert_eq!(
        sent,
        [format!("/_fake/lfs/upload/{journal}")],
        "only what was missing"
    );
    assert_eq!(hub.commits("org/resumed", "main").len(), 2);
    assert!(
        hub.files("org/resumed", "main")
            .contains(&"journal.sqlite".to_owned())
    );
}

#[test]
fn a_model_file_lands_in_the_same_cache_and_is_found_again_offline() {
    let place = Place::new();
    let weights: Vec<u8> = (0..=255u8).cycle().take(64 << 10).collect();
    seed(
        &place.root(),
        "org/judge-GGUF",
        &[("judge-q4.gguf", weights.clone())],
        &["--type", "model"],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let address = rejudge::hub::ModelAddress::parse("hf://org/judge-GGUF/judge-q4.gguf").unwrap();
    let mut options = rejudge::hub::HubOptions {
        token: None,
        offline: false,
        cache: place.cache(),
        endpoint: Some(hub.url.clone()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = runtime
        .block_on(rejudge::hub::fetch_model_file(&options, &address))
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    assert!(path.starts_with(place.cache().join("models--org--judge-GGUF/snapshots")));
    let found = place.python(
        &hub.url,
        "import json\nfrom huggingface_hub import hf_hub_download\nprint(json.dumps(hf_hub_download('org/judge-GGUF', 'judge-q4.gguf', local_files_only=True)))",
        &[],
    );
    assert_eq!(found, path.to_str().unwrap());
    drop(hub);
    options.offline = true;
    let again = runtime
        .block_on(rejudge::hub::fetch_model_file(&options, &address))
        .unwrap();
    assert_eq!(again, path);
    let other = rejudge::hub::ModelAddress::parse("hf://org/judge-GGUF/other.gguf").unwrap();
    let error = runtime
        .block_on(rejudge::hub::fetch_model_file(&options, &other))
        .unwrap_err();
    assert!(
        matches!(error, rejudge::hub::HubError::NotCached { .. }),
        "{error}"
    );
}

#[test]
fn a_dataset_huggingface_hub_downloaded_is_read_offline_without_the_hub() {
    let place = Place::new();
    let rows = keyword_rows(6);
    seed(
        &place.root(),
        "org/fetched",
        &[
            ("README.md", CARD.as_bytes().to_vec()),
            ("data/train-00000-of-00001.jsonl", jsonl(&rows)),
            ("data/test-00000-of-00001.jsonl", jsonl(&rows[..2])),
        ],
        &[],
    );
    let hub = FakeHub::start(&place.root(), &[]);
    let snapshot = place.python(
        &hub.url,
        "import json\nfrom huggingface_hub import snapshot_download\nprint(json.dumps(snapshot_download('org/fetched', repo_type='dataset')))",
        &[],
    );
    assert!(
        snapshot
            .as_str()
            .unwrap()
            .contains("datasets--org--fetched"),
        "{snapshot}"
    );
    let endpoint = hub.url.clone();
    drop(hub);
    let stub = Stub::judging();
    let output = place.path("out");
    let mut command = place.rejudge(
        &endpoint,
        &["rerank", "hf://datasets/org/fetched", "--quiet", "--output"],
    );
    command
        .arg(&output)
        .args(["--base-url", &stub.url, "--model", "stub-judge"])
        .env("HF_HUB_OFFLINE", "1");
    succeeded(&run(command));
    assert_eq!(ids_and_outcomes(&output), expected(0..6));
}
