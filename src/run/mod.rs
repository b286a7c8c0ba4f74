//! The pipeline: source -> render -> journal hit? -> judge -> decide -> sink.
//!
//! A reader thread streams Arrow batches in and splits them into rows carrying what the judge
//! needs; an ordered window of rows is judged concurrently (`concurrency` requests in flight at
//! most), so a slow row does not stall the others; a writer thread assembles each finished batch
//! (responses exchanged where swapped, verdict columns appended) and writes it. Per-row failures
//! become data; only input, output and journal errors stop a run.

mod ask;
mod sink;
#[cfg(test)]
mod tests;

pub use ask::Cost;

use crate::dataset::{
    ColumnMap, ColumnOverrides, Conversation, Dataset, DatasetError, OutputFormat, output_schema,
};
use crate::journal::{Journal, JournalError, RequestKey};
use crate::judge::{Judge, RetryPolicy, Retrying};
use crate::prompt::{ChatMessage, Language, Order, PromptBuilder};
use crate::report::{Description, Measures, Report, ReportError, Requests};
use crate::verdict::{DecisionPolicy, Verdict};
use arrow_array::RecordBatch;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Everything a run needs besides the judge and the prompt.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The input, as named in the report.
    pub input: String,
    /// The output folder.
    pub output: PathBuf,
    /// The output format.
    pub format: OutputFormat,
    /// The journal file.
    pub journal: PathBuf,
    /// Judge requests in flight at most.
    pub concurrency: usize,
    /// Judge only the first rows.
    pub limit: Option<u64>,
    /// Which response is shown first.
    pub order: Order,
    /// Seed of the random order.
    pub seed: u64,
    /// How scores become outcomes.
    pub policy: DecisionPolicy,
    /// Attempts and backoff per request.
    pub retry: RetryPolicy,
}

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The journal failed; stopping keeps every committed answer.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Writing the report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Hooks for showing a run's progress; the library itself prints nothing.
pub trait Progress: Send + Sync {
    /// The run starts: `total` rows, of which `finished_before` have answers in the journal.
    fn start(&self, _total: u64, _finished_before: u64) {}
    /// One row is done.
    fn row(&self, _verdict: &Verdict, _cost: Cost) {}
}

/// A [`Progress`] that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// An opened input with its column mapping.
#[derive(Debug)]
pub struct Input {
    dataset: Dataset,
    columns: ColumnMap,
    samples: Vec<String>,
}

impl Input {
    /// Opens and validates the input, and maps its columns.
    pub fn open(path: &std::path::Path, overrides: &ColumnOverrides) -> Result<Self, DatasetError> {
        let dataset = Dataset::open(path)?;
        let columns = ColumnMap::detect(path, dataset.schema(), overrides, dataset.first_row())?;
        let samples = columns
            .conversations(dataset.first_row())
            .into_iter()
            .filter_map(Result::ok)
            .map(|conversation| conversation.prompt)
            .collect();
        Ok(Input {
            dataset,
            columns,
            samples,
        })
    }

    /// The rubric language the first prompts are written in.
    pub fn language(&self) -> Language {
        Language::detect(self.samples.iter().map(String::as_str))
    }

    /// Rows in the input.
    pub fn rows(&self) -> u64 {
        self.dataset.rows()
    }

    /// The detected column mapping.
    pub fn columns(&self) -> &ColumnMap {
        &self.columns
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The rows to judge, at most `limit`, read and split on the calling thread.
    fn rows_iter(
        &self,
        limit: Option<u64>,
    ) -> Result<impl Iterator<Item = Result<Row, DatasetError>> + Send + use<>, DatasetError> {
        let columns = self.columns.clone();
        let mut next_index = 0u64;
        let batches = self.dataset.batches(limit)?;
        Ok(batches.flat_map(move |batch| {
            let rows: Vec<Result<Row, DatasetError>> = match batch {
                Ok(batch) => split(&Arc::new(batch), &columns, &mut next_index)
                    .into_iter()
                    .map(Ok)
                    .collect(),
                Err(error) => vec![Err(error)],
            };
            rows
        }))
    }
}

/// One row on its way through the pipeline: its batch (kept alive until the batch is written),
/// its place, and the conversation or why there is none.
pub(crate) struct Row {
    batch: Arc<RecordBatch>,
    offset: usize,
    index: u64,
    conversation: Result<Conversation, String>,
}

fn split(batch: &Arc<RecordBatch>, columns: &ColumnMap, next_index: &mut u64) -> Vec<Row> {
    let conversations = columns.conversations(batch);
    conversations
        .into_iter()
        .enumerate()
        .map(|(offset, conversation)| {
            let index = *next_index;
            *next_index += 1;
            Row {
                batch: batch.clone(),
                offset,
                index,
                conversation,
            }
        })
        .collect()
}

/// Request counters shared by the rows of a run.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    from_journal: AtomicU64,
    parse_retries: AtomicU64,
}

