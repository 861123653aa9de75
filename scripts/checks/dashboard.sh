#!/usr/bin/env bash
# The dashboard in a real browser: installs Debian's chromium when missing,
# then runs the browser test (a running `magma-monitor demo`, the page loaded
# by headless Chromium, DOM values and a screenshot checked).
# MAGMA_MONITOR_UPDATE_SCREENSHOT=1 also refreshes docs/dashboard.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version 2>/dev/null | head -1
cargo test --locked --test dashboard_browser -- --nocapture
