//! Every Arrow type passes through a re-rank with equal values and equal type, as pyarrow reads
//! them back; `chosen` and `rejected` keep their own type while being exchanged.

use crate::stub::Stub;
use crate::support::*;
use serde_json::Value;
use std::path::Path;

/// Writes a Parquet file with one column of each type pandas, `datasets` and pyarrow produce.
const WRITE_TYPED: &str = r#"
import sys, datetime, decimal
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n = 8
utc = datetime.timezone.utc
def pick(i, good, bad):
    return good if i % 2 == 0 else bad
columns = {
    "prompt": pa.array([f"Question {i}?" for i in range(n)]),
    "chosen": pa.array([[{"role": "assistant", "content": pick(i, "a good answer", "a bad answer")}] for i in range(n)]),
    "rejected": pa.array([[{"role": "assistant", "content": pick(i, "a bad answer", "a good answer")}] for i in range(n)]),
    "ts_utc": pa.array([datetime.datetime(2024, 1, 1, 12, 0, i, tzinfo=utc) for i in range(n)], pa.timestamp("us", tz="UTC")),
    "ts_rome": pa.array([datetime.datetime(2024, 6, 1, 8, i, tzinfo=utc) for i in range(n)], pa.timestamp("ms", tz="Europe/Rome")),
    "category": pa.array(["red", "green"] * (n // 2)).dictionary_encode(),
    "elapsed": pa.array([datetime.timedelta(seconds=i) for i in range(n)], pa.duration("s")),
    "big_text": pa.array([f"long text {i}" for i in range(n)], pa.large_string()),
    "big_list": pa.array([[i, i + 1] for i in range(n)], pa.large_list(pa.int64())),
    "nested": pa.array([{"a": i, "b": [{"c": f"x{i}"}], "d": {"e": float(i)}} for i in range(n)]),
    "tags": pa.array([[("k", i), ("j", -i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
    "price": pa.array([decimal.Decimal(f"{i}.25") for i in range(n)], pa.decimal128(10, 2)),
    "huge": pa.array([decimal.Decimal(f"12345678901234567890123456789.{i}") for i in range(n)], pa.decimal256(40, 5)),
    "blob": pa.array([bytes([0, i, 255]) for i in range(n)], pa.binary()),
    "half": pa.array(np.array([i / 4 for i in range(n)], dtype=np.float16), pa.float16()),
    "nothing": pa.nulls(n),
    "day": pa.array([datetime.date(2024, 1, i + 1) for i in range(n)], pa.date32()),
    "tiny": pa.array(list(range(n)), pa.int8()),
    "unsigned": pa.array([2**64 - 1 - i for i in range(n)], pa.uint64()),
    "maybe": pa.array([None if i % 3 == 0 else i for i in range(n)], pa.int32()),
}
pq.write_table(pa.table(columns), sys.argv[1], row_group_size=3)
print("{}")
"#;

/// Compares every input column with the output's, as pyarrow sees them.
const COMPARE: &str = r#"
import sys, json, pyarrow.parquet as pq
source = pq.read_table(sys.argv[1])
output = pq.read_table(sys.argv[2])
outcome = output.column("outcome").to_pylist()
report = {"differences": [], "swapped": outcome.count("swapped"), "kept": outcome.count("kept")}
for field in source.schema:
    out_field = output.schema.field(field.name)
    if out_field.type != field.type:
        report["differences"].append(f"{field.name}: type {field.type} became {out_field.type}")
        continue
    before, after = source.column(field.name).to_pylist(), output.column(field.name).to_pylist()
    if field.name in ("chosen", "rejected"):
        other = source.column("rejected" if field.name == "chosen" else "chosen").to_pylist()
        before = [o if state == "swapped" else b for b, o, state in zip(before, other, outcome)]
    if before != after:
        report["differences"].append(f"{field.name}: values {before!r} became {after!r}")
print(json.dumps(report))
"#;

#[test]
fn every_arrow_type_passes_through_with_its_values_and_type() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("typed.parquet");
    python(WRITE_TYPED, &[&input]);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    Rerank::new(&input)
        .judge(&stub.url)
        .output(&output)
        .succeeds();
    let comparison = python(COMPARE, &[&input, &parquet_output(&output)]);
    assert_eq!(
        comparison["differences"],
        Value::Array(vec![]),
        "{comparison}"
    );
    assert_eq!(
        (comparison["kept"].as_u64(), comparison["swapped"].as_u64()),
        (Some(4), Some(4))
    );
}

#[test]
fn exotic_columns_also_go_out_as_json_lines() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("typed.parquet");
    python(WRITE_TYPED, &[&input]);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    Rerank::new(&input)
        .judge(&stub.url)
        .output(&output)
        .args(&["--format", "jsonl"])
        .succeeds();
    let rows = jsonl_output(&output);
    assert_eq!(rows.len(), 8);
    assert_eq!(
        rows[0]["ts_rome"], "2024-06-01T10:00:00+02:00",
        "named zones are resolved"
    );
    assert_eq!(
        rows[1]["chosen"][0]["content"], "a good answer",
        "row 1 was swapped"
    );
    assert_eq!(rows[2]["category"], "red");
}

#[test]
fn a_corrupt_last_row_group_stops_the_run_before_any_call() {
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("corrupt.parquet");
    python(WRITE_TYPED, &[&input]);
    corrupt_last_row_group(&input);
    let stub = Stub::judging();
    let output = folder.path().join("out");
    let stderr = Rerank::new(&input).judge(&stub.url).output(&output).fails();
    assert!(stderr.contains("corrupt.parquet: row group 2"), "{stderr}");
    assert_eq!(
        stub.requests(),
        0,
        "no call is paid for before the input is known sound"
    );
    assert!(!output.join("data").exists(), "{stderr}");
}

/// Overwrites the first data page of the last row group's prompt column, keeping the footer.
fn corrupt_last_row_group(path: &Path) {
    let located = python(
        "import sys, json, pyarrow.parquet as pq\n\
         meta = pq.ParquetFile(sys.argv[1]).metadata\n\
         column = meta.row_group(meta.num_row_groups - 1).column(0)\n\
         print(json.dumps({'offset': column.data_page_offset, 'size': column.total_compressed_size}))",
        &[path],
    );
    let offset = located["offset"].as_u64().unwrap() as usize;
    let size = located["size"].as_u64().unwrap() as usize;
    let mut bytes = std::fs::read(path).unwrap();
    for byte in &mut bytes[offset..offset + size] {
        *byte = 0xAB;
    }
    std::fs::write(path, bytes).unwrap();
}
