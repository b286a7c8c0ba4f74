//! The two ends of the pipeline: a reader thread that streams rows in, and a writer thread that
//! turns each finished batch into its output batch and writes it. File I/O, decoding and
//! encoding stay off the async runtime.

use super::{Cost, Progress, Row, RunConfig, RunError, Stop};
use crate::dataset::{ColumnMap, DatasetError, OutputWriter, output_batch};
use crate::report::{Review, Tally};
use crate::verdict::{Outcome, Verdict, VerdictColumns};
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use futures_util::{Stream, StreamExt};
use std::path::PathBuf;
use std::sync::Arc;

/// Rows buffered between the reader thread and the pipeline.
const READ_AHEAD: usize = 1024;
/// Finished batches buffered between the pipeline and the writer thread.
const WRITE_BEHIND: usize = 4;

/// Streams rows from a reader thread.
pub(super) fn source(
    rows: impl Iterator<Item = Result<Row, DatasetError>> + Send + 'static,
) -> impl Stream<Item = Result<Row, DatasetError>> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    std::thread::Builder::new()
        .name("rejudge-reader".into())
        .spawn(move || {
            for row in rows {
                let stop = row.is_err();
                if sender.blocking_send(row).is_err() || stop {
                    break;
                }
            }
        })
        .expect("a reader thread can be started; this is a bug");
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// A finished batch and its verdicts, in row order.
type Finished = (Arc<RecordBatch>, Vec<Verdict>);

/// The writer thread's handle. `None` on the channel means the run is complete; a channel closed
/// without it means the run stopped, and the unfinished file is removed.
pub(super) struct Writer {
    sender: tokio::sync::mpsc::Sender<Option<Finished>>,
    thread: Joined,
    columns: ColumnMap,
}

type WriterThread = std::thread::JoinHandle<Result<Option<PathBuf>, DatasetError>>;

/// The writer thread, joined even when the run is dropped half-way (a cancelled future), so the
/// unfinished file is gone by the time the run is.
struct Joined(Option<WriterThread>);

impl Joined {
    fn join(mut self) -> Result<Option<PathBuf>, DatasetError> {
        let thread = self.0.take().expect("joined once; this is a bug");
        thread
            .join()
            .expect("the writer thread does not panic; this is a bug")
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the output and starts the writer thread.
pub(super) fn spawn(
    config: &RunConfig,
    schema: SchemaRef,
    columns: ColumnMap,
) -> Result<Writer, DatasetError> {
    let mut output = OutputWriter::create(&config.data_path(), config.format, schema.clone())?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Option<Finished>>(WRITE_BEHIND);
    let mapping = columns.clone();
    let thread = std::thread::Builder::new()
        .name("rejudge-writer".into())
        .spawn(move || {
            while let Some(message) = receiver.blocking_recv() {
                let Some((batch, verdicts)) = message else {
                    return output.finish().map(Some);
                };
                let assembled = assemble(&batch, &verdicts, &schema, &columns).map_err(|e| {
                    DatasetError::arrow(output.target(), "assembling an output batch", e)
                })?;
                output.write(&assembled)?;
            }
            Ok(None)
        })
        .expect("a writer thread can be started; this is a bug");
    Ok(Writer {
        sender,
        thread: Joined(Some(thread)),
        columns: mapping,
    })
}

/// The output batch. A labelled set (`eval`) is never swapped: its rows keep the input's
/// order, and each verdict's ratings stay with the response the human preferred.
fn assemble(
    batch: &RecordBatch,
    verdicts: &[Verdict],
    schema: &SchemaRef,
    columns: &ColumnMap,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let labelled = columns.gold.is_some();
    let swapped: BooleanArray = verdicts
        .iter()
        .map(|v| Some(!labelled && v.outcome == Outcome::Swapped))
        .collect();
    let mut added = VerdictColumns::with_capacity(verdicts.len());
    for verdict in verdicts {
        if labelled {
            added.push(&verdict.clone().in_stored_order());
        } else {
            added.push(verdict);
        }
    }
    output_batch(batch, schema, columns, &swapped, added.finish())
}

/// Ends the writer thread: a complete run's file is finished, a stopped run's removed.
async fn close(
    sender: tokio::sync::mpsc::Sender<Option<Finished>>,
    thread: Joined,
    failure: Option<RunError>,
) -> Result<PathBuf, RunError> {
    if failure.is_none() {
        let _ = sender.send(None).await;
    }
    drop(sender);
    let written = thread.join();
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(written?.expect("a complete run finishes its file; this is a bug"))
}

/// How long requests in flight may finish after a stop was asked for.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl Writer {
    /// Takes the judged rows in order, counts them, and hands each completed batch to the
    /// writer thread; returns the counts and the data file once everything is written. A run
    /// that stops (an error, or a stop request) leaves no data file; its answers are in the
    /// journal.
    pub(super) async fn drain(
        self,
        judged: impl Stream<Item = Result<(Row, Verdict, Cost), RunError>>,
        progress: &dyn Progress,
        pace: &dyn Fn() -> crate::judge::Pace,
        stop: &Stop,
        total: u64,
    ) -> Result<(Tally, Review, PathBuf), RunError> {
        // `sender` is declared last so that it is dropped first: the writer thread ends when the
        // channel closes, and `thread` joins it when a cancelled run drops this future.
        let Writer {
            thread,
            sender,
            columns,
        } = self;
        let (mut tally, mut review, mut verdicts) =
            (Tally::default(), Review::default(), Vec::new());
        let mut judged = std::pin::pin!(judged);
        let mut hard = std::pin::pin!(stop.hard(GRACE));
        let mut failure = None;
        let mut exhausted = None;
        loop {
            let item = tokio::select! {
                biased;
                () = &mut hard => break,
                item = judged.next() => item,
            };
            let (row, verdict, cost) = match item {
                None => break,
                Some(Ok(item)) => item,
                // Rows not sent because of a stop: keep collecting those still in flight.
                Some(Err(RunError::Interrupted { .. })) => continue,
                // The budget is reached: no new request starts, those in flight finish.
                Some(Err(error @ RunError::Budget { .. })) => {
                    exhausted.get_or_insert(error);
                    continue;
                }
                Some(Err(error)) => {
                    failure = Some(error);
                    break;
                }
            };
            tally.count(&verdict, &row.facts(&columns), cost.usage);
            review.push(row.index, row.conversation.as_ref().ok(), &verdict);
            progress.row(&verdict, cost);
            progress.pace(pace());
            verdicts.push(verdict);
            if row.offset + 1 == row.batch.num_rows() && !stop.requested() && exhausted.is_none() {
                let finished = (row.batch, std::mem::take(&mut verdicts));
                // A closed channel means the writer stopped on an error, which join reports.
                if sender.send(Some(finished)).await.is_err() {
                    break;
                }
            }
        }
        failure = failure.or(exhausted);
        if stop.requested() && failure.is_none() {
            failure = Some(RunError::Interrupted {
                done: tally.rows(),
                total,
            });
        }
        let path = close(sender, thread, failure).await?;
        Ok((tally, review, path))
    }
}
