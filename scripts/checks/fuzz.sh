#!/usr/bin/env bash
# Fuzzes the parsers of client bytes (JSON scanner, multipart scanner, SSE
# parser, image-header reader) for a short bounded time each. HTTP framing
# is parsed by hyper alone (see docs/security.md).
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer=address); with the
# one stable toolchain installed here, RUSTC_BOOTSTRAP=1 unlocks them.
# cargo-fuzz is installed once into .tools/cargo (git-ignored).
# The committed seeds in fuzz/corpus/<target>/ are read only; what libFuzzer
# finds goes to .tools/fuzz-corpus/<target>/ so the repository stays small.
# FUZZ_SECONDS (default 20) sets the time per target.
set -euo pipefail
cd "$(dirname "$0")/../.."

TOOLS="$PWD/.tools"
export PATH="$TOOLS/cargo/bin:$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz into $TOOLS/cargo"
  cargo install cargo-fuzz --locked --root "$TOOLS/cargo"
fi
# libFuzzer is C++ built by the cc crate.
if ! command -v c++ >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq g++; else sudo apt-get install -y -qq g++; fi
fi

cargo fuzz build -O
for target in json_scan multipart sse image_header; do
  scratch="$TOOLS/fuzz-corpus/$target"
  mkdir -p "$scratch"
  rm -rf "fuzz/artifacts/$target"
  echo "==> fuzz $target for ${SECONDS_PER_TARGET}s"
  cargo fuzz run -O "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -print_final_stats=1 2>&1 |
    grep -E '^(Done|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY)|panicked|assertion' || true
  # cargo fuzz exits non-zero on a crash, but the pipe above hides it: check artifacts.
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzz target $target found a failing input:" >&2
    ls fuzz/artifacts/"$target" >&2
    exit 1
  fi
done
echo "fuzzing passed"
