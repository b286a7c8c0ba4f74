//! Reading preference datasets, mapping their columns onto a [`Conversation`], and writing the
//! re-ranked rows back out.
//!
//! A row travels through rejudge as a [`Pair`]: the row exactly as it was read (a JSON object, so
//! every input column survives untouched) plus the conversation the judge needs, or the reason the
//! row cannot be judged.

mod columns;
mod read;
mod write;

pub use columns::{ColumnMap, ColumnOverrides, Conversation, Turn};
pub use read::{InputFormat, RowReader, open_input};
pub use write::{OutputFormat, RowWriter, output_schema};

use serde_json::{Map, Value};
use std::path::PathBuf;

/// One input row: its position, the record as read, and the conversation or why there is none.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Zero-based position of the row in the input, counted across shards.
    pub index: u64,
    /// The row as read, every column kept.
    pub record: Map<String, Value>,
    /// The conversation to judge, or the reason this row cannot be judged.
    pub conversation: Result<Conversation, String>,
}

/// Errors that stop a run while reading or writing data.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The input could not be opened or read.
    #[error("{path}: {message}")]
    Read {
        /// The file being read.
        path: PathBuf,
        /// What went wrong, with the row where one is known.
        message: String,
    },
    /// A column the judge needs is missing.
    #[error(
        "{path}: no {role} column found (tried {tried}); columns present: {found}\nhint: name it with --{role}-column"
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
    /// The output could not be written.
    #[error("{path}: {message}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl DatasetError {
    pub(crate) fn read(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        DatasetError::Read {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub(crate) fn write(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        DatasetError::Write {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
