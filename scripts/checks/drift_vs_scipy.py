"""Runs `magma-monitor drift` on random CSV pairs and compares its numbers
with SciPy / NumPy computed independently. Exits non-zero on a mismatch."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp

BINARY = sys.argv[1]
rng = np.random.default_rng(20261125)
failures = []
compared = 0


def run(reference, current, *flags):
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.csv", Path(tmp) / "b.csv"
        np.savetxt(a, reference, delimiter=",", fmt="%.9g")
        np.savetxt(b, current, delimiter=",", fmt="%.9g")
        out = subprocess.run(
            [BINARY, "drift", "--reference", str(a), "--current", str(b), *flags],
            capture_output=True, text=True, check=True,
        )
        # Read back what the binary read, so both sides see the same numbers.
        return json.loads(out.stdout), np.loadtxt(a, delimiter=",", ndmin=2), np.loadtxt(b, delimiter=",", ndmin=2)


def close(label, got, want, rtol, atol):
    global compared
    compared += 1
    if not np.isclose(got, want, rtol=rtol, atol=atol):
        failures.append(f"{label}: got {got!r}, want {want!r}")


# KS: sizes from tiny to large, continuous and tied data, shifted or not.
for case in range(40):
    n, m = rng.integers(1, 400, size=2)
    d = int(rng.integers(1, 4))
    shift = rng.choice([0.0, 0.2, 0.5])
    if case % 3 == 0:
        x, y = rng.integers(0, 6, size=(n, d)), rng.integers(0, 6, size=(m, d)) + (shift > 0)
    else:
        x, y = rng.normal(size=(n, d)), rng.normal(shift, 1.0, size=(m, d))
    report, x, y = run(x, y, "--test", "ks")
    for f in range(d):
        want = ks_2samp(x[:, f], y[:, f], mode="asymp")
        close(f"ks case {case} n={n} m={m} feature {f} statistic", report["distance"][f], want.statistic, 1e-12, 1e-12)
        close(f"ks case {case} n={n} m={m} feature {f} p", report["p_values"][f], want.pvalue, 1e-6, 1e-10)

# Chi-square: 2..6 categories, Yates when there are 2.
for case in range(30):
    k = int(rng.integers(2, 7))
    n, m = rng.integers(5, 300, size=2)
    p = rng.dirichlet(np.ones(k))
    q = p if case % 2 == 0 else rng.dirichlet(np.ones(k))
    x = rng.choice(k, size=(n, 1), p=p)
    y = rng.choice(k, size=(m, 1), p=q)
    report, x, y = run(x, y, "--test", "chi2")
    cats = sorted(set(x[:, 0]) | set(y[:, 0]))
    table = [[int(np.sum(x[:, 0] == c)) for c in cats], [int(np.sum(y[:, 0] == c)) for c in cats]]
    if len(cats) < 2:
        continue
    want = chi2_contingency(table)
    close(f"chi2 case {case} statistic", report["distance"][0], want.statistic, 1e-9, 1e-9)
    close(f"chi2 case {case} p", report["p_value"], want.pvalue, 1e-8, 1e-12)

# MMD statistic and sigma against the textbook formulas.
for case in range(10):
    n, m = rng.integers(2, 150, size=2)
    d = int(rng.integers(1, 9))
    x, y = rng.normal(size=(n, d)), rng.normal(0.3, 1.0, size=(m, d))
    report, x, y = run(x, y, "--test", "mmd", "--permutations", "10")
    dxx = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    pairs = np.sort(dxx[np.triu_indices(n, 1)])
    sigma = np.sqrt(pairs[(len(pairs) - 1) // 2] / 2)
    k = lambda a, b: np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd2 = ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    close(f"mmd case {case} sigma", report["sigma"], sigma, 1e-5, 1e-7)
    close(f"mmd case {case} statistic", report["distance"], mmd2, 1e-4, 3e-6)

for failure in failures:
    print("MISMATCH", failure)
print(f"drift vs scipy: {compared} values compared, {len(failures)} mismatches")
sys.exit(1 if failures else 0)
