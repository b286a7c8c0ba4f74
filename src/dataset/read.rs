//! Readers for JSON Lines, JSON arrays, CSV and Parquet (a file or a folder of shards).
//!
//! Every reader yields rows as JSON objects, one at a time, so that a run never holds the whole
//! dataset (JSON arrays excepted: the format has to be parsed whole). Before the run, a first pass
//! ([`open_input`]) counts the rows, finds the columns and settles the Arrow schema that the
//! Parquet writer will use, so that a malformed file fails before any judge call is paid for.

use super::DatasetError;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Row = Map<String, Value>;

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
            _ => Err(DatasetError::read(
                path,
                "unknown input format; expected .jsonl, .json, .parquet, .csv or a folder of .parquet shards",
            )),
        }
    }
}

/// A streaming reader over the rows of an input, with what the first pass learned about it.
pub struct RowReader {
    /// The file or folder being read.
    pub path: PathBuf,
    /// The input's format.
    pub format: InputFormat,
    /// Column names in input order.
    pub columns: Vec<String>,
    /// Number of rows in the input.
    pub rows: u64,
    /// The Arrow schema of the input's columns, as the output will store them.
    pub schema: SchemaRef,
    /// Columns whose cells mix JSON types; the Parquet output stores them as JSON text.
    pub text_columns: BTreeSet<String>,
    /// The first row, used to recognise layouts that need a look at the data.
    pub first_row: Option<Row>,
    rows_left: Box<dyn Iterator<Item = Result<Row, DatasetError>> + Send>,
}

impl std::fmt::Debug for RowReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RowReader")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl Iterator for RowReader {
    type Item = Result<Row, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows_left.next()
    }
}

/// Opens an input, checks every row parses, and returns a reader positioned at the first row.
pub fn open_input(path: &Path) -> Result<RowReader, DatasetError> {
    if !path.exists() {
        return Err(DatasetError::read(path, "no such file or folder"));
    }
    match InputFormat::of(path)? {
        InputFormat::Jsonl => open_jsonl(path),
        InputFormat::Json => open_json(path),
        InputFormat::Csv => open_csv(path),
        InputFormat::Parquet => open_parquet(path),
    }
}

fn open_jsonl(path: &Path) -> Result<RowReader, DatasetError> {
    let mut survey = Survey::default();
    for row in jsonl_rows(path)? {
        survey.add(row?);
    }
    let owned = path.to_path_buf();
    survey.finish(path, InputFormat::Jsonl, Box::new(jsonl_rows(&owned)?))
}

fn jsonl_rows(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Row, DatasetError>> + Send + use<>, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::read(path, e))?;
    let path = path.to_path_buf();
    let lines = BufReader::with_capacity(1 << 20, file).lines().enumerate();
    Ok(lines.filter_map(move |(number, line)| {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                return Some(Err(DatasetError::read(
                    &path,
                    format!("line {}: {error}", number + 1),
                )));
            }
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(object_of(
            &path,
            &format!("line {}", number + 1),
            serde_json::from_str(&line),
        ))
    }))
}

fn object_of(
    path: &Path,
    place: &str,
    parsed: serde_json::Result<Value>,
) -> Result<Row, DatasetError> {
    match parsed {
        Ok(Value::Object(row)) => Ok(row),
        Ok(other) => Err(DatasetError::read(
            path,
            format!(
                "{place}: expected a JSON object, found {}",
                short(&other.to_string())
            ),
        )),
        Err(error) => Err(DatasetError::read(
            path,
            format!("{place}: invalid JSON: {error}"),
        )),
    }
}

fn open_json(path: &Path) -> Result<RowReader, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::read(path, e))?;
    let parsed: Value = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| DatasetError::read(path, format!("invalid JSON: {e}")))?;
    let Value::Array(items) = parsed else {
        return Err(DatasetError::read(
            path,
            "expected a JSON array of objects at the top level",
        ));
    };
    let mut rows = VecDeque::with_capacity(items.len());
    let mut survey = Survey::default();
    for (position, item) in items.into_iter().enumerate() {
        let row = object_of(path, &format!("row {position}"), Ok(item))?;
        survey.add(row.clone());
        rows.push_back(row);
    }
    survey.finish(path, InputFormat::Json, Box::new(rows.into_iter().map(Ok)))
}

