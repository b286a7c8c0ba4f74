//! Reading preference datasets as Arrow batches, mapping their columns onto a [`Conversation`],
//! and writing the re-ranked batches back out.
//!
//! Rows stay Arrow from reader to writer: passthrough columns are never decoded, `chosen` and
//! `rejected` are exchanged per row in their own Arrow type, and the columns rejudge adds are
//! appended. Only the cells the judge reads (prompt, history, responses) are turned into text.

mod cell;
mod columns;
mod csv;
mod json;
mod parquet;
mod read;
mod typing;
mod write;

pub use cell::JSON_TEXT;
pub use columns::{ColumnMap, ColumnOverrides, Conversation, Gold, Turn};
pub use read::{Batches, Dataset, InputFormat};
pub use write::{OutputFormat, OutputWriter, output_batch, output_schema};

/// The Arrow schema of a data file rejudge wrote (or any input file): from a Parquet file's
/// footer, or by reading a JSON Lines file through.
pub fn schema_of(path: &std::path::Path) -> Result<arrow_schema::SchemaRef, DatasetError> {
    Ok(Dataset::open(path)?.schema().clone())
}

use std::path::PathBuf;

/// Where in a file something went wrong, as a person would look for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A line of a text file, 1-based.
    Line(u64),
    /// A row of a table, 0-based as `datasets` counts them, optionally with its column.
    Row {
        /// The row.
        row: u64,
        /// The column, when one is to blame.
        column: Option<String>,
    },
    /// A Parquet row group.
    RowGroup(usize),
    /// The header line of a CSV file.
    Header,
}

impl std::fmt::Display for Location {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(line) => write!(formatter, "line {line}"),
            Location::Row { row, column: None } => write!(formatter, "row {row}"),
            Location::Row {
                row,
                column: Some(column),
            } => write!(formatter, "row {row}, column {column}"),
            Location::RowGroup(group) => write!(formatter, "row group {group}"),
            Location::Header => formatter.write_str("header line"),
        }
    }
}

/// Errors that stop a run while reading or writing data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The input does not exist.
    #[error("{path}: no such file or folder", path = path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file name does not say which format it is.
    #[error(
        "{path}: unknown input format; expected .jsonl, .json, .parquet, .csv or a folder of .parquet shards",
        path = path.display()
    )]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
    },
    /// A file or folder could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A row or line is malformed.
    #[error("{path}: {location}: {message}", path = path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where.
        location: Location,
        /// What is wrong, with a hint where one helps.
        message: String,
    },
    /// The whole file is not of its format.
    #[error("{path}: {message}", path = path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A Parquet file could not be decoded.
    #[error("{path}: {location}not a readable Parquet file", path = path.display(), location = location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The row group, when the footer was readable.
        location: Option<Location>,
        /// The decoder's error.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// The input holds no rows.
    #[error("{path}: no rows", path = path.display())]
    Empty {
        /// The file or folder.
        path: PathBuf,
    },
    /// A column the judge needs is missing.
    #[error(
        "{path}: no {role} column found (tried {tried}); columns present: {found}\nhint: name it with --{role}-column",
        path = path.display()
    )]
    MissingColumn {
        /// The file whose columns were inspected.
        path: PathBuf,
        /// Which column is missing: `prompt`, `chosen` or `rejected`.
        role: &'static str,
        /// The names that were tried.
        tried: String,
        /// The columns the file has.
        found: String,
    },
    /// Two columns share a name.
    #[error("{path}: the column name {name:?} appears twice in the header", path = path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
    /// Input columns carry the names of columns rejudge adds.
    #[error(
        "{path}: the input already has the column{plural} {names}, which rejudge adds to its output\nhint: this looks like the output of an earlier run; re-rank the original input, or rename or drop these columns",
        path = path.display(),
        plural = if names.contains(',') { "s" } else { "" }
    )]
    ReservedColumns {
        /// The file.
        path: PathBuf,
        /// The colliding names, comma-separated.
        names: String,
    },
    /// Arrow could not assemble or encode a batch.
    #[error("{path}: {context}", path = path.display())]
    Arrow {
        /// The file being read or written.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// Arrow's error.
        #[source]
        source: arrow_schema::ArrowError,
    },
}

impl DatasetError {
    pub(crate) fn malformed(
        path: &std::path::Path,
        location: Location,
        message: impl std::fmt::Display,
    ) -> Self {
        DatasetError::Malformed {
            path: path.to_path_buf(),
            location,
            message: message.to_string(),
        }
    }

    pub(crate) fn arrow(
        path: &std::path::Path,
        context: impl Into<String>,
        source: arrow_schema::ArrowError,
    ) -> Self {
        DatasetError::Arrow {
            path: path.to_path_buf(),
            context: context.into(),
            source,
        }
    }

    pub(crate) fn parquet(
        path: &std::path::Path,
        location: Option<Location>,
        source: ::parquet::errors::ParquetError,
    ) -> Self {
        DatasetError::Parquet {
            path: path.to_path_buf(),
            location,
            source,
        }
    }
}
