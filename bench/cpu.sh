#!/usr/bin/env bash
# CPU time and context switches per request of one proxy under load.
#
#   bench/cpu.sh nginx|hyper|floor|magma-monitor [SECONDS]   (default 8 s)
#   MAGMA_MONITOR_BIN=path bench/cpu.sh magma-monitor  (compare two builds)
#
# Same pinning as bench/load.sh: wrk on CPU 0, the upstream and the proxy on
# CPU 1, one worker (TOKIO_WORKER_THREADS=1, which magma-monitor honours as
# --worker-threads 1, so older builds without the flag compare too). Reads
# the proxy's utime/stime (/proc/PID/stat) and context switches
# (/proc/PID/task/*/status) before and after one wrk run of small POSTs and
# prints requests/s, user and system microseconds per request and
# voluntary/involuntary switches per request.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?nginx, hyper, floor or magma-monitor}
SECONDS_PER=${2:-8}
source bench/common.sh
bench_setup
UP=18191; PROXY=18591

taskset -c 1 target/release/examples/bench_upstream 127.0.0.1:$UP 0 & pids+=($!)
case $TARGET in
  magma-monitor)
    TOKIO_WORKER_THREADS=1 taskset -c 1 "${MAGMA_MONITOR_BIN:-target/release/magma-monitor}" \
      --listen 127.0.0.1:$PROXY --admin-listen 127.0.0.1:18592 --upstream http://127.0.0.1:$UP \
      --upstream-health-path / --log-level error & pids+=($!) ;;
  hyper)
    TOKIO_WORKER_THREADS=1 taskset -c 1 target/release/examples/bare_proxy 127.0.0.1:$PROXY http://127.0.0.1:$UP & pids+=($!) ;;
  floor)
    TOKIO_WORKER_THREADS=1 taskset -c 1 target/release/examples/tokio_floor 127.0.0.1:$PROXY 127.0.0.1:$UP & pids+=($!) ;;
  nginx)
    nginx_conf "$PROXY:$UP"
    taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" & pids+=($!) ;;
  *) echo "unknown target $TARGET" >&2; exit 2 ;;
esac
proxy_pid=${pids[-1]}
sleep 1
small_post
url=http://127.0.0.1:$PROXY/predict
taskset -c 0 wrk -t1 -c50 -d2s -s "$work/small.lua" "$url" >/dev/null   # warm-up

snapshot() { # -> "utime stime voluntary involuntary"
  local cpu switches
  cpu=$(awk '{print $14, $15}' "/proc/$proxy_pid/stat")
  switches=$(cat /proc/"$proxy_pid"/task/*/status | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{n+=$2} END{print v, n}')
  echo "$cpu $switches"
}
before=$(snapshot)
out=$(taskset -c 0 wrk -t1 -c50 -d"${SECONDS_PER}s" -s "$work/small.lua" "$url")
after=$(snapshot)
python3 - "$TARGET" "$before" "$after" "$out" "$(getconf CLK_TCK)" <<'PY'
import re, sys
target, before, after, out, tck = sys.argv[1:6]
b, a = list(map(int, before.split())), list(map(int, after.split()))
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
us = 1e6 / int(tck) / requests
print(f"{target}: {rps:.0f} requests/s, user {(a[0]-b[0])*us:.2f} us/request, "
      f"system {(a[1]-b[1])*us:.2f} us/request, voluntary switches {(a[2]-b[2])/requests:.3f}/request, "
      f"involuntary {(a[3]-b[3])/requests:.3f}/request")
PY