fn open_csv(path: &Path) -> Result<RowReader, DatasetError> {
    let mut survey = Survey::default();
    for row in csv_rows(path)? {
        survey.add(row?);
    }
    survey.finish(path, InputFormat::Csv, Box::new(csv_rows(path)?))
}

fn csv_rows(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Row, DatasetError>> + Send + use<>, DatasetError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| DatasetError::read(path, e))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| DatasetError::read(path, format!("header line: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let path = path.to_path_buf();
    Ok(reader
        .into_records()
        .enumerate()
        .map(move |(position, record)| {
            let record =
                record.map_err(|e| DatasetError::read(&path, format!("row {position}: {e}")))?;
            Ok(headers
                .iter()
                .zip(record.iter())
                .map(|(name, cell)| (name.clone(), Value::String(cell.to_owned())))
                .collect())
        }))
}

fn open_parquet(path: &Path) -> Result<RowReader, DatasetError> {
    let shards = parquet_shards(path)?;
    let mut schema: Option<SchemaRef> = None;
    let mut rows = 0u64;
    for shard in &shards {
        let builder = parquet_builder(shard)?;
        rows += builder.metadata().file_metadata().num_rows().max(0) as u64;
        match &schema {
            None => schema = Some(builder.schema().clone()),
            Some(first) if first.fields() != builder.schema().fields() => {
                return Err(DatasetError::read(
                    shard,
                    "this shard's columns differ from the first shard's",
                ));
            }
            Some(_) => {}
        }
    }
    let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows_left: Box<dyn Iterator<Item = Result<Row, DatasetError>> + Send> =
        Box::new(shards.into_iter().flat_map(parquet_rows));
    let first_row = match rows_left.next() {
        Some(row) => Some(row?),
        None => None,
    };
    let rows_left = Box::new(first_row.clone().map(Ok).into_iter().chain(rows_left));
    Ok(RowReader {
        path: path.to_path_buf(),
        format: InputFormat::Parquet,
        columns,
        rows,
        schema: strip_metadata(&schema),
        text_columns: BTreeSet::new(),
        first_row,
        rows_left,
    })
}

fn parquet_shards(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut shards = Vec::new();
    collect_parquet(path, &mut shards).map_err(|e| DatasetError::read(path, e))?;
    shards.sort();
    if shards.is_empty() {
        return Err(DatasetError::read(
            path,
            "the folder holds no .parquet files",
        ));
    }
    Ok(shards)
}

fn collect_parquet(folder: &Path, shards: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_parquet(&path, shards)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            shards.push(path);
        }
    }
    Ok(())
}

fn parquet_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::read(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DatasetError::read(path, format!("not a readable Parquet file: {e}")))
}

/// Rows of one shard, decoded a batch at a time.
fn parquet_rows(path: PathBuf) -> Box<dyn Iterator<Item = Result<Row, DatasetError>> + Send> {
    let reader = match parquet_builder(&path).and_then(|builder| {
        builder
            .with_batch_size(256)
            .build()
            .map_err(|e| DatasetError::read(&path, e))
    }) {
        Ok(reader) => reader,
        Err(error) => return Box::new(std::iter::once(Err(error))),
    };
    let mut offset = 0usize;
    Box::new(reader.flat_map(move |batch| {
        let rows = batch
            .map_err(|e| DatasetError::read(&path, format!("near row {offset}: {e}")))
            .and_then(|batch| {
                offset += batch.num_rows();
                rows_of_batch(&batch).map_err(|e| DatasetError::read(&path, e))
            });
        let rows: Vec<Result<Row, DatasetError>> = match rows {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        rows
    }))
}

fn rows_of_batch(batch: &RecordBatch) -> Result<Vec<Row>, String> {
    let mut buffer = Vec::with_capacity(batch.get_array_memory_size());
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(&mut buffer);
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    if buffer.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buffer).map_err(|e| e.to_string())
}

fn strip_metadata(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(schema.fields().clone()))
}

/// Values kept per column for Arrow's type inference.
const SAMPLE_VALUES: usize = 2_000;

/// What the first pass over a JSON or CSV input learns: columns in order, row count, the JSON
/// kinds seen in each column (to find columns Arrow cannot type), and a bounded sample of each
/// column's non-string values for inference. Strings need no sample: a column of strings is text.
#[derive(Default)]
struct Survey {
    columns: Vec<String>,
    kinds: BTreeMap<String, BTreeSet<&'static str>>,
    rows: u64,
    first_row: Option<Row>,
    samples: BTreeMap<String, Vec<Value>>,
}

