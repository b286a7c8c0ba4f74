//! Writes a Parquet preference dataset of N rows with realistic text lengths: the rows of a
//! ShareGPT-style seed file (LLaMA-Factory's demo data), cycled, each prompt made unique.
//! Usage: `make-dataset SEED.json ROWS OUT.parquet`.

use arrow_array::{RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

const BATCH: usize = 4096;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, seed, rows, output] = &arguments[..] else {
        panic!("usage: make-dataset SEED.json ROWS OUT.parquet");
    };
    let rows: usize = rows.parse().unwrap();
    let seed: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(seed).unwrap()).unwrap();
    let text = |value: &serde_json::Value| value["value"].as_str().unwrap_or_default().to_owned();
    let seed: Vec<(String, String, String)> = seed
        .iter()
        .map(|row| {
            let prompt = row["conversations"]
                .as_array()
                .and_then(|turns| turns.last())
                .map(text)
                .unwrap_or_default();
            (prompt, text(&row["chosen"]), text(&row["rejected"]))
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("chosen", DataType::Utf8, false),
        Field::new("rejected", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(output).unwrap();
    let properties = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
    let mut start = 0;
    while start < rows {
        let end = (start + BATCH).min(rows);
        let pick = |i: usize| &seed[i % seed.len()];
        let ids = UInt64Array::from_iter_values((start..end).map(|i| i as u64));
        let prompts =
            StringArray::from_iter_values((start..end).map(|i| format!("{} (#{i})", pick(i).0)));
        let chosen = StringArray::from_iter_values((start..end).map(|i| pick(i).1.clone()));
        let rejected = StringArray::from_iter_values((start..end).map(|i| pick(i).2.clone()));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ids),
                Arc::new(prompts),
                Arc::new(chosen),
                Arc::new(rejected),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        start = end;
    }
    writer.close().unwrap();
}
