#!/usr/bin/env bash
# Regenerates the metric table in README.md from src/telemetry.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(cargo run -q --example catalogue)
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1]
text = open("README.md").read()
text = re.sub(r"<!-- catalogue:start -->.*?<!-- catalogue:end -->",
              "<!-- catalogue:start -->\n" + table + "\n<!-- catalogue:end -->", text, flags=re.S)
open("README.md", "w").write(text)
PY
