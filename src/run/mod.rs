//! The pipeline: source -> render -> journal hit? -> judge -> decide -> sink.
//!
//! A reader thread streams rows in, a writer thread streams them out, and in between an ordered
//! window of rows is judged concurrently (`concurrency` requests in flight at most), so output
//! keeps the input's order while a slow row does not stall the others. Per-row failures become
//! data; only input, output and journal errors stop a run.

mod row;

pub use row::{Judged, added_fields};

use crate::dataset::{
    ColumnMap, ColumnOverrides, DatasetError, OutputFormat, Pair, RowReader, RowWriter, open_input,
    output_schema,
};
use crate::journal::{Journal, JournalError, RequestKey};
use crate::judge::{Judge, Usage};
use crate::prompt::{ChatMessage, Language, Order, PromptBuilder};
use crate::report::{Counters, Report};
use crate::verdict::{DecisionPolicy, Outcome};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Everything a run needs besides the judge and the prompt.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The input file or folder.
    pub input: PathBuf,
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
}

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The journal failed; stopping keeps every committed answer.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Writing the report failed.
    #[error("{path}: {message}")]
    Report {
        /// The report file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Hooks for showing a run's progress; the library itself prints nothing.
pub trait Progress: Send + Sync {
    /// The run starts: `total` rows, of which `finished_before` have answers in the journal.
    fn start(&self, _total: u64, _finished_before: u64) {}
    /// One row is done.
    fn row(&self, _outcome: Outcome, _usage: Usage, _from_journal: bool) {}
}

/// A [`Progress`] that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// An opened input: the reader, its column mapping, and a look at its first prompts.
pub struct Input {
    reader: RowReader,
    columns: ColumnMap,
    samples: Vec<String>,
}

impl Input {
    /// Opens and checks the input, and maps its columns.
    pub fn open(path: &std::path::Path, overrides: &ColumnOverrides) -> Result<Self, DatasetError> {
        let reader = open_input(path)?;
        let columns =
            ColumnMap::detect(path, &reader.columns, overrides, reader.first_row.as_ref())?;
        let samples = reader
            .first_row
            .iter()
            .filter_map(|row| columns.conversation(row).ok())
            .map(|conversation| conversation.prompt)
            .collect();
        Ok(Input {
            reader,
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
        self.reader.rows
    }

    /// The detected column mapping.
    pub fn columns(&self) -> &ColumnMap {
        &self.columns
    }

    fn pairs(
        self,
        limit: Option<u64>,
    ) -> (ColumnMap, impl Iterator<Item = Result<Pair, DatasetError>>) {
        let columns = self.columns.clone();
        let limit = limit.unwrap_or(u64::MAX);
        let pairs = self
            .reader
            .take(limit.min(usize::MAX as u64) as usize)
            .enumerate()
            .map(move |(index, record)| {
                let record = record?;
                let conversation = columns.conversation(&record);
                Ok(Pair {
                    index: index as u64,
                    record,
                    conversation,
                })
            });
        (self.columns, pairs)
    }
}

/// What `--dry-run` shows: the first prompt and an estimate of the whole run.
#[derive(Debug, Clone)]
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
    input: Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
    max_tokens: u32,
) -> Result<DryRun, RunError> {
    let (_, pairs) = input.pairs(config.limit);
    let mut estimate = DryRun {
        first_messages: None,
        rows: 0,
        invalid: 0,
        prompt_tokens: 0,
        completion_tokens_at_most: 0,
    };
    for pair in pairs {
        let pair = pair?;
        let Ok(conversation) = &pair.conversation else {
            estimate.invalid += 1;
            continue;
        };
        let mut rendered = Vec::new();
        for &chosen_first in config.order.orders(pair.index, config.seed) {
            if let Ok(messages) = prompt.render(conversation, chosen_first) {
                rendered.push(messages);
            }
        }
        if rendered.is_empty() {
            estimate.invalid += 1;
            continue;
        }
        for messages in &rendered {
            let characters: usize = messages.iter().map(|m| m.content.chars().count()).sum();
            estimate.prompt_tokens += (characters as u64).div_ceil(4) + 8 * messages.len() as u64;
            estimate.completion_tokens_at_most += u64::from(max_tokens);
        }
        let messages = rendered.swap_remove(0);
        estimate.rows += 1;
        estimate.first_messages.get_or_insert(messages);
    }
    Ok(estimate)
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
    let total = config
        .limit
        .map_or(input.rows(), |limit| limit.min(input.rows()));
    let mut text_columns = input.reader.text_columns.clone();
    let schema = output_schema(
        &input.reader.schema,
        &input.columns.chosen,
        &input.columns.rejected,
        &added_fields(),
        &mut text_columns,
    );
    let writer = RowWriter::create(&config.output, config.format, schema, text_columns)?;
    let journal = Journal::open(&config.journal)?;
    let fingerprint = judge.fingerprint();
    let run = run_signature(&fingerprint, prompt, config);
    let finished_before = journal.finished_rows(run).await?;
    progress.start(total, finished_before.min(total));

    let (columns, pairs) = input.pairs(config.limit);
    let context = row::Context {
        judge,
        journal: &journal,
        prompt,
        fingerprint,
        run,
        config,
        columns: &columns,
        permits: tokio::sync::Semaphore::new(config.concurrency.max(1)),
        counters: Counters::default(),
    };
    let (sink, writing) = spawn_writer(writer);
    let window = config.concurrency.max(1) * 4 + 64;
    let mut judged = source(pairs)
        .map(|pair| context.judge_pair(pair))
        .buffered(window);
    let mut report = Report::new(judge.model(), prompt, config);
    report.rows_already_done = finished_before.min(total);
    let mut failure = None;
    while let Some(result) = judged.next().await {
        match result {
            Ok((record, outcome, usage, from_journal)) => {
                report.count(outcome, usage, &record);
                progress.row(outcome, usage, from_journal);
                if sink.send(Some(record)).is_err() {
                    break;
                }
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    drop(judged);
    if failure.is_none() {
        // A closed channel means the writer already stopped on an error, reported below.
        let _ = sink.send(None);
    }
    drop(sink);
    let written = writing
        .join()
        .expect("the writer thread does not panic; this is a bug");
    if let Some(error) = failure {
        return Err(error);
    }
    let data_path = written?.unwrap_or_else(|| config.format.data_path(&config.output));
    report.finish(&context.counters, started.elapsed(), data_path);
    report.write(&config.output)?;
    Ok(report)
}

/// A hash of what makes answers reusable between runs (judge, template, decision-free settings),
/// used only to count the rows a journal already holds for this run.
fn run_signature(fingerprint: &Value, prompt: &PromptBuilder, config: &RunConfig) -> RequestKey {
    let input = config
        .input
        .canonicalize()
        .unwrap_or_else(|_| config.input.clone());
    let identity = ChatMessage {
        role: "run".into(),
        content: format!("{}|{:?}|{}", input.display(), config.order, config.seed),
    };
    RequestKey::new(fingerprint, prompt.template_hash(), &[identity])
}

/// Streams pairs from a reader thread, so file reading and decoding stay off the async runtime.
fn source(
    pairs: impl Iterator<Item = Result<Pair, DatasetError>> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<Pair, DatasetError>> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    std::thread::Builder::new()
        .name("rejudge-reader".into())
        .spawn(move || {
            for pair in pairs {
                let stop = pair.is_err();
                if sender.blocking_send(pair).is_err() || stop {
                    break;
                }
            }
        })
        .expect("a reader thread can be started; this is a bug");
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

type WriterThread = std::thread::JoinHandle<Result<Option<PathBuf>, DatasetError>>;

/// Writes rows on their own thread (Parquet encoding is CPU work) in the order they are sent.
/// `None` ends the run; a run that stops without it leaves its partial file unrenamed.
fn spawn_writer(
    mut writer: RowWriter,
) -> (
    std::sync::mpsc::SyncSender<Option<Map<String, Value>>>,
    WriterThread,
) {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Option<Map<String, Value>>>(1024);
    let thread = std::thread::Builder::new()
        .name("rejudge-writer".into())
        .spawn(move || {
            while let Ok(message) = receiver.recv() {
                match message {
                    Some(row) => writer.write(row)?,
                    None => return writer.finish().map(Some),
                }
            }
            Ok(None)
        })
        .expect("a writer thread can be started; this is a bug");
    (sender, thread)
}
