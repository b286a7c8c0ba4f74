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
        let opened = match format {
            InputFormat::Parquet => parquet::open(path)?,
            _ => open_format(format, &[path.to_path_buf()])?,
        };
        Self::assemble(path.to_path_buf(), format, opened)
    }

    /// Opens several files of one format as one dataset, read in the order given (the shards of
    /// one split of a Hub dataset, say), and reads them through as [`Dataset::open`] does. The
    /// columns are typed over all the files; Parquet shards and CSV files must share columns.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self, DatasetError> {
        let [first, rest @ ..] = paths else {
            return Err(DatasetError::Unreadable {
                path: PathBuf::new(),
                message: "no files to read".into(),
            });
        };
        if rest.is_empty() {
            return Self::open(first);
        }
        let format = InputFormat::of(first)?;
        for path in paths {
            if !path.is_file() {
                return Err(DatasetError::NotFound { path: path.clone() });
            }
            if InputFormat::of(path)? != format {
                return Err(DatasetError::Unreadable {
                    path: path.clone(),
                    message: format!(
                        "not of the format of {}; the files of one dataset share one format",
                        first.display()
                    ),
                });
            }
        }
        let opened = match format {
            InputFormat::Parquet => parquet::open_shards(paths.to_vec())?,
            _ => open_format(format, paths)?,
        };
        Self::assemble(common_folder(paths), format, opened)
    }

    fn assemble(path: PathBuf, format: InputFormat, opened: Opened) -> Result<Self, DatasetError> {
        let (schema, rows, first, source) = opened;
        if rows == 0 {
            return Err(DatasetError::Empty { path });
        }
        Ok(Dataset {
            path,
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
            Source::Jsonl(source) => Box::new(source.batches(self.schema.clone())),
            Source::Json(batches) => Box::new(batches.clone().into_iter().map(Ok)),
            Source::Csv(source) => Box::new(source.batches(self.schema.clone())),
            Source::Parquet(shards) => Box::new(parquet::batches(shards.clone())),
        };
        Ok(Box::new(rows_between(batches, start, end)))
    }
}

/// What a reader hands back: the schema, the row count, the first row and the source.
type Opened = (SchemaRef, u64, RecordBatch, Source);

/// Reads files of a text format through.
fn open_format(format: InputFormat, paths: &[PathBuf]) -> Result<Opened, DatasetError> {
    match format {
        InputFormat::Jsonl => json::open_jsonl(paths),
        InputFormat::Json => json::open_json(paths),
        InputFormat::Csv => csv::open(paths),
        InputFormat::Parquet => parquet::open_shards(paths.to_vec()),
    }
}

/// The deepest folder holding every one of `paths`, to name them together in messages.
fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let mut common: Vec<std::path::Component> = paths[0]
        .parent()
        .map(|parent| parent.components().collect())
        .unwrap_or_default();
    for path in &paths[1..] {
        let components: Vec<_> = path
            .parent()
            .map(|parent| parent.components().collect())
            .unwrap_or_default();
        let shared = common
            .iter()
            .zip(&components)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(shared);
    }
    common.iter().collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;

    fn rows_per_batch(dataset: &Dataset, limit: Option<u64>) -> Vec<usize> {
        dataset
            .batches(limit)
            .unwrap()
            .map(|batch| batch.unwrap().num_rows())
            .collect()
    }

    #[test]
    fn files_of_one_format_open_as_one_dataset() {
        let folder = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = folder.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        // The column is null throughout the first file: its type comes from the second.
        let first = write("a.jsonl", "{\"prompt\": \"p1\", \"score\": null}\n");
        let second = write(
            "b.jsonl",
            "{\"prompt\": \"p2\", \"score\": 2}\n{\"prompt\": \"p3\", \"score\": 3}\n",
        );
        let dataset = Dataset::open_files(&[first.clone(), second.clone()]).unwrap();
        assert_eq!((dataset.rows(), dataset.format()), (3, InputFormat::Jsonl));
        assert_eq!(dataset.path(), folder.path());
        let score = dataset.schema().field_with_name("score").unwrap();
        assert_eq!(score.data_type(), &DataType::Int64);
        assert_eq!(
            rows_per_batch(&dataset, None),
            [1, 2],
            "no batch spans two files"
        );
        assert_eq!(rows_per_batch(&dataset, Some(2)), [1, 1]);

        let arrays = [
            write("a.json", "[{\"prompt\": \"x\"}]"),
            write("b.json", "[{\"prompt\": \"y\"}, {\"prompt\": \"z\"}]"),
        ];
        assert_eq!(Dataset::open_files(&arrays).unwrap().rows(), 3);

        let tables = [
            write("a.csv", "prompt,chosen\nx,y\n"),
            write("b.csv", "prompt,chosen\nz,w\nu,v\n"),
        ];
        let csv = Dataset::open_files(&tables).unwrap();
        assert_eq!(rows_per_batch(&csv, None), [1, 2]);
        let swapped = write("c.csv", "chosen,prompt\nz,w\n");
        let error = Dataset::open_files(&[tables[0].clone(), swapped]).unwrap_err();
        assert!(error.to_string().contains("header differs"), "{error}");
    }

    #[test]
    fn a_list_of_mixed_formats_or_of_nothing_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let jsonl = folder.path().join("a.jsonl");
        let csv = folder.path().join("b.csv");
        std::fs::write(&jsonl, "{\"prompt\": \"x\"}\n").unwrap();
        std::fs::write(&csv, "prompt\nx\n").unwrap();
        let mixed = Dataset::open_files(&[jsonl.clone(), csv]).unwrap_err();
        assert!(mixed.to_string().contains("share one format"), "{mixed}");
        assert!(Dataset::open_files(&[]).is_err());
        let missing = folder.path().join("gone.jsonl");
        assert!(matches!(
            Dataset::open_files(&[jsonl.clone(), missing]),
            Err(DatasetError::NotFound { .. })
        ));
        assert_eq!(Dataset::open_files(&[jsonl]).unwrap().rows(), 1);
    }
}
