//! The re-ranked dataset: the output schema, the output batch (input columns with `chosen` and
//! `rejected` exchanged per row in their own Arrow type, plus the added columns), and writers for
//! Parquet in the Hugging Face layout or JSON Lines.
//!
//! Both writers write to a hidden temporary file beside the target and rename it into place
//! when the run is complete, so a crash never leaves a half-written file where a finished one is
//! expected, and a writer dropped before it finished removes its temporary file.

use super::cell;
use super::{ColumnMap, DatasetError};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per Parquet row group; small enough that the writer's buffer stays small.
const ROW_GROUP_ROWS: usize = 4096;
/// Longest min/max statistic kept per column chunk: long responses would otherwise be copied
/// whole into the footer, which the writer holds in memory until the end.
const STATISTICS_BYTES: usize = 64;

/// The output formats rejudge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
        self.shard_path(folder, None)
    }

    /// The data file of shard `index` of `count` (the Hub's shard names,
    /// `train-00002-of-00004.parquet`), or of the whole split when `None`.
    pub fn shard_path(self, folder: &Path, shard: Option<(u32, u32)>) -> PathBuf {
        let name = match (self, shard) {
            (OutputFormat::Parquet, None) => "train-00000-of-00001.parquet".to_owned(),
            (OutputFormat::Jsonl, None) => "train.jsonl".to_owned(),
            (OutputFormat::Parquet, Some((index, count))) => {
                format!("train-{index:05}-of-{count:05}.parquet")
            }
            (OutputFormat::Jsonl, Some((index, count))) => {
                format!("train-{index:05}-of-{count:05}.jsonl")
            }
        };
        folder.join("data").join(name)
    }
}

/// The schema of the output: the input's columns, then `added`. Fails before any work when an
/// input column already carries an added column's name. `chosen` and `rejected` keep their type
/// when they share one; otherwise both become text (JSON text for structured values), since
/// re-ranking moves values between them.
pub fn output_schema(
    path: &Path,
    input: &Schema,
    columns: &ColumnMap,
    added: &Fields,
) -> Result<SchemaRef, DatasetError> {
    let reserved: Vec<&str> = input
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|name| added.iter().any(|a| a.name() == name))
        .collect();
    if !reserved.is_empty() {
        return Err(DatasetError::ReservedColumns {
            path: path.to_path_buf(),
            names: reserved.join(", "),
        });
    }
    let shared = response_field(input, columns);
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .map(|field| match &shared {
            Some(shared) if [&columns.chosen, &columns.rejected].contains(&field.name()) => {
                shared.clone().with_name(field.name())
            }
            _ => field.as_ref().clone(),
        })
        .collect();
    fields.extend(added.iter().map(|f| f.as_ref().clone()));
    Ok(Arc::new(Schema::new(fields)))
}

/// The field both response columns get when their types differ; `None` when they agree.
fn response_field(input: &Schema, columns: &ColumnMap) -> Option<Field> {
    let chosen = input.field_with_name(&columns.chosen).ok()?;
    let rejected = input.field_with_name(&columns.rejected).ok()?;
    if chosen.data_type() == rejected.data_type() {
        return None;
    }
    let text = Field::new("response", DataType::Utf8, true);
    if is_string(chosen.data_type()) && is_string(rejected.data_type()) {
        Some(text)
    } else {
        Some(cell::json_text_field("response"))
    }
}

fn is_string(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string(values),
        _ => false,
    }
}

/// Assembles one output batch: every input column as it is, except that `chosen` and `rejected`
/// are exchanged where `swapped` is true, then the `added` columns.
pub fn output_batch(
    input: &RecordBatch,
    schema: &SchemaRef,
    columns: &ColumnMap,
    swapped: &BooleanArray,
    added: Vec<ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let input_schema = input.schema();
    let position = |name: &str| input_schema.index_of(name);
    let (chosen_at, rejected_at) = (position(&columns.chosen)?, position(&columns.rejected)?);
    let response = |at: usize| as_output_type(input.column(at), schema.field(at));
    let (chosen, rejected) = (response(chosen_at)?, response(rejected_at)?);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (at, column) in input.columns().iter().enumerate() {
        arrays.push(if at == chosen_at {
            arrow_select::zip::zip(swapped, &rejected, &chosen)?
        } else if at == rejected_at {
            arrow_select::zip::zip(swapped, &chosen, &rejected)?
        } else {
            column.clone()
        });
    }
    arrays.extend(added);
    RecordBatch::try_new(schema.clone(), arrays)
}

/// A response column in the output's type: unchanged when the types agree, else as text.
fn as_output_type(array: &ArrayRef, field: &Field) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == field.data_type() {
        return Ok(array.clone());
    }
    if !cell::is_json_text(field) {
        return arrow_cast::cast(array, field.data_type());
    }
    let texts: StringArray = (0..array.len())
        .map(|row| match cell::value(array, row, false) {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some(text),
            other => Some(other.to_string()),
        })
        .collect();
    Ok(Arc::new(texts))
}

