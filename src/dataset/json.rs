//! JSON Lines and JSON arrays: a survey pass that parses every row and types every column
//! ([`Kind`]), then batches decoded by arrow-json against that schema.

use super::read::{BATCH_ROWS, Source};
use super::typing::Kind;
use super::{DatasetError, Location};
use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Row = Map<String, Value>;
type Opened = (SchemaRef, u64, RecordBatch, Source);

/// Column order and the merged kind of each column.
#[derive(Default)]
struct Survey {
    columns: Vec<(String, Kind)>,
    positions: HashMap<String, usize>,
    rows: u64,
    first: Option<Row>,
}

impl Survey {
    fn add(&mut self, row: Row) {
        for (name, value) in &row {
            let kind = Kind::of(value);
            if let Some(&position) = self.positions.get(name) {
                let merged = std::mem::replace(&mut self.columns[position].1, Kind::Null);
                self.columns[position].1 = merged.merge(&kind);
            } else {
                self.positions.insert(name.clone(), self.columns.len());
                self.columns.push((name.clone(), kind));
            }
        }
        self.rows += 1;
        if self.first.is_none() {
            self.first = Some(row);
        }
    }

    /// The schema; columns without one Arrow type hold JSON text and say so in their metadata.
    fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(name, kind)| match kind.data_type() {
                Some(data_type) => Field::new(name, data_type, true),
                None => super::cell::json_text_field(name),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Reads JSON Lines files through, typing every column over all of them, then re-reads them for
/// the run, one file after the other.
pub(crate) fn open_jsonl(paths: &[PathBuf]) -> Result<Opened, DatasetError> {
    let mut survey = Survey::default();
    let mut first_path = None;
    for path in paths {
        for row in jsonl_rows(path)? {
            survey.add(row?.1);
            first_path.get_or_insert(path);
        }
    }
    let schema = survey.schema();
    let first = match first_path {
        Some(path) => decode(path, &schema, survey.first.into_iter().collect(), "line 1")?,
        None => RecordBatch::new_empty(schema.clone()),
    };
    let source = JsonlSource {
        paths: paths.to_vec(),
    };
    Ok((schema, survey.rows, first, Source::Jsonl(source)))
}

/// Reads JSON arrays whole (the format has no row boundaries to stream on) and decodes their
/// rows as one table.
pub(crate) fn open_json(paths: &[PathBuf]) -> Result<Opened, DatasetError> {
    let mut rows = Vec::new();
    let mut survey = Survey::default();
    for path in paths {
        for row in json_array(path)? {
            survey.add(row.clone());
            rows.push(row);
        }
    }
    let schema = survey.schema();
    let context_path = paths.first().map_or(Path::new(""), PathBuf::as_path);
    let mut batches = Vec::with_capacity(rows.len().div_ceil(BATCH_ROWS));
    let mut rest = rows.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Row> = rest.by_ref().take(BATCH_ROWS).collect();
        batches.push(decode(context_path, &schema, chunk, "rows")?);
    }
    let first = batches
        .first()
        .map_or_else(|| RecordBatch::new_empty(schema.clone()), |b| b.slice(0, 1));
    Ok((schema, survey.rows, first, Source::Json(batches)))
}

/// The objects of one JSON array file.
fn json_array(path: &Path) -> Result<Vec<Row>, DatasetError> {
    let mut bytes = Vec::new();
    fs_err::File::open(path)?.read_to_end(&mut bytes)?;
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let parsed: Value = serde_json::from_slice(text).map_err(|error| DatasetError::Unreadable {
        path: path.to_path_buf(),
        message: format!("invalid JSON: {error}"),
    })?;
    drop(bytes);
    let Value::Array(items) = parsed else {
        return Err(DatasetError::Unreadable {
            path: path.to_path_buf(),
            message: "expected a JSON array of objects at the top level".into(),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(position, item)| {
            let location = Location::Row {
                row: position as u64,
                column: None,
            };
            object(path, location, item)
        })
        .collect()
}

/// The rows of a JSON Lines file with their line numbers; blank lines are skipped and a byte
/// order mark on the first line is accepted.
fn jsonl_rows(
    path: &Path,
) -> Result<impl Iterator<Item = Result<(u64, Row), DatasetError>> + Send + use<>, DatasetError> {
    let file = fs_err::File::open(path)?;
    let path = path.to_path_buf();
    let lines = BufReader::with_capacity(1 << 20, file).lines().enumerate();
    Ok(lines.filter_map(move |(index, line)| {
        let number = index as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                return Some(Err(DatasetError::malformed(
                    &path,
                    Location::Line(number),
                    error,
                )));
            }
        };
        let text = if index == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        if text.trim().is_empty() {
            return None;
        }
        let parsed = serde_json::from_str(text).map_err(|error| {
            DatasetError::malformed(
                &path,
                Location::Line(number),
                format!("invalid JSON: {error}"),
            )
        });
        Some(
            parsed
                .and_then(|value| object(&path, Location::Line(number), value))
                .map(|row| (number, row)),
        )
    }))
}

fn object(path: &Path, location: Location, value: Value) -> Result<Row, DatasetError> {
    match value {
        Value::Object(row) => Ok(row),
        other => Err(DatasetError::malformed(
            path,
            location,
            format!(
                "expected a JSON object, found {}",
                excerpt(&other.to_string())
            ),
        )),
    }
}

/// Decodes rows into one batch of `schema`, writing the cells of JSON-text columns as text.
fn decode(
    path: &Path,
    schema: &SchemaRef,
    mut rows: Vec<Row>,
    place: &str,
) -> Result<RecordBatch, DatasetError> {
    let text_columns: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|field| super::cell::is_json_text(field))
        .map(|field| field.name().as_str())
        .collect();
    for row in &mut rows {
        for column in &text_columns {
            if let Some(cell) = row.get_mut(*column)
                && !matches!(cell, Value::String(_) | Value::Null)
            {
                *cell = Value::String(cell.to_string());
            }
        }
    }
    let context = || format!("{place}: decoding into Arrow");
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| DatasetError::arrow(path, context(), e))?;
    decoder
        .serialize(&rows)
        .map_err(|e| DatasetError::arrow(path, context(), e))?;
    let batch = decoder
        .flush()
        .map_err(|e| DatasetError::arrow(path, context(), e))?;
    Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// Re-reads the JSON Lines files that the survey accepted.
