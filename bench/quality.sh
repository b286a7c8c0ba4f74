#!/usr/bin/env bash
# Judge quality by protocol on LLMBar (885 human-labelled pairs) with the demo model behind a
# real llama-server, then the in-process judge's rows/s per protocol. About two hours on 2 cores;
# `bench/quality.sh speed` runs the second part alone. Prints the tables and writes
# bench/quality-results.json.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-tools.sh
if [[ -z "${REJUDGE_QUALITY_BINARY:-}" ]]; then
  cargo build --release --bin rejudge --quiet
fi
REJUDGE_BENCH_MODEL="${REJUDGE_BENCH_MODEL:-$(scripts/demo-model.sh | tail -n 1)}"
REJUDGE_BENCH_LLAMA_BIN="$(scripts/llama-server.sh | tail -n 1)"
export REJUDGE_BENCH_MODEL REJUDGE_BENCH_LLAMA_BIN
exec python3 bench/quality.py "$@"
