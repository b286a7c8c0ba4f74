#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/ from the project's own data.

The seeds are committed; run this again (it needs pyarrow) only to change them.

- verdict_parser: the `answer` of every probe in tests/data/parser_probes.jsonl.
- input_readers: small valid inputs cut from examples/ and tests/data/, each led by its format
  byte (0 JSON Lines, 1 JSON, 2 CSV, 3 Parquet).
- retry_after: `Retry-After` values after a 16-byte header (clock seconds, nanoseconds,
  attempt number; little-endian).
- secrets: secret, user, password and echoed text split at NUL bytes; bytes 1-5 in the text
  echo the secret, its percent-encoding, the password, its percent-encoding, a Basic header.
"""

import csv
import io
import json
import shutil
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def fresh(target):
    folder = SEEDS / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def parser_seeds():
    folder = fresh("verdict_parser")
    for line in (ROOT / "tests/data/parser_probes.jsonl").read_text().splitlines():
        if line.strip():
            probe = json.loads(line)
            (folder / probe["id"]).write_text(probe["answer"])


def reader_seeds():
    folder = fresh("input_readers")
    italian = [
        json.loads(line)
        for line in (ROOT / "examples/it_sample.jsonl").read_text().splitlines()
        if line.strip()
    ]
    english = json.loads((ROOT / "tests/data/dpo_en_demo_40.json").read_text())
    # Two of the shortest ShareGPT rows; row 23 has a system turn.
    sharegpt = [english[32], english[23]]

    def write(name, format_byte, body):
        (folder / name).write_bytes(bytes([format_byte]) + body)

    def jsonl(rows):
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()

    write("jsonl-plain", 0, jsonl(italian[:6]))
    messages = [
        {
            "chosen": [
                {"role": "user", "content": row["prompt"]},
                {"role": "assistant", "content": row["chosen"]},
            ],
            "rejected": [
                {"role": "user", "content": row["prompt"]},
                {"role": "assistant", "content": row["rejected"]},
            ],
        }
        for row in italian[6:9]
    ]
    write("jsonl-messages", 0, jsonl(messages))
    write("jsonl-sharegpt", 0, jsonl(sharegpt))
    write("json-sharegpt", 1, json.dumps(sharegpt, indent=1).encode())
    alpaca = [
        {"instruction": row["prompt"], "input": "", "chosen": row["chosen"],
         "rejected": row["rejected"], "score": index}
        for index, row in enumerate(italian[9:12])
    ]
    write("json-alpaca", 1, json.dumps(alpaca, ensure_ascii=False).encode())

    text = io.StringIO()
    table = csv.DictWriter(text, fieldnames=["id", "prompt", "chosen", "rejected"])
    table.writeheader()
    table.writerows(italian[12:18])
    write("csv-plain", 2, text.getvalue().encode())

    def parquet(rows):
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        return sink.getvalue()

    write("parquet-plain", 3, parquet(italian[18:22]))
    write("parquet-sharegpt", 3, parquet(sharegpt))


def retry_seeds():
    folder = fresh("retry_after")
    now = 1_445_412_480  # Wed, 21 Oct 2015 07:28:00 GMT
    values = {
        "seconds": "3",
        "fraction": "0.5",
        "huge": "1e20",
        "negative": "-1",
        "nan": "NaN",
        "imf-date": "Wed, 21 Oct 2015 07:28:10 GMT",
        "rfc850-date": "Wednesday, 21-Oct-15 07:28:10 GMT",
        "asctime-date": "Wed Oct 21 07:28:10 2015",
        "past-date": "Wed, 21 Oct 2015 07:27:00 GMT",
    }
    for attempt, (name, value) in enumerate(values.items(), start=1):
        header = struct.pack("<qII", now, 0, attempt)
        (folder / name).write_bytes(header + value.encode())


def secret_seeds():
    folder = fresh("secrets")
    seeds = {
        "echoed-key": (b"sk-test-123456", b"ann", b"hunter22",
                       b'{"error": "bad key \x01", "headers": {"authorization": "Bearer \x01"}}'),
        "url-password": (b"sk-test-123456", b"ann", b"hunter22",
                         b"password \x03 leaked; encoded \x04; \x05"),
        "unknown-bearer": (b"", b"", b"", b"Authorization: bearer hf_abcdefghijklmnop, fine"),
        "encoded-key": (b"key with/slash+plus", b"me@home", b"p@ss:word!",
                        b"GET /v1?key=\x02 \x01"),
    }
    for name, (secret, user, password, text) in seeds.items():
        (folder / name).write_bytes(b"\0".join([secret, user, password, text]))


parser_seeds()
reader_seeds()
retry_seeds()
secret_seeds()
