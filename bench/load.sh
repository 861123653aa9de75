#!/usr/bin/env bash
# Load benchmark: direct to the upstream, through nginx, through haproxy,
# through a bare hyper proxy (examples/bare_proxy.rs: the floor of the
# libraries magma-monitor is built on), through a tokio proxy with no HTTP
# library (examples/tokio_floor.rs: what the runtime and sockets allow) and
# through magma-monitor, same upstream, same run, interleaved rounds.
#
#   bench/load.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s per case)
#   TARGETS="nginx magma-monitor" bench/load.sh ...   (a subset of the targets)
#   BASELINE_BIN=/path/to/older/magma-monitor TARGETS="nginx baseline magma-monitor" bench/load.sh ...
#                                  (another build of magma-monitor in the same run, as `baseline`)
#   CASES="small 20ms-upstream" bench/load.sh ...   (a subset of the cases: small, 1MiB, 20ms-upstream)
#
# wrk runs on CPU 0; the proxies and the upstream on CPU 1 (taskset). Each
# proxy gets one worker (nginx worker_processes 1, haproxy nbthread 1,
# bare hyper TOKIO_WORKER_THREADS=1, magma-monitor --worker-threads 1) and
# runs only while it is measured: started, warmed up for 2 s, measured,
# stopped, each against a freshly started upstream. Prints a Markdown table
# of the median over rounds of requests/s, p50 and p99.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECONDS_PER=${2:-10}
CONNS=${CONNS:-50}
source bench/common.sh
bench_setup

UP=18181; PROXY=18281; MM_ADMIN=18291

# The upstream and each proxy run only while one target is measured, so no
# other process on CPU 1 (an idle proxy's timers, magma-monitor's background
# threads) lands in its figures, and no target inherits the state an earlier
# run left in a long-lived upstream.
start_upstream() { # delay_ms -> sets upstream_pid, waits for the port
  taskset -c 1 target/release/examples/bench_upstream 127.0.0.1:$UP "$1" &
  upstream_pid=$!
  pids+=("$upstream_pid")
  wait_port "$UP" upstream
}

wait_port() { # port name
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  echo "$2 did not start" >&2
  return 1
}

stop() { # pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

start_target() { # name upstream_port -> sets target_pid, waits for the port
  local name=$1 upstream=$2
  case $name in
    nginx)
      nginx_conf "$PROXY:$upstream"
      taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" & ;;
    haproxy)
      cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend proxy
  bind 127.0.0.1:$PROXY
  default_backend upstream
backend upstream
  server up 127.0.0.1:$upstream
HAPROXY
      taskset -c 1 haproxy -f "$work/haproxy.cfg" -q & ;;
    hyper)
      TOKIO_WORKER_THREADS=1 taskset -c 1 target/release/examples/bare_proxy 127.0.0.1:$PROXY http://127.0.0.1:$upstream & ;;
    floor)
      TOKIO_WORKER_THREADS=1 taskset -c 1 target/release/examples/tokio_floor 127.0.0.1:$PROXY 127.0.0.1:$upstream & ;;
    baseline)
      # Another build of magma-monitor, measured in the same run (before/after).
      taskset -c 1 "${BASELINE_BIN:?set BASELINE_BIN to the magma-monitor binary to compare with}" --worker-threads 1 --listen 127.0.0.1:$PROXY --admin-listen 127.0.0.1:$MM_ADMIN \
        --upstream http://127.0.0.1:$upstream --upstream-health-path / --log-level error & ;;
    magma-monitor)
      taskset -c 1 target/release/magma-monitor --worker-threads 1 --listen 127.0.0.1:$PROXY --admin-listen 127.0.0.1:$MM_ADMIN \
        --upstream http://127.0.0.1:$upstream --upstream-health-path / --log-level error & ;;
  esac
  target_pid=$!
  pids+=("$target_pid")
  wait_port "$PROXY" "$name"
}

# Request bodies: a small JSON POST and a 1 MiB POST.
small='{"prompt":"What action should the robot take to pick up the cup?","image":"aGVsbG8="}'
python3 - "$work" <<'PY'
import sys, base64, os
work = sys.argv[1]
payload = base64.b64encode(os.urandom(786_000)).decode()
open(f"{work}/big.json", "w").write('{"prompt":"Describe the image.","image":"%s"}' % payload)
PY
for name in small big; do
  if [ $name = small ]; then body_file=$(mktemp -p "$work"); printf '%s' "$small" > "$body_file"; else body_file="$work/big.json"; fi
  cat > "$work/$name.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$body_file", "rb"); wrk.body = f:read("*a"); f:close()
LUA
done

run() { # port script -> "rps p50_ms p99_ms non2xx" after a 2 s warm-up
  local out
  taskset -c 0 wrk -t1 -c"$CONNS" -d2s -s "$work/$2.lua" "http://127.0.0.1:$1/predict" >/dev/null 2>&1
  out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECONDS_PER}s" --latency -s "$work/$2.lua" "http://127.0.0.1:$1/predict" 2>&1)
  python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(label), text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps:.0f} {ms('50%'):.3f} {ms('99%'):.3f} {errors.group(1) if errors else 0}")
PY
}

read -r -a targets <<<"${TARGETS:-direct nginx haproxy hyper floor magma-monitor}"
declare -A results
cases=()
for spec in "small:small:0" "1MiB:big:0" "20ms-upstream:small:20"; do  # case:body:upstream delay ms
  [[ " ${CASES:-small 1MiB 20ms-upstream} " == *" ${spec%%:*} "* ]] && cases+=("$spec")
done
for round in $(seq 1 "$ROUNDS"); do
  for spec in "${cases[@]}"; do
    IFS=: read -r case script delay <<<"$spec"
    for name in "${targets[@]}"; do
      start_upstream "$delay"
      if [ "$name" = direct ]; then
        r=$(run "$UP" "$script")
      else
        start_target "$name" "$UP"
        r=$(run "$PROXY" "$script")
        stop "$target_pid"
      fi
      stop "$upstream_pid"
      echo "round $round $case $name: $r" >&2
      results["$case|$name"]+="$r;"
    done
  done
done

echo
echo "| case | target | requests/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---:|---:|---:|---:|"
for spec in "${cases[@]}"; do
  case=${spec%%:*}
  for name in "${targets[@]}"; do
    python3 - "$case" "$name" "${results[$case|$name]}" <<'PY'
import statistics, sys
case, name, raw = sys.argv[1:4]
rows = [list(map(float, r.split())) for r in raw.split(";") if r.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
print(f"| {case} | {name} | {med(0):.0f} | {med(1):.3f} | {med(2):.3f} | {int(sum(r[3] for r in rows))} |")
PY
  done
done