impl Survey {
    fn add(&mut self, row: Row) {
        for (name, value) in &row {
            let kinds = self.kinds.entry(name.clone()).or_insert_with(|| {
                self.columns.push(name.clone());
                BTreeSet::new()
            });
            let Some(kind) = json_kind(value) else {
                continue;
            };
            kinds.insert(kind);
            if kind != "string" {
                let sample = self.samples.entry(name.clone()).or_default();
                if sample.len() < SAMPLE_VALUES {
                    sample.push(value.clone());
                }
            }
        }
        self.rows += 1;
        if self.first_row.is_none() {
            self.first_row = Some(row);
        }
    }

    fn finish(
        self,
        path: &Path,
        format: InputFormat,
        rows_left: Box<dyn Iterator<Item = Result<Row, DatasetError>> + Send>,
    ) -> Result<RowReader, DatasetError> {
        let (schema, text_columns) = if format == InputFormat::Csv {
            let fields: Vec<Field> = self
                .columns
                .iter()
                .map(|name| Field::new(name, DataType::Utf8, true))
                .collect();
            (Arc::new(Schema::new(fields)), BTreeSet::new())
        } else {
            self.infer_schema()
        };
        Ok(RowReader {
            path: path.to_path_buf(),
            format,
            columns: self.columns,
            rows: self.rows,
            schema,
            text_columns,
            first_row: self.first_row,
            rows_left,
        })
    }

    /// Types each column on its own, so one odd column cannot spoil the others: strings (or only
    /// nulls) are text; one other kind is inferred by Arrow from the sample; mixed kinds, or
    /// nested values Arrow cannot reconcile, are stored as JSON text.
    fn infer_schema(&self) -> (SchemaRef, BTreeSet<String>) {
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut text_columns = BTreeSet::new();
        for name in &self.columns {
            let kinds = self.kinds.get(name).cloned().unwrap_or_default();
            let plain_text = kinds.iter().all(|kind| *kind == "string");
            let inferred = match kinds.len() {
                1 if !plain_text => self.infer_column(name),
                _ => None,
            };
            match inferred {
                Some(field) => fields.push(field),
                None => {
                    if !plain_text {
                        text_columns.insert(name.clone());
                    }
                    fields.push(Field::new(name, DataType::Utf8, true));
                }
            }
        }
        (Arc::new(Schema::new(fields)), text_columns)
    }

    fn infer_column(&self, name: &str) -> Option<Field> {
        let cells = self.samples.get(name)?.iter().map(|value| {
            let mut single = Map::new();
            single.insert(name.to_owned(), value.clone());
            Ok::<_, arrow_schema::ArrowError>(Value::Object(single))
        });
        let schema = arrow_json::reader::infer_json_schema_from_iterator(cells).ok()?;
        let field = schema.field_with_name(name).ok()?.clone();
        Some(field.with_nullable(true))
    }
}

fn json_kind(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some("boolean"),
        Value::Number(_) => Some("number"),
        Value::String(_) => Some("string"),
        Value::Array(_) => Some("list"),
        Value::Object(_) => Some("object"),
    }
}

fn short(text: &str) -> String {
    const LIMIT: usize = 60;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(LIMIT).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_typed_one_by_one() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("rows.jsonl");
        let rows = [
            r#"{"text": "a", "count": 1, "mixed": 1, "nested": {"from": "gpt", "value": "x"}, "empty": null}"#,
            r#"{"text": "b", "count": 2, "mixed": "two", "nested": {"from": "gpt", "value": "y"}, "empty": null}"#,
        ];
        std::fs::write(&path, rows.join("\n")).unwrap();
        let reader = open_input(&path).unwrap();
        let kind = |name: &str| {
            reader
                .schema
                .field_with_name(name)
                .unwrap()
                .data_type()
                .clone()
        };
        assert_eq!(kind("text"), DataType::Utf8);
        assert_eq!(kind("count"), DataType::Int64);
        assert_eq!(kind("mixed"), DataType::Utf8);
        assert!(matches!(kind("nested"), DataType::Struct(_)));
        assert_eq!(kind("empty"), DataType::Utf8);
        assert_eq!(reader.text_columns, BTreeSet::from(["mixed".to_string()]));
        assert_eq!(
            reader.columns,
            ["text", "count", "mixed", "nested", "empty"]
        );
        assert_eq!(reader.rows, 2);
        assert_eq!(reader.count(), 2);
    }
}
