#!/usr/bin/env bash
# Coverage-guided fuzzing of the code that reads untrusted input: the verdict parser, Retry-After
# parsing, the dataset readers and the secret scrubber (targets in fuzz/fuzz_targets/).
#
# Usage: scripts/fuzz.sh [SECONDS]   (default 60 seconds per target)
#
# Installs cargo-fuzz if it is missing, builds every target once with AddressSanitizer (on the
# stable toolchain, through RUSTC_BOOTSTRAP=1), then runs each target for SECONDS from a scratch
# copy of its seeds in fuzz/seeds/, so nothing generated lands in the repository. Exits non-zero
# when a target finds a crash, naming the input that triggers it and how to run it again.
# REJUDGE_FUZZ_SANITIZER=none builds without AddressSanitizer (faster, finds panics only);
# REJUDGE_FUZZ_DEV=1 builds without optimisations (a quarter of the build time, far fewer runs per
# second): the bounded smoke run of scripts/test.sh uses both.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS]" >&2
  exit 2
fi
sanitizer="${REJUDGE_FUZZ_SANITIZER:-address}"
profile=()
[[ "${REJUDGE_FUZZ_DEV:-0}" == 1 ]] && profile=(--dev)
targets=(verdict_parser retry_after input_readers secrets)

# libFuzzer and SQLite are C/C++; the fuzz build needs a C++ compiler.
scripts/build-tools.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "rejudge: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >&2
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer); the stable compiler accepts them this way.
export RUSTC_BOOTSTRAP=1
fuzz() { cargo fuzz "$1" --sanitizer "$sanitizer" "${profile[@]}" "${@:2}"; }

build_started=$SECONDS
fuzz build
echo "rejudge: fuzz targets built in $((SECONDS - build_started)) s" >&2

scratch="$(mktemp -d "${TMPDIR:-/tmp}/rejudge-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/tmp"

failed=()
for target in "${targets[@]}"; do
  corpus="$scratch/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  cp fuzz/seeds/"$target"/* "$corpus"/
  log="$scratch/$target.log"
  marker="$scratch/$target.started"
  touch "$marker"
  echo "rejudge: fuzzing $target for $seconds s" >&2
  status=0
  TMPDIR="$scratch/tmp" fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=20 -print_final_stats=1 >"$log" 2>&1 || status=$?
  # libFuzzer's last status line ("#runs ... cov: ... ft: ... corp: ...") and its run count.
  grep -E '^#[0-9]+' "$log" | tail -n 1 >&2 || true
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units)' "$log" >&2 || true
  if ((status != 0)); then
    tail -n 60 "$log" >&2
    found="$(find "$artifacts" -type f -newer "$marker" | head -n 1)"
    echo "rejudge: $target failed (exit $status)" >&2
    if [[ -n $found ]]; then
      echo "rejudge: crashing input: $found" >&2
      echo "rejudge: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer ${profile[*]} $target $found" >&2
    fi
    failed+=("$target")
  fi
done

if ((${#failed[@]} > 0)); then
  echo "rejudge: fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "rejudge: no crashes in ${#targets[@]} targets, $seconds s each" >&2
