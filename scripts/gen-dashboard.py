#!/usr/bin/env python3
"""Writes deploy/grafana/magma-monitor.json, the Grafana dashboard of magma-monitor.

The JSON is committed; this script is how it is made, so that a panel is added
here and the file regenerated (`scripts/sync-deploy.sh` runs it), and
`scripts/checks/deploy.sh` fails when the two differ. Standard library only.

Every query selects `job`, `instance` and `pod` from the dashboard variables;
`pod` is empty outside Kubernetes and the `.*` "All" value matches that too.
"""

import json
import sys
from pathlib import Path

SEL = 'job=~"$job", instance=~"$instance", pod=~"$pod"'
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


class Layout:
    """Places panels on Grafana's 24-column grid, row by row."""

    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self):
        value = self.next_id
        self.next_id += 1
        return value

    def row(self, title):
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": self._id(),
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            }
        )
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def panel(self, kind, title, description, targets, unit, w=8, h=8, options=None, defaults=None):
        if self.x + w > 24:
            self._newline()
        field_defaults = {"unit": unit}
        if defaults:
            field_defaults.update(defaults)
        self.panels.append(
            {
                "type": kind,
                "title": title,
                "description": description,
                "id": self._id(),
                "datasource": DS,
                "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
                "fieldConfig": {"defaults": field_defaults, "overrides": []},
                "options": options or {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "desc"}},
                "targets": [
                    {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self.x += w
        self.row_h = max(self.row_h, h)


def quantiles(metric, by="instance", qs=(0.5, 0.95, 0.99)):
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in qs
    ]


def build():
    g = Layout()

    g.row("Resources")
    g.panel("timeseries", "Sidecar CPU", "CPU used by magma-monitor itself (cores).",
            [(f"rate(magma_process_cpu_seconds_total{{{SEL}}}[{RATE}])", "{{instance}}")], "short")
    g.panel("timeseries", "Sidecar memory", "Resident memory of magma-monitor.",
            [(f"magma_process_resident_memory_bytes{{{SEL}}}", "{{instance}}")], "bytes")
    g.panel("timeseries", "Model process memory", "Resident memory of the model server process; steady growth is a leak (the guide's 200 ms to 2 s story).",
            [(f"magma_upstream_process_resident_memory_bytes{{{SEL}}}", "{{instance}}")], "bytes")
    g.panel("timeseries", "GPU utilisation", "Share of time the GPU was busy, per GPU.",
            [(f"magma_gpu_utilization_ratio{{{SEL}}}", "{{instance}} gpu {{gpu}}")], "percentunit",
            defaults={"min": 0, "max": 1})
    g.panel("timeseries", "GPU memory", "GPU memory used and total, per GPU.",
            [(f"magma_gpu_memory_used_bytes{{{SEL}}}", "used {{instance}} gpu {{gpu}}"),
             (f"magma_gpu_memory_total_bytes{{{SEL}}}", "total {{instance}} gpu {{gpu}}")], "bytes")
    g.panel("timeseries", "GPU temperature", "Temperature per GPU; the alert fires above 85 °C.",
            [(f"magma_gpu_temperature_celsius{{{SEL}}}", "{{instance}} gpu {{gpu}}")], "celsius")
    g.panel("timeseries", "GPU power", "Power draw per GPU.",
            [(f"magma_gpu_power_watts{{{SEL}}}", "{{instance}} gpu {{gpu}}")], "watt")

    g.row("Request performance and throughput")
    g.panel("timeseries", "Requests per second", "Answered requests per second, by route.",
            [(f"sum by (route) (rate(magma_requests_total{{{SEL}}}[{RATE}]))", "{{route}}")], "reqps")
    g.panel("timeseries", "Latency p50 / p95 / p99", "Request duration to the end of the response body. The guide alerts at p95 > 2 s.",
            quantiles("magma_request_duration_seconds"), "s")
    g.panel("timeseries", "Time to first byte p50 / p95 / p99", "Time until the upstream's response head arrived.",
            quantiles("magma_time_to_first_byte_seconds"), "s")
    g.panel("timeseries", "Requests in flight", "Requests being forwarded right now.",
            [(f"sum by (instance) (magma_requests_in_flight{{{SEL}}})", "{{instance}}")], "short")
    g.panel("timeseries", "p95 latency by task and modality", "Where the time goes: p95 per task and input modality.",
            [(f"histogram_quantile(0.95, sum by (task, modality, le) (rate(magma_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))", "{{task}} / {{modality}}")], "s")
    g.panel("timeseries", "Proxy overhead p50 / p99", "Time spent inside magma-monitor itself, not waiting for the client or the upstream.",
            quantiles("magma_proxy_overhead_seconds", qs=(0.5, 0.99)), "s")

    g.row("Errors and timeouts")
    g.panel("timeseries", "Errors per second by kind", "Failed requests by kind. HighErrorRate fires above 0.05/s for 5 minutes.",
            [(f"sum by (kind) (rate(magma_request_errors_total{{{SEL}}}[{RATE}]))", "{{kind}}")], "reqps")
    g.panel("timeseries", "Error ratio", "Failed requests as a share of answered requests.",
            [(f"sum by (instance) (rate(magma_request_errors_total{{{SEL}}}[{RATE}])) / sum by (instance) (rate(magma_requests_total{{{SEL}}}[{RATE}]))", "{{instance}}")],
            "percentunit")
    g.panel("timeseries", "Timeouts per second", "Requests the upstream did not answer within --upstream-timeout (504).",
            [(f'sum by (instance) (rate(magma_request_errors_total{{kind="timeout", {SEL}}}[{RATE}]))', "{{instance}}")], "reqps")
    g.panel("timeseries", "Responses by status class", "Answered requests by status class.",
            [(f"sum by (code) (rate(magma_requests_total{{{SEL}}}[{RATE}]))", "{{code}}")], "reqps")
    g.panel("stat", "Upstream healthy", "1 when the model server answered its health path at the last poll.",
            [(f"magma_upstream_up{{{SEL}}}", "{{instance}}")], "none", w=4,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none"},
            defaults={"thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}})
    g.panel("stat", "Sidecar ready", "1 while /readyz answers 200.",
            [(f"magma_ready{{{SEL}}}", "{{instance}}")], "none", w=4,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none"},
            defaults={"thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}})

    g.row("Prediction quality")
    g.panel("timeseries", "Output anomalies by kind", "Answers that were empty, repetitive, truncated, unparseable or out of range.",
            [(f"sum by (kind) (rate(magma_output_anomalies_total{{{SEL}}}[{RATE}]))", "{{kind}}")], "reqps")
    g.panel("timeseries", "Defective answer ratio", "Share of checked answers with at least one defect, by task (an answer with two kinds counts once).",
            [(f"sum by (task) (rate(magma_outputs_defective_total{{{SEL}}}[{RATE}])) / sum by (task) (rate(magma_outputs_checked_total{{{SEL}}}[{RATE}]))", "{{task}}")],
            "percentunit", defaults={"min": 0, "max": 1})
    g.panel("timeseries", "User feedback", "Thumbs up and down per second, from POST /api/feedback.",
            [(f"sum by (rating) (rate(magma_feedback_total{{{SEL}}}[{RATE}]))", "{{rating}}")], "reqps")
    g.panel("timeseries", "Quality score (median)", "Median score against ground truth, by metric (token F1, ROUGE-L, action error, mark match ...).",
            [(f"histogram_quantile(0.5, sum by (metric, le) (rate(magma_quality_score_bucket{{{SEL}}}[{RATE}])))", "{{metric}}")], "short")

    g.row("Drift")
    g.panel("timeseries", "Drift p-value", "p-value of the last drift test per detector; drift is flagged below --drift-p-val.",
            [(f"magma_drift_p_value{{{SEL}}}", "{{detector}} {{features}}")], "short",
            defaults={"min": 0, "max": 1})
    g.panel("timeseries", "Drift statistic and threshold", "Test statistic (MMD², KS, χ²) against its threshold.",
            [(f"magma_drift_statistic{{{SEL}}}", "statistic {{detector}} {{features}}"),
             (f"magma_drift_threshold{{{SEL}}}", "threshold {{detector}} {{features}}")], "short")
    g.panel("state-timeline", "Drift detected", "1 while the last test of the detector found drift.",
            [(f"magma_drift_detected{{{SEL}}}", "{{detector}} {{features}}")], "none",
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9},
            defaults={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})
    g.panel("timeseries", "Samples by outcome", "Sampled requests handed to analysis, and those dropped because the worker was busy.",
            [(f"sum by (outcome) (rate(magma_samples_total{{{SEL}}}[{RATE}]))", "{{outcome}}")], "reqps")

    g.row("Anomalies")
    g.panel("state-timeline", "Active anomalies", "1 while an anomaly is open on a signal; causes are in /api/anomalies.",
            [(f"magma_anomaly_active{{{SEL}}}", "{{signal}} {{kind}}")], "none", w=16,
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9},
            defaults={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})
    g.panel("timeseries", "Anomalies opened", "Anomalies opened in the window, by signal and kind.",
            [(f"sum by (signal, kind) (increase(magma_anomalies_total{{{SEL}}}[{RATE}]))", "{{signal}} {{kind}}")], "short")

    def query_var(name, label, query):
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": f"{name}-values"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "sort": 1,
            "current": {"text": "All", "value": "$__all"},
        }

    templating = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "default", "value": "default"},
        },
        query_var("job", "Job", "label_values(magma_build_info, job)"),
        query_var("pod", "Pod", 'label_values(magma_build_info{job=~"$job"}, pod)'),
        query_var("instance", "Instance", 'label_values(magma_build_info{job=~"$job", pod=~"$pod"}, instance)'),
    ]
    # "definition" is what Grafana's editor shows; it is not in the schema, so keep only `query`.
    for var in templating:
        var.pop("definition", None)

    return {
        "title": "magma-monitor",
        "uid": "magma-monitor",
        "description": "Magma model server seen through the magma-monitor sidecar: resources, latency, errors, quality, drift and anomalies.",
        "tags": ["magma", "magma-monitor", "ml"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [],
        "templating": {"list": templating},
        "panels": g.panels,
    }


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "deploy/grafana/magma-monitor.json"
    out.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
