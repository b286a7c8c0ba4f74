#!/usr/bin/env bash
# The prompt-injection measurement (about two hours on 2 cores): builds rejudge twice as
# HTTP-only release binaries (this checkout, and an earlier commit in a temporary worktree, with
# one shared target folder), then runs bench/injection.py, which prints a table and writes
# bench/injection-results.json and the "Prompt injection" section of BENCHMARKS.md.
#
# Knobs: REJUDGE_INJECTION_BEFORE_COMMIT (default 3b03ffb), REJUDGE_INJECTION_TARGET (the shared
# CARGO_TARGET_DIR, default /tmp/injection-target), REJUDGE_INJECTION_REBUILD=1 (build the
# binaries even when /tmp/rejudge-before and /tmp/rejudge-after exist),
# REJUDGE_INJECTION_LLAMA_BIN (a folder with llama-server; default: scripts/llama-server.sh).
# Arguments go to bench/injection.py (for example --no-control).
set -euo pipefail
cd "$(dirname "$0")/.."

before_commit="${REJUDGE_INJECTION_BEFORE_COMMIT:-3b03ffb}"
target="${REJUDGE_INJECTION_TARGET:-/tmp/injection-target}"
after_bin=/tmp/rejudge-after
before_bin=/tmp/rejudge-before

if [[ "${REJUDGE_INJECTION_REBUILD:-0}" == 1 || ! -x "$after_bin" ]]; then
  echo "injection: building this checkout ($(git rev-parse --short HEAD))" >&2
  CARGO_TARGET_DIR="$target" cargo build --release --no-default-features --quiet
  cp "$target/release/rejudge" "$after_bin"
fi

if [[ "${REJUDGE_INJECTION_REBUILD:-0}" == 1 || ! -x "$before_bin" ]]; then
  echo "injection: building $before_commit in a temporary worktree" >&2
  tree=/tmp/injection-before
  git worktree add --detach "$tree" "$before_commit" >&2
  (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --release --no-default-features --quiet)
  cp "$target/release/rejudge" "$before_bin"
  git worktree remove --force "$tree"
fi

model="${REJUDGE_INJECTION_MODEL:-$(scripts/demo-model.sh | tail -n 1)}"
llama_bin="${REJUDGE_INJECTION_LLAMA_BIN:-$(scripts/llama-server.sh | tail -n 1)}"
export REJUDGE_INJECTION_MODEL="$model" REJUDGE_INJECTION_LLAMA_BIN="$llama_bin"
export REJUDGE_INJECTION_BEFORE_COMMIT="$before_commit"
exec python3 bench/injection.py "$@"
