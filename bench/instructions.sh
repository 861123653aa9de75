#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind:
# a figure that does not move with the host's noise, for comparing builds
# (requests/s on this machine vary by ±5 % between sittings).
#
#   bench/instructions.sh magma-monitor|hyper|floor [SECONDS]    (default 10 s)
#   MAGMA_MONITOR_BIN=path bench/instructions.sh magma-monitor
#   KEEP=dir bench/instructions.sh ...   keeps the callgrind profile in dir
#                                        (read it with callgrind_annotate)
#   PORT_BASE=n bench/instructions.sh ...  uses ports n, n+1, n+2 (default
#                                        18193, 18593, 18594 otherwise)
#
# The proxy runs under callgrind with one worker; instrumentation is switched
# on only after a warm-up, around one `wrk -c10` run of small POSTs (the same
# body as bench/cpu.sh). Kernel time is not counted: see bench/cpu.sh for that.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?magma-monitor, hyper or floor}
SECONDS_PER=${2:-10}
source bench/common.sh
command -v valgrind >/dev/null || { echo "installing valgrind" >&2; apt-get install -y -qq valgrind >/dev/null; }
bench_setup
if [[ -n ${PORT_BASE:-} ]]; then
  UP=$PORT_BASE; PROXY=$((PORT_BASE + 1)); ADMIN=$((PORT_BASE + 2))
else
  UP=18193; PROXY=18593; ADMIN=18594
fi
out=${KEEP:-$work}/callgrind.out

taskset -c 1 target/release/examples/bench_upstream 127.0.0.1:$UP 0 & pids+=($!)
grind=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$out")
case $TARGET in
  magma-monitor)
    TOKIO_WORKER_THREADS=1 "${grind[@]}" "${MAGMA_MONITOR_BIN:-target/release/magma-monitor}" \
      --listen 127.0.0.1:$PROXY --admin-listen 127.0.0.1:$ADMIN --upstream http://127.0.0.1:$UP \
      --upstream-health-path / --log-level error 2>"$work/valgrind.log" & pids+=($!) ;;
  hyper)
    TOKIO_WORKER_THREADS=1 "${grind[@]}" target/release/examples/bare_proxy \
      127.0.0.1:$PROXY http://127.0.0.1:$UP 2>"$work/valgrind.log" & pids+=($!) ;;
  floor)
    TOKIO_WORKER_THREADS=1 "${grind[@]}" target/release/examples/tokio_floor \
      127.0.0.1:$PROXY 127.0.0.1:$UP 2>"$work/valgrind.log" & pids+=($!) ;;
  *) echo "unknown target $TARGET" >&2; exit 2 ;;
esac
proxy_pid=${pids[-1]}
small_post
url=http://127.0.0.1:$PROXY/predict
for _ in $(seq 1 60); do  # valgrind takes seconds to start the proxy
  curl -s -o /dev/null "$url" -d @"$work/small.json" && break
  sleep 0.5
done
taskset -c 0 wrk -t1 -c10 -d3s -s "$work/small.lua" "$url" >/dev/null   # warm-up
callgrind_control -i on "$proxy_pid" >/dev/null 2>&1
result=$(taskset -c 0 wrk -t1 -c10 -d"${SECONDS_PER}s" -s "$work/small.lua" "$url")
callgrind_control -i off "$proxy_pid" >/dev/null 2>&1
callgrind_control -d "$proxy_pid" >/dev/null 2>&1
requests=$(awk '/requests in/{print $1}' <<<"$result")
# The dump on demand is the file with the ".1" suffix.
instructions=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
python3 -c "print(f'$TARGET: {$instructions / $requests:.0f} instructions/request ({$requests} requests)')"
if [[ $TARGET == magma-monitor ]]; then
  # The dashboard's time-series sampler wakes once a second whatever the load,
  # so its share of the figure above depends on how many requests the run
  # held. Its inclusive count (the largest line naming it) is taken out here,
  # which makes runs of different lengths comparable.
  sampler=$(callgrind_annotate --inclusive=yes "$out.1" 2>/dev/null \
    | awk 'index($0, "timeseries::run::{{closure}}") && !found {gsub(",", "", $1); print $1; found = 1}')
  python3 -c "print(f'$TARGET without the time-series sampler: {($instructions - ${sampler:-0}) / $requests:.0f} instructions/request')"
fi
