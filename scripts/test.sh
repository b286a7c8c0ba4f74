#!/usr/bin/env bash
# The test suite, from a fresh machine: installs what the tests need (build tools, pyarrow and
# datasets, the gemma-3-270m demo model, a llama.cpp server build, Chromium and playwright-core;
# all cached under ~/.cache),
# checks formatting and lints, then runs every test, the end-to-end ones included.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-tools.sh
if ! python3 -c "import pyarrow, datasets" 2>/dev/null; then
  echo "rejudge: installing pyarrow and datasets for the tests" >&2
  python3 -m pip install --quiet pyarrow datasets >&2
fi
REJUDGE_TEST_MODEL="$(scripts/demo-model.sh | tail -n 1)"
REJUDGE_TEST_LLAMA_SERVER="$(scripts/llama-server.sh | tail -n 1)/llama-server"
# Headless Chromium and playwright-core for the review page's browser test.
REJUDGE_BROWSER_DIR="$(scripts/chromium.sh | tail -n 1)"
export REJUDGE_TEST_MODEL REJUDGE_TEST_LLAMA_SERVER REJUDGE_BROWSER_DIR

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The HTTP-only build (no llama.cpp) must stay whole too.
cargo clippy --no-default-features --lib --bins --quiet -- -D warnings
cargo test "$@"
# A bounded fuzz smoke run: every target from its seeds for a few seconds, unoptimised and without
# AddressSanitizer so that it builds in minutes (scripts/fuzz.sh alone runs the full campaign).
REJUDGE_FUZZ_DEV=1 REJUDGE_FUZZ_SANITIZER=none scripts/fuzz.sh "${REJUDGE_TEST_FUZZ_SECONDS:-10}"
# The Python wheel (a portable llama.cpp build: about 35 minutes the first time on 2 cores), only
# when asked for.
if [[ "${REJUDGE_TEST_WHEEL:-0}" == 1 ]]; then
  scripts/test-wheel.sh
fi
