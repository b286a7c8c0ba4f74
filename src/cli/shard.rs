//! `--shard`: a part of the input named outright (`I/N`), or read from the scheduler that
//! started this process (`auto`, `auto/N`).

use anyhow::{Context, Result, bail};
use rejudge::run::Shard;

/// The shard `text` names.
pub fn resolve(text: &str) -> Result<Shard> {
    let shard = match text.strip_prefix("auto") {
        Some("") => from_slurm(None)?,
        Some(count) if count.starts_with('/') => {
            let count: u32 = count[1..]
                .parse()
                .with_context(|| format!("--shard {text}: expected auto/N with a whole N"))?;
            from_environment(count)?
        }
        Some(_) | None => Shard::parse(text).map_err(anyhow::Error::msg)?,
    };
    Ok(shard)
}

fn variable(name: &str) -> Option<u32> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
}

/// A Slurm array task: its id counted from the array's first id, of the array's task count.
fn from_slurm(count: Option<u32>) -> Result<Shard> {
    let Some(id) = variable("SLURM_ARRAY_TASK_ID") else {
        bail!(
            "--shard auto: SLURM_ARRAY_TASK_ID is not set\nhint: run it as a Slurm array job (sbatch --array=0-3), or give --shard I/N"
        );
    };
    if variable("SLURM_ARRAY_TASK_STEP").is_some_and(|step| step != 1) {
        bail!("--shard auto: the Slurm array has a step other than 1; give --shard I/N instead");
    }
    let first = variable("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
    let Some(count) = count.or_else(|| variable("SLURM_ARRAY_TASK_COUNT")) else {
        bail!("--shard auto: SLURM_ARRAY_TASK_COUNT is not set\nhint: give --shard auto/N");
    };
    let index = id
        .checked_sub(first)
        .context("--shard auto: the task id is below the array's first id")?;
    Shard::new(index, count).map_err(anyhow::Error::msg)
}

/// A Kubernetes Indexed Job's completion index, or a Slurm array task, of `count`.
fn from_environment(count: u32) -> Result<Shard> {
    match variable("JOB_COMPLETION_INDEX") {
        Some(index) => Shard::new(index, count).map_err(anyhow::Error::msg),
        None => from_slurm(Some(count)),
    }
}
