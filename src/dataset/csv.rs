//! CSV with a header line. Every cell is text: CSV carries no types, and guessing them would
//! change values (leading zeros, "NA") that the output must keep as they were.

use super::read::{BATCH_ROWS, Source};
use super::{DatasetError, Location};
use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Opened = (SchemaRef, u64, RecordBatch, Source);

/// Reads CSV files through: every header is the first file's, with no repeated names, and every
/// record parses.
pub(crate) fn open(paths: &[PathBuf]) -> Result<Opened, DatasetError> {
    let mut schema: Option<SchemaRef> = None;
    let mut rows = 0u64;
    let mut first = None;
    for path in paths {
        let (headers, records) = reader(path)?;
        let file_schema = schema.get_or_insert_with(|| {
            let fields: Vec<Field> = headers
                .iter()
                .map(|name| Field::new(name, DataType::Utf8, true))
                .collect();
            Arc::new(Schema::new(fields))
        });
        let names = file_schema.fields().iter().map(|field| field.name());
        if !names.eq(headers.iter()) {
            return Err(DatasetError::Unreadable {
                path: path.clone(),
                message: format!(
                    "this file's header differs from that of {}",
                    paths[0].display()
                ),
            });
        }
        for record in records {
            let record = record?;
            if first.is_none() {
                first = Some(to_batch(path, file_schema, &[record])?);
            }
            rows += 1;
        }
    }
    let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    let first = first.unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    let source = CsvSource {
        paths: paths.to_vec(),
    };
    Ok((schema, rows, first, Source::Csv(source)))
}

type Records = Box<dyn Iterator<Item = Result<csv::StringRecord, DatasetError>> + Send>;

fn reader(path: &Path) -> Result<(Vec<String>, Records), DatasetError> {
    let file = fs_err::File::open(path)?;
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| DatasetError::malformed(path, Location::Header, e))?
        .iter()
        .enumerate()
        .map(|(position, name)| {
            let name = if position == 0 {
                name.trim_start_matches('\u{feff}')
            } else {
                name
            };
            name.to_owned()
        })
        .collect();
    check_header(path, &headers)?;
    let owned = path.to_path_buf();
    let records = reader.into_records().enumerate().map(move |(row, record)| {
        record.map_err(|error| {
            let location = Location::Row {
                row: row as u64,
                column: None,
            };
            DatasetError::malformed(&owned, location, error)
        })
    });
    Ok((headers, Box::new(records)))
}

fn check_header(path: &Path, headers: &[String]) -> Result<(), DatasetError> {
    for (position, name) in headers.iter().enumerate() {
        if headers[..position].contains(name) {
            return Err(DatasetError::DuplicateColumn {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    if let [only] = headers
        && only.contains('\t')
    {
        return Err(DatasetError::malformed(
            path,
            Location::Header,
            "the header is one column holding tabs\nhint: this looks like tab-separated values saved as .csv; save it as .csv with commas, or as .jsonl or .parquet",
        ));
    }
    Ok(())
}

fn to_batch(
    path: &Path,
    schema: &SchemaRef,
    records: &[csv::StringRecord],
) -> Result<RecordBatch, DatasetError> {
    let columns: Vec<ArrayRef> = (0..schema.fields().len())
        .map(|column| {
            let mut builder = StringBuilder::with_capacity(records.len(), records.len() * 64);
            for record in records {
                builder.append_option(record.get(column));
            }
            Arc::new(builder.finish()) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| DatasetError::arrow(path, "building a batch", e))
}

/// Re-reads the CSV files that the first pass accepted.
pub(crate) struct CsvSource {
    paths: Vec<PathBuf>,
}

impl CsvSource {
    /// The batches of every file in turn; no batch spans two files.
    pub(crate) fn batches(
        &self,
        schema: SchemaRef,
    ) -> impl Iterator<Item = Result<RecordBatch, DatasetError>> + Send + use<> {
        self.paths.clone().into_iter().flat_map(move |path| {
            let batches: Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send> =
                match reader(&path) {
                    Ok((_, records)) => Box::new(file_batches(path, schema.clone(), records)),
                    Err(error) => Box::new(std::iter::once(Err(error))),
                };
            batches
        })
    }
}

fn file_batches(
    path: PathBuf,
    schema: SchemaRef,
    mut records: Records,
) -> impl Iterator<Item = Result<RecordBatch, DatasetError>> + Send {
    std::iter::from_fn(move || {
        let mut chunk = Vec::with_capacity(BATCH_ROWS);
        for record in records.by_ref().take(BATCH_ROWS) {
            match record {
                Ok(record) => chunk.push(record),
                Err(error) => return Some(Err(error)),
            }
        }
        (!chunk.is_empty()).then(|| to_batch(&path, &schema, &chunk))
    })
}
