#!/usr/bin/env bash
# HTTP conformance and request-smuggling suite (docs/security.md): exact
# HTTP/1.1 bytes and HTTP/2 frames sent to the built binary, judged by a
# strict h11 upstream and by the proxy's own metrics; the same HTTP/1.1 cases
# then run through nginx for comparison (nginx never fails the check).
# h11 and h2 live in a venv under .tools/; nginx comes from apt when missing.
# MAGMA_MONITOR_BIN overrides the binary; extra arguments go to the suite
# (e.g. --only smuggle, --markdown table.md, -v).
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  apt_install --no-install-recommends python3-venv
fi
venv=.tools/conformance-venv
if ! "$venv/bin/python" -c "import h11, h2" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "h11>=0.14" "h2>=4.1"
fi

nginx_bin="$(command -v nginx || true)"
if [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ]; then
  nginx_bin=/usr/sbin/nginx
fi
if [ -z "$nginx_bin" ]; then
  apt_install nginx
  nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
fi

bin="${MAGMA_MONITOR_BIN:-target/debug/magma-monitor}"
if [ ! -x "$bin" ]; then
  echo "http_conformance: $bin is missing; run 'cargo build --locked --bins' or set MAGMA_MONITOR_BIN" >&2
  exit 1
fi

exec timeout 300 "$venv/bin/python" scripts/checks/http_conformance.py \
  --bin "$bin" --nginx "$nginx_bin" "$@"
