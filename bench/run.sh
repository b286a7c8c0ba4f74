#!/usr/bin/env bash
# Runs the whole benchmark suite (about 15 minutes on 2 cores) and prints one table; the figures
# also go to bench/results.json. Installs what it needs: build tools, the demo model, a llama.cpp
# build (llama-server, llama-bench), and distilabel in a virtualenv under ~/.cache/rejudge.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-tools.sh
cargo build --release --workspace --quiet
REJUDGE_BENCH_MODEL="$(scripts/demo-model.sh | tail -n 1)"
REJUDGE_BENCH_LLAMA_BIN="$(scripts/llama-server.sh | tail -n 1)"
venv="${REJUDGE_CACHE:-$HOME/.cache/rejudge}/bench-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import distilabel, requests" 2>/dev/null; then
  echo "bench: installing distilabel into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "distilabel[openai]==1.5.3" requests >&2
fi
export REJUDGE_BENCH_MODEL REJUDGE_BENCH_LLAMA_BIN REJUDGE_BENCH_PEER_PYTHON="$venv/bin/python"
exec python3 bench/run.py "$@"