pub(crate) struct JsonlSource {
    paths: Vec<PathBuf>,
}

impl JsonlSource {
    /// The batches of every file in turn; no batch spans two files.
    pub(crate) fn batches(
        &self,
        schema: SchemaRef,
    ) -> impl Iterator<Item = Result<RecordBatch, DatasetError>> + Send + use<> {
        self.paths.clone().into_iter().flat_map(move |path| {
            let batches: Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send> =
                match file_batches(&path, schema.clone()) {
                    Ok(batches) => Box::new(batches),
                    Err(error) => Box::new(std::iter::once(Err(error))),
                };
            batches
        })
    }
}

fn file_batches(
    path: &Path,
    schema: SchemaRef,
) -> Result<impl Iterator<Item = Result<RecordBatch, DatasetError>> + Send + use<>, DatasetError> {
    let mut rows = jsonl_rows(path)?.peekable();
    let path = path.to_path_buf();
    Ok(std::iter::from_fn(move || {
        rows.peek()?;
        let mut chunk = Vec::with_capacity(BATCH_ROWS);
        let mut first_line = 0;
        for row in rows.by_ref().take(BATCH_ROWS) {
            match row {
                Ok((line, row)) => {
                    first_line = if chunk.is_empty() { line } else { first_line };
                    chunk.push(row);
                }
                Err(error) => return Some(Err(error)),
            }
        }
        Some(decode(
            &path,
            &schema,
            chunk,
            &format!("lines from {first_line}"),
        ))
    }))
}

fn excerpt(text: &str) -> String {
    const LIMIT: usize = 80;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(LIMIT).collect::<String>())
    }
}

/// A batch typed and decoded as a JSON input holding `values` would be.
#[cfg(test)]
pub(crate) fn batch_of(values: &[Value]) -> RecordBatch {
    let mut survey = Survey::default();
    let rows: Vec<Row> = values
        .iter()
        .map(|value| value.as_object().expect("test rows are objects").clone())
        .collect();
    for row in &rows {
        survey.add(row.clone());
    }
    decode(Path::new("test.jsonl"), &survey.schema(), rows, "rows").expect("test rows decode")
}
