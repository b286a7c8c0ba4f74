//! Writers for the re-ranked dataset: Parquet in the Hugging Face layout, or JSON Lines.
//!
//! Both write to a temporary file beside the target and rename it into place when the run is
//! complete, so a crash never leaves a half-written file where a finished one is expected.

use super::DatasetError;
use arrow_json::reader::Decoder;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows held before they are encoded as one Arrow batch.
const BATCH_ROWS: usize = 512;
/// Rows per Parquet row group; small enough that the writer's buffer stays small.
const ROW_GROUP_ROWS: usize = 4096;

/// The output formats rejudge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// `data/train-00000-of-00001.parquet`, as the Hugging Face Hub lays out datasets.
    #[default]
    Parquet,
    /// `data/train.jsonl`.
    Jsonl,
}

impl OutputFormat {
    /// The data file's path inside an output folder.
    pub fn data_path(self, folder: &Path) -> PathBuf {
        let name = match self {
            OutputFormat::Parquet => "train-00000-of-00001.parquet",
            OutputFormat::Jsonl => "train.jsonl",
        };
        folder.join("data").join(name)
    }
}

/// The schema of the output: the input's columns (with `chosen` and `rejected` given one shared
/// type, since re-ranking moves values between them), then the added columns, replacing any
/// input column of the same name.
pub fn output_schema(
    input: &Schema,
    chosen: &str,
    rejected: &str,
    added: &[Field],
    text_columns: &mut BTreeSet<String>,
) -> SchemaRef {
    let shared = response_type(input, chosen, rejected, text_columns);
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .filter(|field| added.iter().all(|a| a.name() != field.name()))
        .map(|field| match (&shared, field.name()) {
            (Some(data_type), name) if name == chosen || name == rejected => {
                Field::new(name, data_type.clone(), true)
            }
            _ => field.as_ref().clone(),
        })
        .collect();
    fields.extend(added.iter().cloned());
    Arc::new(Schema::new(fields))
}

fn response_type(
    input: &Schema,
    chosen: &str,
    rejected: &str,
    text_columns: &mut BTreeSet<String>,
) -> Option<DataType> {
    let chosen_field = input.field_with_name(chosen).ok()?;
    let rejected_field = input.field_with_name(rejected).ok()?;
    if chosen_field.data_type() == rejected_field.data_type() {
        return Some(chosen_field.data_type().clone());
    }
    let merged = Schema::try_merge([
        Schema::new(vec![chosen_field.clone().with_name("response")]),
        Schema::new(vec![rejected_field.clone().with_name("response")]),
    ]);
    match merged {
        Ok(schema) if schema.field(0).data_type() != &DataType::Null => {
            Some(schema.field(0).data_type().clone())
        }
        _ => {
            text_columns.insert(chosen.to_owned());
            text_columns.insert(rejected.to_owned());
            Some(DataType::Utf8)
        }
    }
}

/// Writes output rows in order to a temporary file and moves it into place on [`finish`].
///
/// [`finish`]: RowWriter::finish
pub struct RowWriter {
    target: PathBuf,
    temporary: PathBuf,
    sink: Sink,
}

enum Sink {
    Parquet {
        writer: Box<ArrowWriter<File>>,
        decoder: Decoder,
        pending: Vec<Value>,
        text_columns: BTreeSet<String>,
    },
    Jsonl(BufWriter<File>),
}

impl RowWriter {
    /// Creates `folder/data/` and opens a temporary file there.
    pub fn create(
        folder: &Path,
        format: OutputFormat,
        schema: SchemaRef,
        text_columns: BTreeSet<String>,
    ) -> Result<Self, DatasetError> {
        let target = format.data_path(folder);
        let data_folder = target
            .parent()
            .expect("data path has a parent; this is a bug");
        std::fs::create_dir_all(data_folder).map_err(|e| DatasetError::write(data_folder, e))?;
        let file_name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("train");
        let temporary = data_folder.join(format!(".{file_name}.partial"));
        let file = File::create(&temporary).map_err(|e| DatasetError::write(&temporary, e))?;
        let sink = match format {
            OutputFormat::Jsonl => Sink::Jsonl(BufWriter::with_capacity(1 << 20, file)),
            OutputFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
                    .map_err(|e| DatasetError::write(&temporary, e))?;
                let decoder = arrow_json::ReaderBuilder::new(schema)
                    .with_batch_size(BATCH_ROWS)
                    .with_coerce_primitive(true)
                    .build_decoder()
                    .map_err(|e| DatasetError::write(&temporary, e))?;
                Sink::Parquet {
                    writer: Box::new(writer),
                    decoder,
                    pending: Vec::with_capacity(BATCH_ROWS),
                    text_columns,
                }
            }
        };
        Ok(RowWriter {
            target,
            temporary,
            sink,
        })
    }

    /// The path the data file will have once finished.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Appends one row.
    pub fn write(&mut self, mut row: Map<String, Value>) -> Result<(), DatasetError> {
        match &mut self.sink {
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, &row)
                    .map_err(|e| DatasetError::write(&self.temporary, e))?;
                out.write_all(b"\n")
                    .map_err(|e| DatasetError::write(&self.temporary, e))
            }
            Sink::Parquet {
                pending,
                text_columns,
                ..
            } => {
                for column in text_columns.iter() {
                    if let Some(cell) = row.get_mut(column) {
                        as_json_text(cell);
                    }
                }
                pending.push(Value::Object(row));
                if pending.len() >= BATCH_ROWS {
                    self.flush_batch()?;
                }
                Ok(())
            }
        }
    }

    fn flush_batch(&mut self) -> Result<(), DatasetError> {
        let Sink::Parquet {
            writer,
            decoder,
            pending,
            ..
        } = &mut self.sink
        else {
            return Ok(());
        };
        if pending.is_empty() {
            return Ok(());
        }
        let temporary = &self.temporary;
        decoder
            .serialize(pending)
            .map_err(|e| DatasetError::write(temporary, format!("encoding rows: {e}")))?;
        pending.clear();
        if let Some(batch) = decoder
            .flush()
            .map_err(|e| DatasetError::write(temporary, format!("encoding rows: {e}")))?
        {
            writer
                .write(&batch)
                .map_err(|e| DatasetError::write(temporary, e))?;
        }
        Ok(())
    }

    /// Flushes, syncs and renames the file into place; returns its final path.
    pub fn finish(mut self) -> Result<PathBuf, DatasetError> {
        self.flush_batch()?;
        let file = match self.sink {
            Sink::Jsonl(out) => out
                .into_inner()
                .map_err(|e| DatasetError::write(&self.temporary, e.error()))?,
            Sink::Parquet { writer, .. } => writer
                .into_inner()
                .map_err(|e| DatasetError::write(&self.temporary, e))?,
        };
        file.sync_all()
            .map_err(|e| DatasetError::write(&self.temporary, e))?;
        std::fs::rename(&self.temporary, &self.target)
            .map_err(|e| DatasetError::write(&self.target, e))?;
        Ok(self.target)
    }
}

/// Turns a cell that is not already a string into its JSON text.
fn as_json_text(cell: &mut Value) {
    if !matches!(cell, Value::String(_) | Value::Null) {
        *cell = Value::String(cell.to_string());
    }
}
