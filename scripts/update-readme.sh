#!/usr/bin/env bash
# Regenerates the flag and metric tables in README.md from the code
# (src/reference_docs.rs); tests/readme.rs fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=$(cargo run -q --example reference_docs -- flags)
metrics=$(cargo run -q --example reference_docs -- metrics)
python3 - "$flags" "$metrics" <<'PY'
import re, sys
flags, metrics = sys.argv[1], sys.argv[2]
text = open("README.md").read()
for name, table in (("flags", flags), ("catalogue", metrics)):
    text = re.sub(r"<!-- %s:start -->.*?<!-- %s:end -->" % (name, name),
                  lambda _: "<!-- %s:start -->\n%s\n<!-- %s:end -->" % (name, table.strip("\n"), name), text, flags=re.S)
open("README.md", "w").write(text)
PY
