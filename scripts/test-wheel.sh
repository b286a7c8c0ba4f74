#!/usr/bin/env bash
# The wheel's own test: builds it (scripts/wheel.sh), checks it with auditwheel, installs it into
# a fresh virtualenv, runs `rejudge --version`, and re-ranks a small slice of examples/ from
# Python with the in-process demo model, once returning the output folder and once, with
# `datasets` installed, a datasets.Dataset.
#
# Slow the first time (the portable llama.cpp build compiles its CPU kernels 14 times; about 35
# minutes on 2 cores), so scripts/test.sh runs it only when REJUDGE_TEST_WHEEL=1.
set -euo pipefail
cd "$(dirname "$0")/.."

wheel="$(scripts/wheel.sh | tail -n 1)"
model="${REJUDGE_TEST_MODEL:-$(scripts/demo-model.sh | tail -n 1)}"
echo "rejudge: testing $wheel" >&2
python3 -m auditwheel show "$wheel"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$work/venv/bin/python" -m pip install --quiet "$wheel" >&2

version="$("$work/venv/bin/rejudge" --version)"
echo "installed: $version"
[[ "$version" == "rejudge $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ]]

# The in-process judge from Python, without datasets: the output folder comes back.
cd "$work"
head -n 4 "$OLDPWD/examples/it_sample.jsonl" > pairs.jsonl
REJUDGE_MODEL="$model" venv/bin/python - <<'PY'
import json, os, pathlib, rejudge

print("binary:", rejudge.binary())
out = rejudge.rerank(
    "pairs.jsonl", "out-folder",
    model_file=os.environ["REJUDGE_MODEL"], scoring="logprobs", concurrency=2, quiet=True,
)
assert isinstance(out, pathlib.Path), type(out)
report = json.loads((out / "report.json").read_text())
outcomes = report["outcomes"]
print("outcomes:", outcomes)
# Every row is accounted for; the real model judged at least one of them.
assert sum(outcomes.values()) == 4, outcomes
assert sum(outcomes.get(k, 0) for k in ("kept", "swapped", "tie")) >= 1, outcomes
assert (out / "data" / "train-00000-of-00001.parquet").exists()
try:
    rejudge.rerank("missing.jsonl", "out-missing", model_file=os.environ["REJUDGE_MODEL"], quiet=True)
except rejudge.RejudgeError as error:
    assert error.returncode == 1 and "missing.jsonl" in error.stderr, error
else:
    raise AssertionError("a missing input must raise RejudgeError")
PY

# With datasets installed, a Dataset comes back (the journal answers, so nothing is judged again).
venv/bin/python -m pip install --quiet datasets >&2
REJUDGE_MODEL="$model" venv/bin/python - <<'PY'
import os, datasets, rejudge

ds = rejudge.rerank(
    "pairs.jsonl", "out-folder",
    model_file=os.environ["REJUDGE_MODEL"], scoring="logprobs", concurrency=2, quiet=True,
)
assert isinstance(ds, datasets.Dataset), type(ds)
assert ds.num_rows == 4 and {"prompt", "chosen", "rejected", "outcome"} <= set(ds.column_names)
print("dataset:", ds)
PY
venv/bin/python -m rejudge --version
echo "rejudge: the wheel works"
