//! Input files are whatever the user points rejudge at: opening one, streaming its batches and
//! mapping its columns may fail with an error, never with a panic.
//!
//! Input layout: the first byte picks the format (its value modulo 4: JSON Lines, JSON, CSV,
//! Parquet); the rest is the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rejudge::dataset::{ColumnMap, ColumnOverrides, Dataset};
use std::path::PathBuf;
use std::sync::OnceLock;

const EXTENSIONS: [&str; 4] = ["jsonl", "json", "csv", "parquet"];

/// One folder for the whole process, under `TMPDIR` (scripts/fuzz.sh points it at scratch).
fn folder() -> &'static PathBuf {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = std::env::temp_dir().join(format!("rejudge-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("the temporary folder can be created");
        folder
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&format, contents)) = data.split_first() else {
        return;
    };
    let path = folder().join(format!("input.{}", EXTENSIONS[usize::from(format % 4)]));
    std::fs::write(&path, contents).expect("the input file can be written");
    let Ok(dataset) = Dataset::open(&path) else {
        return;
    };
    let overrides = ColumnOverrides::default();
    // As the pipeline does: columns mapped from the first row, which is then read.
    let columns = ColumnMap::detect(&path, dataset.schema(), &overrides, dataset.first_row());
    if let Ok(columns) = &columns {
        let _ = columns.conversations(dataset.first_row());
    }
    let Ok(batches) = dataset.batches(None) else {
        return;
    };
    for batch in batches {
        let Ok(batch) = batch else {
            continue;
        };
        if let Ok(columns) = &columns {
            let _ = columns.conversations(&batch);
        }
        if let Ok(columns) = ColumnMap::detect(&path, dataset.schema(), &overrides, &batch) {
            let _ = columns.conversations(&batch);
        }
    }
});
