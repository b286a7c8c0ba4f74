//! Opening an input: the format by its name, a full validation pass before any judge call is
//! paid for, and a stream of Arrow batches for the run.

use super::{DatasetError, csv, json, parquet};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::path::{Path, PathBuf};

/// Rows per batch handed to the pipeline.
pub(crate) const BATCH_ROWS: usize = 1024;

/// The file formats rejudge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// A JSON array of objects (`.json`).
    Json,
    /// A Parquet file, or a folder of Parquet shards.
    Parquet,
    /// A CSV file with a header line.
    Csv,
}

impl InputFormat {
    fn of(path: &Path) -> Result<Self, DatasetError> {
        if path.is_dir() {
            return Ok(InputFormat::Parquet);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("jsonl" | "ndjson") => Ok(InputFormat::Jsonl),
            Some("json") => Ok(InputFormat::Json),
            Some("parquet") => Ok(InputFormat::Parquet),
            Some("csv") => Ok(InputFormat::Csv),
            _ => Err(DatasetError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A stream of the input's batches, in order.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>;

/// How the batches are produced again for the run, once validation has passed.
pub(crate) enum Source {
    Jsonl(json::JsonlSource),
    Json(Vec<RecordBatch>),
    Csv(csv::CsvSource),
    Parquet(Vec<PathBuf>),
}

/// An input that has been read through once and found sound: its schema, its row count, and a
/// way to stream its batches.
pub struct Dataset {
    path: PathBuf,
    format: InputFormat,
    schema: SchemaRef,
    rows: u64,
    first: RecordBatch,
    source: Source,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Dataset")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// Opens an input and reads it through: every line parses, every Parquet row group decodes,
    /// every column gets its type. Nothing is held but the first row.
    pub fn open(path: &Path) -> Result<Self, DatasetError> {
        if !path.exists() {
            return Err(DatasetError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let format = InputFormat::of(path)?;
        let (schema, rows, first, source) = match format {
            InputFormat::Jsonl => json::open_jsonl(path)?,
            InputFormat::Json => json::open_json(path)?,
            InputFormat::Csv => csv::open(path)?,
            InputFormat::Parquet => parquet::open(path)?,
        };
        if rows == 0 {
            return Err(DatasetError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Dataset {
            path: path.to_path_buf(),
            format,
            schema,
            rows,
            first,
            source,
        })
    }

    /// The file or folder read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The input's format.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The schema of every batch.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows in the input.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The first row, as a batch of one.
    pub fn first_row(&self) -> &RecordBatch {
        &self.first
    }

    /// The input's batches, from the start, at most `limit` rows.
    pub fn batches(&self, limit: Option<u64>) -> Result<Batches, DatasetError> {
        self.batches_between(0, limit.unwrap_or(u64::MAX))
    }

    /// The batches holding rows `start..end` (0-based, in input order), the first and last
    /// sliced; batches before `start` are read and dropped.
    pub fn batches_between(&self, start: u64, end: u64) -> Result<Batches, DatasetError> {
        let batches: Batches = match &self.source {
            Source::Jsonl(source) => Box::new(source.batches(self.schema.clone())?),
            Source::Json(batches) => Box::new(batches.clone().into_iter().map(Ok)),
            Source::Csv(source) => Box::new(source.batches(self.schema.clone())?),
            Source::Parquet(shards) => Box::new(parquet::batches(shards.clone())),
        };
        Ok(Box::new(rows_between(batches, start, end)))
    }
}

/// Rows `start..end` of a batch stream.
fn rows_between(
    batches: Batches,
    start: u64,
    end: u64,
) -> impl Iterator<Item = Result<RecordBatch, DatasetError>> + Send {
    let mut seen = 0u64;
    batches
        .map_while(move |batch| {
            if seen >= end {
                return None;
            }
            Some(batch.map(|batch| {
                let first = seen;
                let rows = batch.num_rows() as u64;
                seen += rows;
                let from = start.saturating_sub(first).min(rows);
                let to = end.saturating_sub(first).min(rows);
                let length = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
                batch.slice(usize::try_from(from).unwrap_or(0), length)
            }))
        })
        .filter(|batch| batch.as_ref().map_or(true, |b| b.num_rows() > 0))
}
