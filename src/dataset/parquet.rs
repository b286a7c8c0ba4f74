//! Parquet files and folders of shards, read natively as Arrow.

use super::read::{BATCH_ROWS, Source};
use super::{DatasetError, Location};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Opened = (SchemaRef, u64, RecordBatch, Source);

/// Checks every shard of a file or folder: same columns, and every row group decodes (one at a
/// time, nothing kept).
pub(crate) fn open(path: &Path) -> Result<Opened, DatasetError> {
    open_shards(shards(path)?)
}

/// Checks every one of these shards, read in this order, as [`open`] does.
pub(crate) fn open_shards(shards: Vec<PathBuf>) -> Result<Opened, DatasetError> {
    let mut schema: Option<SchemaRef> = None;
    let mut rows = 0u64;
    for shard in &shards {
        let metadata = metadata(shard)?;
        let shard_schema = without_metadata(metadata.schema());
        match &schema {
            Some(first) if first.fields() != shard_schema.fields() => {
                return Err(DatasetError::Unreadable {
                    path: shard.clone(),
                    message: format!(
                        "this shard's columns differ from those of {}",
                        shards[0].display()
                    ),
                });
            }
            Some(_) => {}
            None => schema = Some(shard_schema),
        }
        rows += u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
        validate(shard, &metadata)?;
    }
    let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    let first = batches(shards.clone())
        .next()
        .transpose()?
        .map_or_else(|| RecordBatch::new_empty(schema.clone()), |b| b.slice(0, 1));
    Ok((schema, rows, first, Source::Parquet(shards)))
}

fn shards(path: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut shards = Vec::new();
    collect(path, &mut shards)?;
    shards.sort();
    if shards.is_empty() {
        return Err(DatasetError::Unreadable {
            path: path.to_path_buf(),
            message: "the folder holds no .parquet files".into(),
        });
    }
    Ok(shards)
}

fn collect(folder: &Path, shards: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    for entry in fs_err::read_dir(folder)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, shards)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            shards.push(path);
        }
    }
    Ok(())
}

fn metadata(path: &Path) -> Result<ArrowReaderMetadata, DatasetError> {
    let file = fs_err::File::open(path)?;
    let metadata = ArrowReaderMetadata::load(file.file(), ArrowReaderOptions::default())
        .map_err(|e| DatasetError::parquet(path, None, e))?;
    check_column_chunks(path, &metadata)?;
    Ok(metadata)
}

/// Refuses a footer that places a column chunk at a negative offset or gives it a negative size:
/// the decoder asserts both are non-negative and would panic on such a chunk.
fn check_column_chunks(path: &Path, metadata: &ArrowReaderMetadata) -> Result<(), DatasetError> {
    for (group, row_group) in metadata.metadata().row_groups().iter().enumerate() {
        for column in row_group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            if start < 0 || column.compressed_size() < 0 {
                let error = ParquetError::General(format!(
                    "column chunk {} has offset {start} and size {}",
                    column.column_path(),
                    column.compressed_size()
                ));
                return Err(DatasetError::parquet(
                    path,
                    Some(Location::RowGroup(group)),
                    error,
                ));
            }
        }
    }
    Ok(())
}

/// Decodes each row group and drops it, so a corrupt one is found before any judge call.
fn validate(path: &Path, metadata: &ArrowReaderMetadata) -> Result<(), DatasetError> {
    for group in 0..metadata.metadata().num_row_groups() {
        let location = || Some(Location::RowGroup(group));
        let file = fs_err::File::open(path)?;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            file.into_parts().0,
            metadata.clone(),
        )
        .with_row_groups(vec![group])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| DatasetError::parquet(path, location(), e))?;
        for batch in reader {
            batch.map_err(|e| DatasetError::parquet(path, location(), e.into()))?;
        }
    }
    Ok(())
}

