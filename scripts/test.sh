#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then
# runs formatting and lint checks, every Rust test, and every check script in
# scripts/checks/ (each installs its own tools into .tools/ or via apt).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
scripts/install-system-packages.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo build --locked --bins
cargo test --locked --all-targets

for check in scripts/checks/*.sh; do
  [ -e "$check" ] || continue
  step "$check"
  bash "$check"
done

step "all checks passed"
