"""Splits prometheus-operator objects out of rendered manifests and writes a
strict JSON schema for each of their kinds.

The schemas come from the pydantic models of the PyPI package
`cloudcoil-models-prometheus-operator` (generated from the operator's CRDs).
The models ignore unknown fields, so every object schema is made strict here
(`additionalProperties: false` wherever properties are listed), as the API
server's structural-schema pruning would silently drop such fields: a typo in a
ServiceMonitor is an error, not a no-op.

usage: crd_schemas.py OUT_DIR MANIFEST...
writes OUT_DIR/<Kind>.schema.json and OUT_DIR/<n>-<Kind>-<name>.json, and prints
the kinds it found, one per line, as "<Kind> <object files...>".
"""

import json
import sys
from pathlib import Path

import yaml
from cloudcoil.models.prometheus_operator import v1

KINDS = {"ServiceMonitor": v1.ServiceMonitor, "PodMonitor": v1.PodMonitor, "PrometheusRule": v1.PrometheusRule}


def ecma_pattern(pattern):
    """Go's inline case-insensitive flag `(?i)` is not ECMAScript regex syntax,
    which JSON Schema patterns use: spell it out with [aA] classes instead."""
    if "(?i)" not in pattern:
        return pattern
    body = pattern.replace("(?i)", "")
    if "[" in body or "\\" in body:
        raise SystemExit(f"cannot translate the Go pattern {pattern!r}")
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in body)


def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        if isinstance(node.get("pattern"), str):
            node["pattern"] = ecma_pattern(node["pattern"])
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    found = {}
    count = 0
    for manifest in sys.argv[2:]:
        with open(manifest, encoding="utf-8") as handle:
            for doc in yaml.safe_load_all(handle):
                if not doc or doc.get("apiVersion") != "monitoring.coreos.com/v1":
                    continue
                kind = doc.get("kind")
                if kind not in KINDS:
                    sys.exit(f"{manifest}: no schema for monitoring.coreos.com/v1 {kind}")
                count += 1
                path = out / f"{count}-{kind}-{doc['metadata']['name']}.json"
                path.write_text(json.dumps(doc), encoding="utf-8")
                found.setdefault(kind, []).append(str(path))
    for kind in found:
        schema = strict(KINDS[kind].model_json_schema(by_alias=True, mode="validation"))
        (out / f"{kind}.schema.json").write_text(json.dumps(schema), encoding="utf-8")
        print(kind, *found[kind])


if __name__ == "__main__":
    main()
