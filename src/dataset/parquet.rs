//! Parquet files and folders of shards, read natively as Arrow.

use super::read::{BATCH_ROWS, Source};
use super::{DatasetError, Location};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
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
    ArrowReaderMetadata::load(file.file(), ArrowReaderOptions::default())
        .map_err(|e| DatasetError::parquet(path, None, e))
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