/// The batches of every shard in order, with the file-level metadata dropped from their schema.
pub(crate) fn batches(
    shards: Vec<PathBuf>,
) -> impl Iterator<Item = Result<RecordBatch, DatasetError>> + Send {
    shards.into_iter().flat_map(|shard| {
        let reader = metadata(&shard).and_then(|metadata| {
            let file = fs_err::File::open(&shard)?;
            let schema = without_metadata(metadata.schema());
            ParquetRecordBatchReaderBuilder::new_with_metadata(file.into_parts().0, metadata)
                .with_batch_size(BATCH_ROWS)
                .build()
                .map(|reader| (reader, schema))
                .map_err(|e| DatasetError::parquet(&shard, None, e))
        });
        let batches: Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send> =
            match reader {
                Ok((reader, schema)) => Box::new(reader.map(move |batch| {
                    let batch = batch.map_err(|e| DatasetError::parquet(&shard, None, e.into()))?;
                    RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map_err(|e| DatasetError::arrow(&shard, "reading a batch", e))
                })),
                Err(error) => Box::new(std::iter::once(Err(error))),
            };
        batches
    })
}

/// The schema without file-level metadata (pandas' and `datasets`' descriptions of the input's
/// columns would be wrong for the output, which has more).
fn without_metadata(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(schema.fields().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};

    /// A Parquet file of three string columns whose footer is rewritten by `corrupt`.
    fn file_with_footer(
        folder: &Path,
        corrupt: impl Fn(ColumnChunkBuilder) -> ColumnChunkBuilder,
    ) -> PathBuf {
        let column = |text: &str| Arc::new(StringArray::from(vec![text])) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            ("prompt", column("Hi?")),
            ("chosen", column("Hello.")),
            ("rejected", column("Go away.")),
        ])
        .unwrap();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let valid = folder.join("valid.parquet");
        std::fs::write(&valid, &bytes).unwrap();

        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&std::fs::File::open(&valid).unwrap())
            .unwrap();
        let row_groups = metadata
            .row_groups()
            .iter()
            .map(|group| {
                let columns = group
                    .columns()
                    .iter()
                    .map(|column| corrupt(column.clone().into_builder()).build().unwrap())
                    .collect();
                group
                    .clone()
                    .into_builder()
                    .set_column_metadata(columns)
                    .build()
                    .unwrap()
            })
            .collect();
        let metadata = metadata.into_builder().set_row_groups(row_groups).build();
        let footer_length = u32::from_le_bytes(bytes[bytes.len() - 8..][..4].try_into().unwrap());
        bytes.truncate(bytes.len() - 8 - footer_length as usize);
        ParquetMetaDataWriter::new(&mut bytes, &metadata)
            .finish()
            .unwrap();
        let path = folder.join("corrupt.parquet");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    type ColumnChunkBuilder = parquet::file::metadata::ColumnChunkMetaDataBuilder;

    /// Found by fuzzing: a footer giving a column chunk a negative size made the decoder panic
    /// ("column start and length should not be negative") instead of `open` returning an error.
    #[test]
    fn negative_column_chunk_size_or_offset_is_an_error_not_a_panic() {
        let folder = tempfile::tempdir().unwrap();
        let unchanged = file_with_footer(folder.path(), |column| column);
        assert_eq!(
            open(&unchanged).unwrap().1,
            1,
            "the rewritten footer reads back"
        );
        let corruptions: [fn(ColumnChunkBuilder) -> ColumnChunkBuilder; 3] = [
            |column| column.set_total_compressed_size(-90),
            |column| column.set_dictionary_page_offset(Some(-4)),
            |column| {
                column
                    .set_dictionary_page_offset(None)
                    .set_data_page_offset(-4)
            },
        ];
        for corrupt in corruptions {
            let path = file_with_footer(folder.path(), corrupt);
            let error = open(&path).map(|_| ()).unwrap_err();
            assert!(
                matches!(
                    error,
                    DatasetError::Parquet {
                        location: Some(Location::RowGroup(0)),
                        ..
                    }
                ),
                "{error:?}"
            );
        }
    }
}
