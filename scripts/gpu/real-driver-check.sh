#!/usr/bin/env bash
# Runs magma-monitor's GPU collector against a REAL NVIDIA driver once and
# checks what it reports against nvidia-smi. Needs a machine with an NVIDIA
# GPU, its driver (libnvidia-ml.so.1, nvidia-smi) and python3 with CUDA torch.
# Not part of CI (CI has no GPU); the results are written up in
# docs/gpu-real-driver.md.
#
# What it does:
#   1. records `nvidia-smi` and a CSV query of name, uuid, driver, memory,
#      utilisation, power, temperature and SM clock (again at the idle
#      scrape and under load);
#   2. starts scripts/gpu/torch_model_server.py on 127.0.0.1:18080, a
#      Magma-shaped server (/health, /predict) that holds 16 GiB of bf16
#      weights on the GPU and runs bf16 matmuls for each request;
#   3. starts magma-monitor in front of it (proxy :18000, admin :19464,
#      --gpu-interval 500ms, --upstream-pid = the server's pid);
#   4. scrapes /metrics and /api/resources idle, drives LOAD_SECONDS of
#      traffic through the proxy from CLIENTS threads, scrapes three times
#      and records nvidia-smi during the load, scrapes once more after it;
#   5. prints PASS/FAIL lines (scripts/gpu/check_tools.py evaluate):
#      magma_gpu_up, magma_gpu_info (name, driver, uuid), memory total within
#      1% of nvidia-smi, utilisation > 0 under load, the upstream process's
#      GPU memory >= 16 GiB (or why the pid mapping failed), power,
#      temperature and clocks plausible, every magma_gpu_collect_errors_total
#      series, and magma_request_duration_seconds count == requests sent.
#
# Usage (from the repository root):
#   OUT=/tmp/gpu-out bash scripts/gpu/real-driver-check.sh
# Environment:
#   OUT            where results go (default: a new temporary directory)
#   MONITOR_BIN    the magma-monitor binary (default .gpu/magma-monitor,
#                  else target/release/magma-monitor)
#   PYTHON         python with torch (default python3)
#   SERVER_ARGS    extra arguments of torch_model_server.py; a dry run on a
#                  machine without GPU: SERVER_ARGS="--backend stub"
#   WEIGHTS_GIB    GPU memory the server holds (default 16)
#   LOAD_SECONDS   length of the load phase (default 15)
#   CLIENTS        concurrent clients (default 4)
#
# Files in $OUT (at most 8, flat): nvidia-smi.txt, metrics-idle.txt,
# metrics-load.txt (three scrapes), metrics-final.txt, resources.json
# (idle and load), logs.txt (environment, server, monitor, load), summary.txt.
# Exit status: 0 when every check passed, 1 otherwise.

set -u
cd "$(dirname "$0")/../.."

OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PYTHON=${PYTHON:-python3}
MONITOR_BIN=${MONITOR_BIN:-}
if [ -z "$MONITOR_BIN" ]; then
    if [ -x .gpu/magma-monitor ]; then MONITOR_BIN=.gpu/magma-monitor; else MONITOR_BIN=target/release/magma-monitor; fi
fi
WEIGHTS_GIB=${WEIGHTS_GIB:-16}
LOAD_SECONDS=${LOAD_SECONDS:-15}
CLIENTS=${CLIENTS:-4}
SERVER_ARGS=${SERVER_ARGS:-}
TOOLS="$PYTHON scripts/gpu/check_tools.py"
export PYTHONUNBUFFERED=1

UPSTREAM_PORT=18080
PROXY_PORT=18000
ADMIN_PORT=19464
ADMIN="http://127.0.0.1:$ADMIN_PORT"

SMI="$OUT/nvidia-smi.txt"
LOGS="$OUT/logs.txt"
SMI_QUERY=name,uuid,driver_version,memory.total,memory.used,utilization.gpu,power.draw,temperature.gpu,clocks.sm
# Fields to compare the other gauges with (a separate query: one unknown field fails a whole query).
SMI_EXTRA=memory.free,memory.reserved,utilization.memory,power.limit,enforced.power.limit,clocks.mem,pcie.link.gen.current

say() { echo "[real-driver-check $(date +%T)] $*"; }

# nvidia-smi sections: "### label" then the output (missing tool noted, not fatal).
smi_section() {
    local label=$1; shift
    echo "### $label" >>"$SMI"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi "$@" >>"$SMI" 2>&1 || echo "(nvidia-smi exited $?)" >>"$SMI"
    else
        echo "(nvidia-smi not found)" >>"$SMI"
    fi
}

