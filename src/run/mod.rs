//! The pipeline: source -> render -> journal hit? -> judge -> decide -> sink.
//!
//! A reader thread streams Arrow batches in and splits them into rows carrying what the judge
//! needs; an ordered window of rows is judged concurrently (`concurrency` requests in flight at
//! most), so a slow row does not stall the others; a writer thread assembles each finished batch
//! (responses exchanged where swapped, verdict columns appended) and writes it. Per-row failures
//! become data; only input, output and journal errors stop a run.

mod ask;
mod batch;
mod budget;
mod folder;
mod shard;
mod sink;
#[cfg(test)]
mod tests;

pub use ask::Cost;
pub use batch::{BatchError, Driven, Exported, Imported, drive, export, import};
pub use budget::Prices;
pub use shard::{MergeError, Shard, merge_shards};

use crate::dataset::{
    ColumnMap, ColumnOverrides, Conversation, Dataset, DatasetError, OutputFormat, output_schema,
};
use crate::journal::{Journal, JournalError, RequestKey};
use crate::judge::{Judge, RetryPolicy, Retrying};
use crate::prompt::{ChatMessage, Language, Order, PromptBuilder};
use crate::report::{Description, Labelled, Measures, Report, ReportError, Requests, RowFacts};
use crate::verdict::{DecisionPolicy, Verdict};
use arrow_array::RecordBatch;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
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
    /// The settings to write to `OUTPUT/rejudge.toml` once the folder is locked.
    pub settings: Option<String>,
    /// How scores are read, as the report names it.
    pub scoring: crate::judge::Scoring,
    /// The calibration that set the margin, to record in the report.
    pub calibration: Option<crate::report::Calibration>,
    /// Rate limits and the adaptive in-flight limit, per judge.
    pub pacing: crate::judge::Pacing,
    /// The judge's prices, for the spend and the budget (a panel judge may have its own).
    pub prices: Option<Prices>,
    /// Stop before the spend could pass this many US dollars.
    pub max_cost: Option<f64>,
    /// The part of the input this process judges, when the run is split over several.
    pub shard: Option<Shard>,
}

impl RunConfig {
    /// The data file this run writes.
    pub fn data_path(&self) -> PathBuf {
        let shard = self.shard.map(|s| (s.index, s.count));
        self.format.shard_path(&self.output, shard)
    }

    /// The rows this run judges (0-based, in input order): the first `limit` of the input's
    /// `total`, and of those the shard's part.
    pub fn rows(&self, total: u64) -> std::ops::Range<u64> {
        let limited = self.limit.map_or(total, |limit| limit.min(total));
        match self.shard {
            Some(shard) => shard.rows(limited),
            None => 0..limited,
        }
    }
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
    /// The output folder could not be prepared.
    #[error(transparent)]
    Folder(std::io::Error),
    /// Another run holds the output folder.
    #[error("{folder} is in use by another rejudge run (pid {pid})", folder = folder.display())]
    Busy {
        /// The output folder.
        folder: PathBuf,
        /// The process holding it, as it wrote itself into the lock file.
        pid: String,
    },
    /// The output's data folder holds files no rejudge run wrote.
    #[error(
        "{folder} holds files rejudge did not write: {files}\nhint: `datasets` would load them together with the re-ranked rows; choose another --output, or move them",
        folder = folder.display()
    )]
    ForeignFiles {
        /// The data folder.
        folder: PathBuf,
        /// Their names.
        files: String,
    },
    /// The template cannot render the rows (an undefined variable, say).
    #[error("{0}")]
    Template(String),
    /// The judge's first request showed that no request can succeed.
    #[error("the judge cannot be used: {message}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Setup {
        /// The failure, in the server's words.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Many requests in a row failed with a setup error; the run stopped.
    #[error("stopped after {count} requests in a row failed: {message}{}\nrun the same command to resume", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Stopped {
        /// The failures in a row.
        count: u32,
        /// The last failure.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Shards cannot be merged.
    #[error(transparent)]
    Merge(Box<MergeError>),
    /// A batch file or the Batch API failed.
    #[error(transparent)]
    Batch(Box<BatchError>),
    /// The budget would be passed by the next request; every answer received is in the journal.
    #[error("budget reached: ${spent:.4} of ${cap:.4}; raise --max-cost and rerun to continue")]
    Budget {
        /// Spent so far, earlier runs on the same journal included.
        spent: f64,
        /// The cap.
        cap: f64,
    },
    /// The run was asked to stop (Ctrl-C, SIGTERM); every answer received is in the journal.
    #[error("interrupted: {done} of {total} rows done; run the same command to resume")]
    Interrupted {
        /// Rows with a verdict.
        done: u64,
        /// Rows in the run.
        total: u64,
    },
}

