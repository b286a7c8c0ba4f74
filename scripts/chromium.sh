#!/usr/bin/env bash
# Sets up what the browser test of review.html needs: Debian's chromium (Playwright cannot download
# its own browser builds here, and the distribution's build is what a reviewer is likely to have)
# and a pinned playwright-core to drive it, cached under ~/.cache/rejudge/browser/. Safe to run
# again: each step is skipped when its result is already there. Prints the folder holding
# node_modules on its last line, for REJUDGE_BROWSER_DIR.
set -euo pipefail

cache="${REJUDGE_CACHE:-$HOME/.cache/rejudge}"
dir="$cache/browser"
# Pinned so that a test run today and one next month drive the browser the same way.
playwright_version=1.65.1

packages=()
if ! command -v chromium >/dev/null 2>&1; then
  packages+=(chromium)
fi
# A CJK font, so that screenshots of Chinese or Japanese rows show glyphs rather than boxes.
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  packages+=(fonts-wqy-zenhei)
fi
if ((${#packages[@]})); then
  echo "rejudge: installing ${packages[*]} with apt-get" >&2
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    sudo=sudo
  fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
fi

installed=""
if [[ -f "$dir/node_modules/playwright-core/package.json" ]]; then
  installed="$(node -p 'require(process.argv[1]).version' "$dir/node_modules/playwright-core/package.json")"
fi
if [[ "$installed" != "$playwright_version" ]]; then
  echo "rejudge: installing playwright-core $playwright_version with npm" >&2
  mkdir -p "$dir"
  if [[ ! -f "$dir/package.json" ]]; then
    echo '{"name": "rejudge-browser-test", "private": true}' >"$dir/package.json"
  fi
  # No browser download happens for playwright-core; the flags keep npm quiet and offline-friendly.
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact \
    "playwright-core@$playwright_version" >&2
fi

echo "$dir"