SERVER_PID=
MONITOR_PID=
cleanup() {
    [ -n "$MONITOR_PID" ] && kill "$MONITOR_PID" 2>/dev/null
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT

# ---- environment ------------------------------------------------------------
{
    echo "### environment"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "uname: $(uname -a)"
    echo "monitor: $MONITOR_BIN ($("$MONITOR_BIN" --version 2>&1))"
    echo "python: $($PYTHON --version 2>&1)"
    echo "torch: $($PYTHON -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>&1 | tail -1)"
    echo "self NSpid: $(grep NSpid /proc/self/status 2>/dev/null)"
    echo "libnvidia-ml in ldconfig: $(ldconfig -p 2>/dev/null | grep 'libnvidia-ml.so' | tr '\n' ' ')"
    echo "NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES-<unset>}"
} >>"$LOGS"

# The default name libnvidia-ml.so.1 is what production uses; pass --nvml-lib
# only when the loader cannot find it but a driver folder holds it.
NVML_ARGS=()
if ! ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml.so.1 '; then
    for candidate in /usr/local/nvidia/lib64/libnvidia-ml.so.1 /usr/local/nvidia/lib/libnvidia-ml.so.1 \
        /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 /usr/lib64/libnvidia-ml.so.1; do
        if [ -e "$candidate" ]; then NVML_ARGS=(--nvml-lib "$candidate"); break; fi
    done
fi
echo "nvml args: ${NVML_ARGS[*]:-(default libnvidia-ml.so.1)}" >>"$LOGS"

# ---- 1. nvidia-smi idle -----------------------------------------------------
say "nvidia-smi (idle)"
smi_section "nvidia-smi idle"
smi_section "csv idle" --query-gpu=$SMI_QUERY --format=csv
smi_section "csv extra idle" --query-gpu=$SMI_EXTRA --format=csv
smi_section "throttle idle" --query-gpu=clocks_throttle_reasons.active --format=csv

# ---- 2. the model server ----------------------------------------------------
say "starting torch_model_server.py ($WEIGHTS_GIB GiB) on :$UPSTREAM_PORT"
# shellcheck disable=SC2086 # SERVER_ARGS is a list of words
$PYTHON scripts/gpu/torch_model_server.py --port "$UPSTREAM_PORT" --weights-gib "$WEIGHTS_GIB" \
    $SERVER_ARGS >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
echo "$SERVER_PID" >"$WORK/upstream.pid"
if ! $TOOLS wait-http "http://127.0.0.1:$UPSTREAM_PORT/health" 120; then
    say "model server did not become healthy"
fi

# ---- 3. magma-monitor -------------------------------------------------------
say "starting magma-monitor (upstream pid $SERVER_PID)"
"$MONITOR_BIN" --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
    --admin-listen "127.0.0.1:$ADMIN_PORT" --gpu-interval 500ms --upstream-pid "$SERVER_PID" \
    --process-interval 1s "${NVML_ARGS[@]}" >"$WORK/monitor.log" 2>&1 &
MONITOR_PID=$!
$TOOLS wait-http "$ADMIN/healthz" 30 || say "admin server not up"
sleep 3   # a few GPU polls (500 ms) and process polls (1 s)

# ---- 4. idle scrape, load, scrapes under load, final scrape -----------------
say "idle scrape"
$TOOLS fetch "$ADMIN/metrics" "$OUT/metrics-idle.txt"
$TOOLS fetch "$ADMIN/api/resources" "$WORK/resources-idle.json"
smi_section "csv idle server" --query-gpu=$SMI_QUERY --format=csv
smi_section "compute-apps idle" --query-compute-apps=pid,process_name,used_memory --format=csv

say "load: $CLIENTS clients for $LOAD_SECONDS s through :$PROXY_PORT"
$TOOLS load "http://127.0.0.1:$PROXY_PORT/predict" "$LOAD_SECONDS" "$CLIENTS" "$WORK/load.json" \
    >"$WORK/load.log" 2>&1 &
LOAD_PID=$!
step=$(( LOAD_SECONDS / 4 )); [ "$step" -lt 1 ] && step=1
for i in 1 2 3; do
    sleep "$step"
    $TOOLS fetch "$ADMIN/metrics" "$OUT/metrics-load.txt" --label "load scrape $i at +$(( i * step ))s"
    if [ "$i" = 2 ]; then
        $TOOLS fetch "$ADMIN/api/resources" "$WORK/resources-load.json"
        smi_section "csv load" --query-gpu=$SMI_QUERY --format=csv
        smi_section "csv extra load" --query-gpu=$SMI_EXTRA --format=csv
        smi_section "throttle load" --query-gpu=clocks_throttle_reasons.active --format=csv
        smi_section "compute-apps load" --query-compute-apps=pid,process_name,used_memory --format=csv
        smi_section "nvidia-smi load"
    fi
done
wait "$LOAD_PID"
sleep 1   # the last responses' metrics
say "final scrape"
$TOOLS fetch "$ADMIN/metrics" "$OUT/metrics-final.txt"
$PYTHON -c 'import json, sys
def read(p):
    try:
        return json.load(open(p))
    except Exception as e:
        return {"error": str(e)}
json.dump({"idle": read(sys.argv[1]), "load": read(sys.argv[2])}, open(sys.argv[3], "w"), indent=1)' \
    "$WORK/resources-idle.json" "$WORK/resources-load.json" "$OUT/resources.json"

# ---- stop ---------------------------------------------------------------------
say "stopping"
kill "$MONITOR_PID" 2>/dev/null; wait "$MONITOR_PID" 2>/dev/null
MONITOR_PID=
kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
for part in server monitor load; do
    { echo "### $part log"; cat "$WORK/$part.log" 2>/dev/null; } >>"$LOGS"
done
{ echo "### load result"; cat "$WORK/load.json" 2>/dev/null; echo; } >>"$LOGS"

# ---- 5. checks ------------------------------------------------------------------
say "checks"
$TOOLS evaluate "$WORK" "$OUT"
status=$?
say "results in $OUT"
rm -rf "$WORK"
exit "$status"
