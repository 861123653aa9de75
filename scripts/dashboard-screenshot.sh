#!/usr/bin/env bash
# Refreshes docs/dashboard.png, the README's screenshot: plays one cycle of
# every demo phase (at --speed 2 with 60 s phases: about 2.5 minutes), then
# photographs the dashboard with headless Chromium just before the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEED=${SPEED:-2}
PHASE=${PHASE:-60}
ADMIN=127.0.0.1:${ADMIN_PORT:-19464}
PROXY=127.0.0.1:${PROXY_PORT:-18000}
cargo build --locked --bin magma-monitor
total=$(( 5 * PHASE / SPEED ))
./target/debug/magma-monitor demo --speed "$SPEED" --phase-duration "${PHASE}s" \
  --duration "$(( total + 10 ))s" --listen "$PROXY" --admin-listen "$ADMIN" > target/dashboard-demo.out 2>&1 &
demo=$!
trap 'kill -INT $demo 2>/dev/null || true' EXIT
sleep "$(( total - 5 ))"
profile=$(mktemp -d)
mkdir -p docs
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$profile" --window-size=1440,1300 --virtual-time-budget=6000 \
  --screenshot=docs/dashboard.png "http://$ADMIN/" 2>/dev/null
rm -rf "$profile"
wait $demo || true
trap - EXIT
tail -20 target/dashboard-demo.out
ls -l docs/dashboard.png
