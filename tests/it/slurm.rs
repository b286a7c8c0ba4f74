//! Shards on a real Slurm: `scripts/slurm.sh` brings up a one-node cluster on this machine
//! (installing slurm-wlm and munge with apt-get when they are missing, which needs root or sudo),
//! a four-task array job judges the input with `--shard auto` against the in-test stub judge,
//! and `rejudge merge` must give back what one unsharded run writes.

use crate::stub::Stub;
use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SLURM_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm.sh");

/// Starts the cluster unless it already runs; returns the slurm.conf that `SLURM_CONF` must name.
fn slurm_conf() -> PathBuf {
    let output = Command::new("bash")
        .arg(SLURM_SH)
        .arg("start")
        .output()
        .expect("bash runs scripts/slurm.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a one-node Slurm did not start ({}):\n{stderr}\nhint: `scripts/slurm.sh start` needs \
         root or sudo, and apt-get when slurm-wlm and munge are missing; the daemons log under \
         /var/lib/rejudge-slurm/log",
        output.status
    );
    let conf = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        conf.is_file(),
        "scripts/slurm.sh start printed {} as its last line, not a slurm.conf:\n{stdout}\n{stderr}",
        conf.display()
    );
    conf
}

/// `text` as one word for bash.
fn quoted(text: &Path) -> String {
    format!("'{}'", text.display().to_string().replace('\'', r"'\''"))
}

/// The rows of every data file of a run folder, in the order of their names.
fn data_rows(folder: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder.join("data"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files.iter().flat_map(|path| lines(path)).collect()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every task's Slurm log, for failure messages.
fn task_logs(folder: &Path) -> String {
    (0..4)
        .map(|task| {
            let path = folder.join(format!("task-{task}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "(missing)".into());
            format!("--- {}\n{text}", path.display())
        })
        .collect()
}

#[test]
fn a_slurm_array_job_of_four_shards_merges_into_an_unsharded_runs_output() {
    let conf = slurm_conf();
    let folder = tempfile::tempdir().unwrap();
    // Slurm names the folder by its real path in the task's environment; so should we.
    let folder = folder.path().canonicalize().unwrap();
    let input = folder.join("pairs.jsonl");
    write_jsonl(&input, &keyword_rows(40));
    let stub = Stub::judging();

    let whole = folder.join("whole");
    succeeded(&rerank(&input, &whole, &stub.url, &["--format", "jsonl"]));

    // Every task runs the same line; `--shard auto` finds its part in the task's environment.
    let sharded = folder.join("sharded");
    let script = folder.join("shards.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\nset -eu\n\
             echo \"task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT from $SLURM_ARRAY_TASK_MIN on $(hostname)\"\n\
             exec {rejudge} rerank {input} --quiet --base-url {url} --model stub-judge \
             --format jsonl --shard auto --output {output}\n",
            rejudge = quoted(Path::new(env!("CARGO_BIN_EXE_rejudge"))),
            input = quoted(&input),
            url = stub.url,
            output = quoted(&sharded),
        ),
    )
    .unwrap();
    let started = Instant::now();
    // The job's time limit (minutes) ends a stuck array; `timeout` covers a controller that stops
    // answering. sbatch --wait returns when every task has ended, with the highest exit status.
    let job = Command::new("timeout")
        .args(["300", "sbatch", "--wait", "--parsable", "--array=0-3"])
        .args(["--ntasks=1", "--cpus-per-task=1", "--time=5"])
        .args(["--job-name=rejudge-shards", "--output"])
        .arg(folder.join("task-%a.log"))
        .arg("--chdir")
        .arg(&folder)
        .arg(&script)
        .env("SLURM_CONF", &conf)
        .env("NO_COLOR", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("HF_TOKEN")
        .output()
        .expect("sbatch runs");
    let job_id = String::from_utf8_lossy(&job.stdout).trim().to_owned();
    if !job.status.success() && !job_id.is_empty() {
        let _ = Command::new("scancel")
            .arg(job_id.split(';').next().unwrap())
            .env("SLURM_CONF", &conf)
            .status();
    }
    assert!(
        job.status.success(),
        "the array job {job_id} failed ({}): {}\n{}",
        job.status,
        String::from_utf8_lossy(&job.stderr),
        task_logs(&folder)
    );
    eprintln!(
        "slurm: array job {job_id} of 4 shards took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each task judged its own part: its own log, task id and data file of 10 rows.
    for task in 0..4 {
        let log = std::fs::read_to_string(folder.join(format!("task-{task}.log"))).unwrap();
        assert!(
            log.starts_with(&format!("task {task} of 4 from 0 on ")),
            "task {task}: {log}"
        );
        let data = sharded.join(format!("data/train-0000{task}-of-00004.jsonl"));
        assert!(data.is_file(), "{} is missing", data.display());
        assert_eq!(lines(&data).len(), 10, "{}", data.display());
        assert!(
            sharded
                .join(format!("shards/manifest-0000{task}-of-00004.json"))
                .is_file(),
            "shard {task} left no manifest"
        );
    }

    let merged = rejudge().arg("merge").arg(&sharded).output().unwrap();
    exits_with(&merged, 0);
    assert!(
        String::from_utf8_lossy(&merged.stdout).contains("merged 4 shards"),
        "{}",
        String::from_utf8_lossy(&merged.stdout)
    );

    let (one, many) = (data_rows(&whole), data_rows(&sharded));
    assert_eq!(one.len(), 40);
    assert_eq!(
        many, one,
        "the merged shards hold the unsharded run's rows, in its order, with its verdicts"
    );
    let (one, many) = (report(&whole), report(&sharded));
    // The stub judge's verdicts on keyword rows: a quarter each.
    for outcome in ["kept", "swapped", "tie", "invalid"] {
        assert_eq!(
            one["outcomes"][outcome], 10,
            "{outcome}: {}",
            one["outcomes"]
        );
    }
    for key in ["rows", "outcomes", "positions", "mean_scores"] {
        assert_eq!(many[key], one[key], "the merged report's {key}");
    }

    let loaded = python(
        "import sys, json, datasets\n\
         d = datasets.load_dataset(sys.argv[1], split='train')\n\
         print(json.dumps({'rows': d.num_rows, 'ids': list(d['id'])}))",
        &[&sharded],
    );
    assert_eq!(
        loaded["rows"], 40,
        "the folder loads as one split of every row"
    );
    let ids: Vec<u64> = (0..40).collect();
    assert_eq!(loaded["ids"], serde_json::json!(ids), "in input order");
}
