#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing.
# promtool and prometheus: metrics and rules checks; chromium: the dashboard page
# (tests/dashboard_browser.rs).
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# A font, so the dashboard screenshot has text to render.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's prometheus package starts a server as a service when it is
  # installed; the tests run their own on their own ports. Stop the service
  # this install started, through its own init script (by its pid file),
  # and nothing else: a Prometheus the user runs is left alone.
  if [[ " ${need[*]} " == *" prometheus "* ]]; then
    $SUDO invoke-rc.d prometheus stop >/dev/null 2>&1 || true
  fi
fi
promtool --version | head -1
