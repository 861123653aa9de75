#!/usr/bin/env bash
# Cross-checks the offline drift command against SciPy/NumPy on random data:
# KS p-values (scipy.stats.ks_2samp, mode="asymp"), chi-square
# (scipy.stats.chi2_contingency) and the MMD statistic and median-heuristic
# sigma (direct NumPy formulas). SciPy lives in a venv under .tools/.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
venv=.tools/drift-venv
if ! "$venv/bin/python" -c "import scipy, numpy" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "scipy>=1.11" numpy
fi
cargo build --quiet --bin magma-monitor
"$venv/bin/python" scripts/checks/drift_vs_scipy.py target/debug/magma-monitor