/// A request to stop: the first stops new requests and lets those in flight finish for a
/// grace period; the second stops at once.
#[derive(Debug)]
pub struct Stop {
    level: tokio::sync::watch::Sender<u8>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            level: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Stop {
    /// Asks the run to stop: gracefully the first time, at once the second.
    pub fn request(&self) {
        self.level
            .send_modify(|level| *level = level.saturating_add(1).min(2));
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        *self.level.borrow() >= 1
    }

    /// Resolves when the run must stop at once: a second request, or the grace period after
    /// the first.
    pub(crate) async fn hard(&self, grace: std::time::Duration) {
        let mut level = self.level.subscribe();
        if level.wait_for(|l| *l >= 1).await.is_err() {
            return std::future::pending().await;
        }
        tokio::select! {
            _ = level.wait_for(|l| *l >= 2) => {}
            () = tokio::time::sleep(grace) => {}
        }
    }
}

/// Hooks for showing a run's progress; the library itself prints nothing.
pub trait Progress: Send + Sync {
    /// The run starts: `total` rows, of which `finished_before` have answers in the journal.
    fn start(&self, _total: u64, _finished_before: u64) {}
    /// One row is done.
    fn row(&self, _verdict: &Verdict, _cost: Cost) {}
    /// How requests are paced right now (called with each row).
    fn pace(&self, _pace: crate::judge::Pace) {}
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
        Ok(Self::mapped(dataset, columns))
    }

    /// Opens a human-labelled set for `eval` (see [`ColumnMap::detect_labelled`]).
    pub fn open_labelled(
        path: &std::path::Path,
        overrides: &ColumnOverrides,
    ) -> Result<Self, DatasetError> {
        let dataset = Dataset::open(path)?;
        let schema = dataset.schema();
        let columns = ColumnMap::detect_labelled(path, schema, overrides, dataset.first_row())?;
        Ok(Self::mapped(dataset, columns))
    }

    /// Opens several files of one format as one input (see [`Dataset::open_files`]).
    pub fn open_files(
        paths: &[PathBuf],
        overrides: &ColumnOverrides,
    ) -> Result<Self, DatasetError> {
        let dataset = Dataset::open_files(paths)?;
        let columns = ColumnMap::detect(
            dataset.path(),
            dataset.schema(),
            overrides,
            dataset.first_row(),
        )?;
        Ok(Self::mapped(dataset, columns))
    }

    /// Opens several files of one format as one human-labelled set for `eval`.
    pub fn open_labelled_files(
        paths: &[PathBuf],
        overrides: &ColumnOverrides,
    ) -> Result<Self, DatasetError> {
        let dataset = Dataset::open_files(paths)?;
        let (path, schema) = (dataset.path(), dataset.schema());
        let columns = ColumnMap::detect_labelled(path, schema, overrides, dataset.first_row())?;
        Ok(Self::mapped(dataset, columns))
    }

    fn mapped(dataset: Dataset, columns: ColumnMap) -> Self {
        let samples = columns
            .conversations(dataset.first_row())
            .into_iter()
            .filter_map(Result::ok)
            .map(|conversation| conversation.prompt)
            .collect();
        Input {
            dataset,
            columns,
            samples,
        }
    }

