#!/usr/bin/env bash
# Prefill speed of the wheel's portable binary against a build for the native CPU, same machine,
# model and rows. Each binary re-ranks the same 20 English pairs with the one-token pairwise
# protocol in-process (one generated token a row, so the time is prompt processing), in turns,
# best of three; prompt tokens come from each run's report.json.
#
#   bench/wheel.sh WHEEL_BINARY NATIVE_BINARY [MODEL.gguf]
#
# WHEEL_BINARY is the binary a `pip install` of the wheel put in SITE/rejudge.scripts/ (or the
# `rejudge` on that virtualenv's PATH); NATIVE_BINARY a `cargo build` of this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel_binary="$1"
native_binary="$2"
model="${3:-$(scripts/demo-model.sh | tail -n 1)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

measure() {
  local binary="$1" out="$work/out-$RANDOM"
  "$binary" rerank examples/dpo_en_demo_20.json --output "$out" --model-file "$model" \
    --mode pairwise --scoring logprobs --max-tokens 1 --order chosen-first --concurrency 4 \
    --format jsonl --quiet >/dev/null
  python3 - "$out/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(report["tokens"]["prompt"] / report["wall_seconds"])
PY
  rm -rf "$out"
}

best() { sort -g | tail -n 1; }
wheel_runs=() native_runs=()
for _ in 1 2 3; do
  wheel_runs+=("$(measure "$wheel_binary")")
  native_runs+=("$(measure "$native_binary")")
done
wheel="$(printf '%s\n' "${wheel_runs[@]}" | best)"
native="$(printf '%s\n' "${native_runs[@]}" | best)"
python3 - "$wheel" "$native" "${wheel_runs[*]}" "${native_runs[*]}" <<'PY'
import sys
wheel, native = float(sys.argv[1]), float(sys.argv[2])
print(f"wheel runs (prompt tok/s): {sys.argv[3]}")
print(f"native runs (prompt tok/s): {sys.argv[4]}")
print(f"| binary | prompt tokens/s (best of 3) |\n|---|---:|")
print(f"| native build | {native:,.0f} |\n| wheel (portable) | {wheel:,.0f} |")
print(f"ratio wheel/native: {wheel / native:.3f}")
PY