/// Writes output batches in order to a temporary file and moves it into place on
/// [`finish`](OutputWriter::finish).
pub struct OutputWriter {
    target: PathBuf,
    temporary: PathBuf,
    sink: Option<Sink>,
}

enum Sink {
    Parquet(Box<ArrowWriter<File>>),
    Jsonl(Box<arrow_json::LineDelimitedWriter<BufWriter<File>>>),
}

impl OutputWriter {
    /// Creates the data file's folder and opens a temporary file beside `target`.
    pub fn create(
        target: &Path,
        format: OutputFormat,
        schema: SchemaRef,
    ) -> Result<Self, DatasetError> {
        let target = target.to_path_buf();
        let data_folder = target
            .parent()
            .expect("the data path has a parent; this is a bug");
        fs_err::create_dir_all(data_folder)?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("train");
        let temporary = data_folder.join(format!(".{name}.partial"));
        let file = fs_err::File::create(&temporary)?.into_parts().0;
        let sink = match format {
            OutputFormat::Jsonl => Sink::Jsonl(Box::new(
                arrow_json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(BufWriter::with_capacity(1 << 20, file)),
            )),
            OutputFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_statistics_truncate_length(Some(STATISTICS_BYTES))
                    .build();
                let writer = ArrowWriter::try_new(file, schema, Some(properties))
                    .map_err(|e| DatasetError::parquet(&temporary, None, e))?;
                Sink::Parquet(Box::new(writer))
            }
        };
        Ok(OutputWriter {
            target,
            temporary,
            sink: Some(sink),
        })
    }

    /// The path the data file will have once finished.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Appends one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), DatasetError> {
        let path = &self.temporary;
        match self
            .sink
            .as_mut()
            .expect("a writer is used until it finishes; this is a bug")
        {
            Sink::Parquet(writer) => writer
                .write(batch)
                .map_err(|e| DatasetError::parquet(path, None, e)),
            Sink::Jsonl(writer) => writer
                .write(batch)
                .map_err(|e| DatasetError::arrow(path, "writing JSON Lines", e)),
        }
    }

    /// Flushes, syncs and renames the file into place; returns its final path.
    pub fn finish(mut self) -> Result<PathBuf, DatasetError> {
        let path = self.temporary.clone();
        let file = match self.sink.take().expect("finish runs once; this is a bug") {
            Sink::Parquet(writer) => writer
                .into_inner()
                .map_err(|e| DatasetError::parquet(&path, None, e))?,
            Sink::Jsonl(mut writer) => {
                writer
                    .finish()
                    .map_err(|e| DatasetError::arrow(&path, "writing JSON Lines", e))?;
                writer
                    .into_inner()
                    .into_inner()
                    .map_err(|e| DatasetError::Io(e.into_error()))?
            }
        };
        file.sync_all()?;
        fs_err::rename(&self.temporary, &self.target)?;
        Ok(self.target.clone())
    }
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        if self.sink.is_some() {
            // An unfinished run leaves no half-written file behind; the journal keeps its answers.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ColumnOverrides;
    use crate::dataset::json::batch_of;
    use serde_json::json;

    fn columns(batch: &RecordBatch) -> ColumnMap {
        ColumnMap::detect(
            Path::new("t"),
            &batch.schema(),
            &ColumnOverrides::default(),
            batch,
        )
        .unwrap()
    }

    #[test]
    fn swaps_message_lists_in_their_own_type() {
        let batch = batch_of(&[
            json!({"prompt": "p", "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}),
            json!({"prompt": "q", "chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "d"}]}),
        ]);
        let map = columns(&batch);
        let added = Fields::from(vec![Field::new("outcome", DataType::Utf8, false)]);
        let schema = output_schema(Path::new("t"), &batch.schema(), &map, &added).unwrap();
        let outcome: ArrayRef = Arc::new(StringArray::from(vec!["swapped", "kept"]));
        let swapped = BooleanArray::from(vec![true, false]);
        let output = output_batch(&batch, &schema, &map, &swapped, vec![outcome]).unwrap();
        assert_eq!(
            output.schema().field(1).data_type(),
            batch.schema().field(1).data_type()
        );
        let chosen = cell::value(output.column(1), 0, false);
        assert_eq!(chosen[0]["content"], "b");
        assert_eq!(cell::value(output.column(1), 1, false)[0]["content"], "c");
    }

    #[test]
    fn added_names_in_the_input_are_refused() {
        let batch =
            batch_of(&[json!({"prompt": "p", "chosen": "a", "rejected": "b", "outcome": "x"})]);
        let added = Fields::from(vec![Field::new("outcome", DataType::Utf8, false)]);
        let error = output_schema(
            Path::new("in.jsonl"),
            &batch.schema(),
            &columns(&batch),
            &added,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("the column outcome"), "{error}");
        assert!(error.contains("hint:"), "{error}");
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let folder = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let target = OutputFormat::Parquet.data_path(folder.path());
        drop(OutputWriter::create(&target, OutputFormat::Parquet, schema).unwrap());
        assert_eq!(
            std::fs::read_dir(folder.path().join("data"))
                .unwrap()
                .count(),
            0
        );
    }
}