/// Re-ranks the input with `judge` and writes the output folder; returns the report.
pub async fn rerank<J: Judge>(
    input: Input,
    prompt: &PromptBuilder,
    judge: &J,
    config: &RunConfig,
    progress: &dyn Progress,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let added = crate::verdict::fields();
    let schema = output_schema(
        input.dataset.path(),
        input.dataset.schema(),
        &input.columns,
        &added,
    )?;
    let journal = Journal::open(&config.journal)?;
    let asker = asker(judge, &journal, prompt, config);
    let total = config
        .limit
        .map_or(input.rows(), |limit| limit.min(input.rows()));
    let finished_before = journal.finished_rows(asker.run).await?.min(total);
    progress.start(total, finished_before);

    let writer = sink::spawn(config, schema, input.columns.clone())?;
    let rows = sink::source(input.rows_iter(config.limit)?);
    let judged = rows
        .map(|row| async { asker.judge_row(row?).await })
        .buffered(config.concurrency * 4 + 64);
    let (tally, output) = writer.drain(judged, progress).await?;

    let measures = Measures {
        requests: asker.requests(),
        rows_already_done: finished_before,
        elapsed: started.elapsed(),
        output,
    };
    let report = Report::new(describe(judge, prompt, config), tally, measures);
    report.write(&config.output)?;
    Ok(report)
}

fn asker<'a, J: Judge>(
    judge: &'a J,
    journal: &'a Journal,
    prompt: &'a PromptBuilder,
    config: &'a RunConfig,
) -> ask::Asker<'a, J> {
    let fingerprint = judge.fingerprint();
    let run = run_signature(&fingerprint, prompt, config);
    ask::Asker {
        judge: Retrying::new(judge, config.retry),
        journal,
        prompt,
        config,
        fingerprint,
        run,
        model: Arc::from(judge.model()),
        permits: tokio::sync::Semaphore::new(config.concurrency.max(1)),
        counters: Counters::default(),
    }
}

impl<J: Judge> ask::Asker<'_, J> {
    fn requests(&self) -> Requests {
        Requests {
            sent: self.counters.sent.load(Ordering::Relaxed),
            from_journal: self.counters.from_journal.load(Ordering::Relaxed),
            retried: self.judge.retries(),
            parse_retries: self.counters.parse_retries.load(Ordering::Relaxed),
        }
    }
}

fn describe<J: Judge>(judge: &J, prompt: &PromptBuilder, config: &RunConfig) -> Description {
    Description {
        input: config.input.clone(),
        judge_model: judge.model().to_owned(),
        template_sha256: prompt.template_hash().to_owned(),
        language: prompt.language(),
        order: config.order,
        tie_margin: config.policy.tie_margin,
    }
}

/// A hash of what makes answers reusable between runs (judge, template, decision-free settings),
/// used only to count the rows a journal already holds for this run.
fn run_signature(
    fingerprint: &serde_json::Value,
    prompt: &PromptBuilder,
    config: &RunConfig,
) -> RequestKey {
    let identity = ChatMessage {
        role: "run".into(),
        content: format!("{}|{:?}|{}", config.input, config.order, config.seed),
    };
    RequestKey::new(fingerprint, prompt.template_hash(), &[identity])
}

/// What `--dry-run` shows: the first prompt and an estimate of the whole run.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    /// The messages of the first judgeable row.
    pub first_messages: Option<Vec<ChatMessage>>,
    /// Rows that would be judged.
    pub rows: u64,
    /// Rows that cannot be judged.
    pub invalid: u64,
    /// Estimated prompt tokens for the whole run (characters / 4).
    pub prompt_tokens: u64,
    /// Completion tokens at most (rows x max tokens).
    pub completion_tokens_at_most: u64,
}

/// Renders every row without calling the judge.
pub fn dry_run(
    input: &Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
    max_tokens: u32,
) -> Result<DryRun, RunError> {
    let mut estimate = DryRun::default();
    for row in input.rows_iter(config.limit)? {
        let row = row?;
        let Ok(conversation) = &row.conversation else {
            estimate.invalid += 1;
            continue;
        };
        let rendered: Vec<Vec<ChatMessage>> = config
            .order
            .orders(row.index, config.seed)
            .iter()
            .filter_map(|&chosen_first| prompt.render(conversation, chosen_first).ok())
            .collect();
        if rendered.is_empty() {
            estimate.invalid += 1;
            continue;
        }
        for messages in &rendered {
            let characters: usize = messages.iter().map(|m| m.content.chars().count()).sum();
            estimate.prompt_tokens += (characters as u64).div_ceil(4) + 8 * messages.len() as u64;
            estimate.completion_tokens_at_most += u64::from(max_tokens);
        }
        estimate.rows += 1;
        estimate
            .first_messages
            .get_or_insert_with(|| rendered[0].clone());
    }
    Ok(estimate)
}
