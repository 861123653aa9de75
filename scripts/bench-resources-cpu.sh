#!/usr/bin/env bash
# CPU used by the sidecar with the resource collectors on vs off, at the
# default intervals (5 s), measured from /proc/<pid>/stat (utime + stime).
#
#   cargo build --release && scripts/bench-resources-cpu.sh [seconds]
#
# "on": GPU collector against the fake NVML library (one GPU, every counter)
# plus the upstream-process collector on a child process; "off": --no-gpu and
# no upstream process. Both run side by side over the same window, unscraped.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-60}
bin=${BIN:-target/release/magma-monitor}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cc -shared -fPIC -O2 -o "$work/libfake-nvml.so" tests/fake_nvml/fake_nvml.c
cat >"$work/fake.conf" <<'CONF'
count=1
gpu0.name=NVIDIA H100 80GB HBM3
gpu0.uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000
gpu0.util_gpu=57
gpu0.util_mem=31
gpu0.mem_total=85899345920
gpu0.mem_used=18253611008
gpu0.mem_free=66571993088
gpu0.mem_reserved=1073741824
gpu0.temp=64
gpu0.power_mw=245500
gpu0.power_limit_mw=700000
gpu0.sm_mhz=1980
gpu0.mem_mhz=2619
gpu0.energy_mj=123456789
gpu0.ecc_corrected=0
gpu0.ecc_uncorrected=0
gpu0.throttle=0
gpu0.pcie_replay=0
gpu0.procs=4242:17179869184
CONF

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
sleep 100000 &
model=$!
FAKE_NVML_CONFIG="$work/fake.conf" "$bin" --listen "127.0.0.1:$(port)" --admin-listen "127.0.0.1:$(port)" \
    --nvml-lib "$work/libfake-nvml.so" --upstream-pid "$model" 2>"$work/on.log" &
on=$!
"$bin" --listen "127.0.0.1:$(port)" --admin-listen "127.0.0.1:$(port)" --no-gpu 2>"$work/off.log" &
off=$!
sleep 5
# CPU time in nanoseconds, summed over every thread (first field of
# /proc/<pid>/task/<tid>/schedstat; utime/stime in clock ticks are too coarse
# for a process this idle). Threads that ended in between are not counted,
# and the collectors' threads live as long as the process.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { print s }'; }
on0=$(cpu_ns $on); off0=$(cpu_ns $off)
sleep "$duration"
on1=$(cpu_ns $on); off1=$(cpu_ns $off)
awk -v a="$((on1 - on0))" -v b="$((off1 - off0))" -v d="$duration" 'BEGIN {
    printf "collectors on : %.1f ms CPU in %d s = %.4f%% of one core\n", a / 1e6, d, 100 * a / 1e9 / d
    printf "collectors off: %.1f ms CPU in %d s = %.4f%% of one core\n", b / 1e6, d, 100 * b / 1e9 / d
    printf "difference    : %.4f%% of one core\n", 100 * (a - b) / 1e9 / d
}'