    /// Whether the rows carry human labels (`eval`).
    pub fn labelled(&self) -> bool {
        self.columns.gold.is_some()
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

    /// The rows to judge, `rows` of the input, read and split on the calling thread; each row
    /// keeps its place in the whole input.
    fn rows_iter(
        &self,
        rows: std::ops::Range<u64>,
        seed: u64,
    ) -> Result<impl Iterator<Item = Result<Row, DatasetError>> + Send + use<>, DatasetError> {
        let columns = self.columns.clone();
        let mut next_index = rows.start;
        let batches = self.dataset.batches_between(rows.start, rows.end)?;
        Ok(batches.flat_map(move |batch| {
            let rows: Vec<Result<Row, DatasetError>> = match batch {
                Ok(batch) => split(&Arc::new(batch), &columns, &mut next_index, seed)
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

impl Row {
    /// What the report needs of the row besides its verdict.
    fn facts(&self, columns: &ColumnMap) -> RowFacts {
        let Ok(conversation) = &self.conversation else {
            // An unreadable row still counts in an evaluation, as not judged.
            let labelled = columns.gold.as_ref().map(|_| Labelled {
                gold_first: true,
                category: None,
            });
            return RowFacts {
                chosen_longer: None,
                lengths: None,
                labelled,
            };
        };
        let (chosen, rejected) = (
            conversation.chosen.chars().count(),
            conversation.rejected.chars().count(),
        );
        let labelled = columns.gold.as_ref().map(|_| Labelled {
            gold_first: conversation.chosen_is_first,
            category: conversation.category.clone(),
        });
        RowFacts {
            chosen_longer: (chosen != rejected).then_some(chosen > rejected),
            lengths: Some((chosen, rejected)),
            labelled,
        }
    }
}

fn split(
    batch: &Arc<RecordBatch>,
    columns: &ColumnMap,
    next_index: &mut u64,
    seed: u64,
) -> Vec<Row> {
    let conversations = columns.conversations(batch);
    let placed = matches!(columns.gold, Some(crate::dataset::Gold::Chosen));
    conversations
        .into_iter()
        .enumerate()
        .map(|(offset, mut conversation)| {
            let index = *next_index;
            *next_index += 1;
            // A prompt/chosen/rejected set labels `chosen` as preferred and so has no first
            // response of its own: a seeded coin, independent of the random order's, makes one,
            // so that both position labels occur under every order policy.
            if let (true, Ok(conversation)) = (placed, &mut conversation) {
                conversation.chosen_is_first = Order::Random.orders(index, !seed) == [true];
            }
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
    deduplicated: AtomicU64,
    parse_retries: AtomicU64,
}

/// The judges of a run: one, or a panel whose opinions are averaged by weight; and optionally a
/// stronger judge for the rows the panel leaves near a tie.
#[derive(Debug)]
pub struct Judges<'a, J> {
    /// Every row goes to each of these.
    pub members: Vec<Member<'a, J>>,
    /// Panel judges whose decision values lie further apart than this make the row a tie.
    pub max_spread: Option<f64>,
    /// Rows whose margin is within `below` of a tie go to this judge, whose verdict decides.
    pub escalation: Option<Escalation<'a, J>>,
}

/// A judge of a panel.
#[derive(Debug)]
pub struct Member<'a, J> {
    /// The judge.
    pub judge: &'a J,
    /// Its weight in the panel's average.
    pub weight: f64,
    /// Its prices, when they differ from the run's.
    pub prices: Option<Prices>,
}

/// The judge uncertain rows go to.
#[derive(Debug)]
pub struct Escalation<'a, J> {
    /// The judge.
    pub judge: &'a J,
    /// Rows whose margin (in the protocol's units) is at most this are escalated.
    pub below: f64,
    /// Its prices, when they differ from the run's.
    pub prices: Option<Prices>,
}

impl<'a, J: Judge> Judges<'a, J> {
    /// One judge.
    pub fn single(judge: &'a J) -> Self {
        Judges {
            members: vec![Member {
                judge,
                weight: 1.0,
                prices: None,
            }],
            max_spread: None,
            escalation: None,
        }
    }

    /// The name rows decided by these judges carry: the model, or the panel's models.
    pub fn name(&self) -> String {
        let models: Vec<&str> = self.members.iter().map(|m| m.judge.model()).collect();
        match models.as_slice() {
            [one] => (*one).to_owned(),
            many => format!("panel({})", many.join(", ")),
        }
    }
}

/// Re-ranks the input with `judge` and writes the output folder; returns the report.
pub async fn rerank<J: Judge>(
    input: Input,
    prompt: &PromptBuilder,
    judges: &Judges<'_, J>,
    config: &RunConfig,
    progress: &dyn Progress,
    stop: &Stop,
) -> Result<Report, RunError> {
    let (report, _) = run(input, prompt, judges, config, progress, stop).await?;
    Ok(report)
}

/// Judges a human-labelled set (opened with [`Input::open_labelled`]) and writes the output
/// folder with `eval.json`: kept rows are those where the judge agrees with the label.
pub async fn evaluate<J: Judge>(
    input: Input,
    prompt: &PromptBuilder,
    judges: &Judges<'_, J>,
    config: &RunConfig,
    evaluation: &crate::report::EvalSettings,
    progress: &dyn Progress,
    stop: &Stop,
) -> Result<(Report, crate::report::Evaluation), RunError> {
    let (report, tally) = run(input, prompt, judges, config, progress, stop).await?;
    let evaluated = crate::report::evaluate(&report, &tally, evaluation);
    evaluated.write(&config.output)?;
    Ok((report, evaluated))
}

async fn run<J: Judge>(
    input: Input,
    prompt: &PromptBuilder,
    judges: &Judges<'_, J>,
    config: &RunConfig,
    progress: &dyn Progress,
    stop: &Stop,
) -> Result<(Report, crate::report::Tally), RunError> {
    let started = Instant::now();
    let prepared = prepare(&input, prompt, config)?;
    let journal = Journal::open(&config.journal)?;
    let budget = budget::Budget::new(config.max_cost, journal.spent().await?);
    let asker = asker(judges, &journal, prompt, config, stop, budget);
    let rows = config.rows(input.rows());
    let done_before = rows_done(&asker, &input, config).await?;
    progress.start(rows.end - rows.start, done_before);

    let writer = sink::spawn(config, prepared.schema.clone(), input.columns.clone())?;
    let source = sink::source(input.rows_iter(rows.clone(), config.seed)?);
    let verdicts = source
        .map(|row| async { asker.judge_row(row?).await })
        .buffered(config.concurrency * 4 + 64);
    let pace = || asker.pace();
    let total = rows.end - rows.start;
    let (tally, review, output) = writer.drain(verdicts, progress, &pace, stop, total).await?;
    prepared.tidy.finish()?;
    let measures = measures(&asker, judges, config, output, done_before, started);
    let description = describe(judges, prompt, config);
    let report = Report::new(description.clone(), tally.clone(), measures.clone());
    match config.shard {
        Some(shard) => {
            let manifest = shard::Manifest {
                shard,
                input: input_identity(&input, config),
                judging: judging_identity(judges, prompt, config),
                data_file: report.files.first().cloned().unwrap_or_default(),
                description,
                tally: tally.clone(),
                measures,
                review,
            };
            let json =
                serde_json::to_string_pretty(&report).expect("a report serialises; this is a bug");
            let path = config
                .output
                .join("shards")
                .join(format!("report-{}.json", shard.label()));
            fs_err::create_dir_all(config.output.join("shards")).map_err(RunError::Folder)?;
            crate::report::write_atomically(&path, json.as_bytes())?;
            shard::write_manifest(&config.output, &manifest)?;
        }
        None => publish(
            &config.output,
            &report,
            &tally,
            &review,
            &prepared.schema,
            config.settings.as_deref(),
        )?,
    }
    Ok((report, tally))
}

fn measures<J: Judge>(
    asker: &ask::Asker<'_, J>,
    judges: &Judges<'_, J>,
    config: &RunConfig,
    output: PathBuf,
    rows_already_done: u64,
    started: Instant,
) -> Measures {
    Measures {
        requests: asker.requests(),
        rows_already_done,
        elapsed: started.elapsed(),
        output,
        spend: config.prices.map(|prices| crate::report::Spend {
            this_run: asker.budget.this_run(),
            total: asker.budget.total(),
            cap: asker.budget.cap(),
            price_input: prices.input,
            price_output: prices.output,
        }),
        endpoints: judges
            .members
            .iter()
            .flat_map(|m| m.judge.endpoints())
            .collect(),
    }
}

/// Writes what a finished run publishes: the plots, the review page, `report.json` and the
/// card.
fn publish(
    folder: &std::path::Path,
    report: &Report,
    tally: &crate::report::Tally,
    review: &crate::report::Review,
    schema: &arrow_schema::Schema,
    settings: Option<&str>,
) -> Result<(), RunError> {
    let plots = report.draw(folder, tally)?;
    let about = crate::report::About {
        input: &report.input,
        judge: &report.judge_model,
        rows: report.rows,
        outcomes: &report.outcomes,
    };
    review.write(folder, &about)?;
    // A Hub input is named as the source, so the Hub links the two datasets.
    let source = crate::hub::DatasetAddress::is_address(&report.input)
        .then(|| crate::hub::DatasetAddress::parse(&report.input).ok())
        .flatten()
        .map(|address| address.repo.id());
    let extras = crate::report::CardExtras {
        schema: Some(schema),
        plots: &plots,
        settings,
        source_dataset: source.as_deref(),
        license: None,
    };
    report.write(folder, &extras)?;
    Ok(())
}

/// What identifies the input for the merge of shards: its name, rows, schema and the rows
/// covered.
fn input_identity(input: &Input, config: &RunConfig) -> String {
    let schema = format!("{:?}", input.dataset.schema().fields());
    let digest = Sha256::digest(schema.as_bytes());
    format!(
        "{} | {} rows | limit {:?} | schema {}",
        config.input,
        input.rows(),
        config.limit,
        crate::prompt::hex(&digest[..8])
    )
}

/// What identifies how rows were judged, for the merge of shards.
fn judging_identity<J: Judge>(
    judges: &Judges<'_, J>,
    prompt: &PromptBuilder,
    config: &RunConfig,
) -> String {
    let fingerprints: Vec<serde_json::Value> = judges
        .members
        .iter()
        .map(|m| m.judge.fingerprint())
        .collect();
    let text = format!(
        "{}|{}|{:?}|{}|{:?}|{:?}",
        serde_json::json!(fingerprints),
        prompt.template_hash(),
        config.order,
        config.seed,
        config.policy,
        judges.max_spread
    );
    crate::prompt::hex(&Sha256::digest(text.as_bytes()))
}

/// What a run sets up before its first request.
struct Prepared {
    _lock: folder::Lock,
    tidy: folder::Tidy,
    schema: arrow_schema::SchemaRef,
}

/// Locks the output folder, writes the settings, checks the output's columns and the folder's
/// files, and renders the first row, so that nothing is paid for a run that cannot finish.
fn prepare(
    input: &Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
) -> Result<Prepared, RunError> {
    let lock = folder::lock(&config.output, config.shard)?;
    if let Some(settings) = &config.settings {
        let path = config.output.join("rejudge.toml");
        crate::report::write_atomically(&path, settings.as_bytes())?;
    }
    let added = crate::verdict::fields();
    let schema = output_schema(
        input.dataset.path(),
        input.dataset.schema(),
        &input.columns,
        &added,
    )?;
    let tidy = folder::inspect(&config.output, &config.data_path(), config.shard)?;
    check_template(input, prompt)?;
    Ok(Prepared {
        _lock: lock,
        tidy,
        schema,
    })
}

/// Renders the first judgeable row: a template with an undefined variable fails every row the
/// same way, so it stops the run before any request.
fn check_template(input: &Input, prompt: &PromptBuilder) -> Result<(), RunError> {
    let first = input.columns.conversations(input.dataset.first_row());
    match first.into_iter().next() {
        Some(Ok(conversation)) => prompt
            .render(&conversation, true)
            .map(drop)
            .map_err(RunError::Template),
        _ => Ok(()),
    }
}

/// Rows whose every answer is already in the journal, counted from their content (the rendered
/// requests), so a changed input at the same path is not mistaken for a finished one.
async fn rows_done<J: Judge>(
    asker: &ask::Asker<'_, J>,
    input: &Input,
    config: &RunConfig,
) -> Result<u64, RunError> {
    if asker.journal.is_empty().await? {
        return Ok(0);
    }
    let mut done = 0;
    for row in input.rows_iter(config.rows(input.rows()), config.seed)? {
        let row = row?;
        let Ok(conversation) = &row.conversation else {
            continue;
        };
        let mut settled = true;
        for &chosen_first in
            config
                .order
                .orders_for(row.index, config.seed, conversation.chosen_is_first)
        {
            let Ok(messages) = asker.prompt.render(conversation, chosen_first) else {
                settled = false;
                break;
            };
            for seat in &asker.seats {
                settled &= asker.settled(seat, messages.clone()).await?;
            }
        }
        done += u64::from(settled);
    }
    Ok(done)
}

fn asker<'a, J: Judge>(
    judges: &Judges<'a, J>,
    journal: &'a Journal,
    prompt: &'a PromptBuilder,
    config: &'a RunConfig,
    stop: &'a Stop,
    budget: budget::Budget,
) -> ask::Asker<'a, J> {
    let seat = |judge: &'a J, weight: f64, prices: Option<Prices>| ask::Seat {
        judge: Retrying::new(judge, config.retry)
            .with_throttle(Arc::new(crate::judge::Throttle::new(&config.pacing))),
        fingerprint: judge.fingerprint(),
        model: Arc::from(judge.model()),
        weight,
        gate: ask::Gate::default(),
        prices: prices.or(config.prices),
    };
    let seats: Vec<ask::Seat<'a, J>> = judges
        .members
        .iter()
        .map(|m| seat(m.judge, m.weight, m.prices))
        .collect();
    let fingerprints: Vec<&serde_json::Value> = seats.iter().map(|s| &s.fingerprint).collect();
    let run = run_signature(&serde_json::json!(fingerprints), prompt, config);
    ask::Asker {
        escalation: judges
            .escalation
            .as_ref()
            .map(|e| (seat(e.judge, 1.0, e.prices), e.below)),
        seats,
        max_spread: judges.max_spread,
        name: Arc::from(judges.name()),
        journal,
        prompt,
        config,
        run,
        permits: tokio::sync::Semaphore::new(config.concurrency.max(1)),
        counters: Counters::default(),
        in_flight: std::sync::Mutex::default(),
        stop,
        budget,
    }
}

impl<J: Judge> ask::Asker<'_, J> {
    /// The pace of every judge's requests together.
    fn pace(&self) -> crate::judge::Pace {
        let escalation = self.escalation.iter().map(|(seat, _)| seat);
        let mut total = crate::judge::Pace::default();
        for pace in self
            .seats
            .iter()
            .chain(escalation)
            .filter_map(|s| s.judge.throttle())
            .map(crate::judge::Throttle::pace)
        {
            total.limit += pace.limit;
            total.in_flight += pace.in_flight;
            total.throttled |= pace.throttled;
            total.waited_seconds += pace.waited_seconds;
        }
        total.spent = self.config.prices.map(|_| self.budget.total());
        total
    }

    fn requests(&self) -> Requests {
        let escalation = self.escalation.iter().map(|(seat, _)| seat);
        Requests {
            sent: self.counters.sent.load(Ordering::Relaxed),
            from_journal: self.counters.from_journal.load(Ordering::Relaxed),
            deduplicated: self.counters.deduplicated.load(Ordering::Relaxed),
            retried: self
                .seats
                .iter()
                .chain(escalation)
                .map(|s| s.judge.retries())
                .sum(),
            parse_retries: self.counters.parse_retries.load(Ordering::Relaxed),
        }
    }
}

fn describe<J: Judge>(
    judges: &Judges<'_, J>,
    prompt: &PromptBuilder,
    config: &RunConfig,
) -> Description {
    Description {
        input: config.input.clone(),
        judge_model: judges.name(),
        template_sha256: prompt.template_hash().to_owned(),
        language: prompt.language(),
        order: config.order,
        tie_margin: config.policy.tie_margin,
        mode: prompt.mode(),
        scoring: match config.scoring {
            crate::judge::Scoring::Score => "score".to_owned(),
            crate::judge::Scoring::Logprobs => "logprobs".to_owned(),
        },
        on_inconsistent: config.policy.on_inconsistent,
        calibration: config.calibration.clone(),
        template: prompt.template_name().map(str::to_owned),
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
    /// Rows whose two responses are the same text (ties without a request).
    pub identical: u64,
    /// Prompt tokens for the whole run: counted by the judge's tokenizer, or estimated
    /// (characters / 4) when `estimated`.
    pub prompt_tokens: u64,
    /// Whether some prompt tokens were estimated rather than counted.
    pub estimated: bool,
    /// Completion tokens at most (rows x max tokens).
    pub completion_tokens_at_most: u64,
}

impl DryRun {
    /// The most the run can cost at `prices`: every prompt token, and every completion token
    /// allowed.
    pub fn cost_at_most(&self, prices: Prices) -> f64 {
        prices.of(crate::judge::Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens_at_most,
        })
    }
}

/// Renders every row without calling the judge. `count` gives a request's exact prompt tokens
/// when it can (an in-process judge's tokenizer); otherwise they are estimated.
pub fn dry_run(
    input: &Input,
    prompt: &PromptBuilder,
    config: &RunConfig,
    max_tokens: u32,
    count: &mut dyn FnMut(&[ChatMessage]) -> Option<u64>,
) -> Result<DryRun, RunError> {
    let mut estimate = DryRun::default();
    for row in input.rows_iter(config.rows(input.rows()), config.seed)? {
        let row = row?;
        let Ok(conversation) = &row.conversation else {
            estimate.invalid += 1;
            continue;
        };
        if conversation.chosen == conversation.rejected {
            estimate.identical += 1;
            continue;
        }
        let rendered = config
            .order
            .orders_for(row.index, config.seed, conversation.chosen_is_first)
            .iter()
            .map(|&chosen_first| prompt.render(conversation, chosen_first))
            .collect::<Result<Vec<Vec<ChatMessage>>, String>>()
            .map_err(|error| RunError::Template(format!("row {}: {error}", row.index)))?;
        for messages in &rendered {
            let prompt_tokens = count(messages).unwrap_or_else(|| {
                estimate.estimated = true;
                let characters: usize = messages.iter().map(|m| m.content.chars().count()).sum();
                (characters as u64).div_ceil(4) + 8 * messages.len() as u64
            });
            estimate.prompt_tokens += prompt_tokens;
            estimate.completion_tokens_at_most += u64::from(max_tokens);
        }
        estimate.rows += 1;
        estimate
            .first_messages
            .get_or_insert_with(|| rendered[0].clone());
    }
    Ok(estimate)
}
