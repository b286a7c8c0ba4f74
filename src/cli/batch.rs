//! Batch flags: `--batch-export` writes the pending requests as OpenAI Batch files and stops;
//! `--batch-import` reads batch answers into the journal; `--batch openai` drives OpenAI's Batch
//! API. After an import or a drive, the run writes its output from the journal alone.

use super::judge::{self, Panel};
use anyhow::Result;
use clap::ValueEnum;
use rejudge::judge::batch::{BatchClient, BatchState, Deferring};
use rejudge::judge::{AnyJudge, OpenAiJudge};
use rejudge::prompt::PromptBuilder;
use rejudge::run::{Input, RunConfig};
use rejudge::settings::Settings;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A Batch API rejudge can drive.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Service {
    /// OpenAI's Files and Batches endpoints under --base-url [default: https://api.openai.com/v1].
    Openai,
}

/// The batch flags of `rerank` and `eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchFlags {
    /// Write the requests the run still needs as OpenAI Batch input JSONL (split at 50,000
    /// requests or 200 MB per file), judge nothing, and stop.
    #[arg(long, value_name = "FILE")]
    pub batch_export: Option<PathBuf>,
    /// Read batch output JSONL (OpenAI's output and error files, or vLLM's run-batch) into the
    /// journal, then write the output from the journal; rows without an answer fail and stay
    /// resumable.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub batch_import: Vec<PathBuf>,
    /// Drive a Batch API end to end: upload, create, poll, download, import (resumable: a
    /// rerun resumes the batches in the journal and never submits them twice).
    #[arg(long, value_enum)]
    pub batch: Option<Service>,
    /// Seconds between polls of a running batch.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub batch_poll: f64,
}

impl BatchFlags {
    /// Whether the run's answers come from batches.
    pub fn deferred(&self) -> bool {
        !self.batch_import.is_empty() || self.batch.is_some()
    }
}

/// The API root batches go to.
fn base_url(settings: &Settings) -> String {
    settings
        .base_url
        .clone()
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned())
}

/// The judge whose requests are batched: an OpenAI-compatible judge of `--model`.
pub fn batch_judge(settings: &Settings) -> Result<OpenAiJudge> {
    let mut settings = settings.clone();
    settings.base_url = Some(base_url(&settings));
    match judge::openai(&settings)? {
        AnyJudge::OpenAi(judge) => Ok(judge),
        _ => anyhow::bail!(
            "batches need one OpenAI-compatible judge; a pool or a panel cannot be batched"
        ),
    }
}

/// The panel of a batched run: the batch judge, asking nothing.
pub fn deferring_panel(settings: &Settings) -> Result<Panel> {
    let judge = AnyJudge::Deferring(Deferring::new(batch_judge(settings)?));
    Ok(Panel {
        members: vec![(judge, 1.0, None)],
        escalation: None,
    })
}

/// `--batch-export`: writes the files and says what they hold.
pub fn export(
    settings: &Settings,
    input: &Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
    path: &Path,
) -> Result<()> {
    let judge = batch_judge(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exported = runtime.block_on(rejudge::run::export(input, prompt, &judge, config, path))?;
    if exported.files.is_empty() {
        println!("nothing to export: every request the run needs is answered in the journal");
    }
    for file in &exported.files {
        println!("wrote {}", file.display());
    }
    println!(
        "{} requests to send as a batch; then run the same command with --batch-import OUTPUT.jsonl",
        exported.requests
    );
    Ok(())
}

/// `--batch-import` or `--batch`: fills the journal before the run.
pub fn fill_journal(
    flags: &BatchFlags,
    settings: &Settings,
    input: &Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
    runtime: &tokio::runtime::Runtime,
) -> Result<()> {
    let judge = batch_judge(settings)?;
    if !flags.batch_import.is_empty() {
        let found = runtime.block_on(rejudge::run::import(
            input,
            prompt,
            &judge,
            config,
            &flags.batch_import,
        ))?;
        eprintln!(
            "rejudge: imported {} answers ({} unreadable, {} failed; {} lines for requests this run does not need)",
            found.judged, found.unparseable, found.failed, found.unknown
        );
    }
    if flags.batch.is_some() {
        let poll = Duration::try_from_secs_f64(flags.batch_poll).map_err(|_| {
            anyhow::anyhow!("--batch-poll {}: seconds, 0 or more", flags.batch_poll)
        })?;
        let url = base_url(settings);
        let key = judge::api_key(settings.api_key_env.as_deref(), &url)?;
        let client = BatchClient::new(&url, key, settings.timeout())?;
        let show = |state: &BatchState| {
            eprintln!(
                "rejudge: batch {}: {} ({} of {} requests)",
                state.id, state.status, state.done, state.total
            );
        };
        let driven = runtime.block_on(rejudge::run::drive(
            input, prompt, &judge, &client, config, poll, &show,
        ))?;
        eprintln!(
            "rejudge: {} batches submitted, {} resumed; {} answers imported",
            driven.submitted, driven.resumed, driven.imported.judged
        );
    }
    Ok(())
}
