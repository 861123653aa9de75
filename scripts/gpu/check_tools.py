#!/usr/bin/env python3
"""Helpers of scripts/gpu/real-driver-check.sh (Python standard library only,
so they run on a bare GPU image without curl or jq):

    wait-http URL SECONDS          wait until URL answers 200
    fetch URL FILE [--label TEXT]  append one GET of URL to FILE, under a "### TEXT" line
    load URL SECONDS CLIENTS FILE  POST Magma-shaped /predict requests for SECONDS
                                   from CLIENTS threads; write counts to FILE (JSON)
    evaluate WORKDIR OUTDIR        compare the scrapes with nvidia-smi; print and
                                   write PASS/FAIL lines (OUTDIR/summary.txt)
"""

import base64
import json
import os
import re
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

GIB = 1 << 30
MIB = 1 << 20


# --------------------------------------------------------------------- http

def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def cmd_wait_http(url, seconds):
    deadline = time.monotonic() + float(seconds)
    last = None
    while time.monotonic() < deadline:
        try:
            status, _ = http_get(url, timeout=2.0)
            if status == 200:
                return 0
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(0.25)
    print(f"wait-http: {url} not ready after {seconds} s ({last})", file=sys.stderr)
    return 1


def cmd_fetch(url, path, label=None):
    try:
        status, body = http_get(url, timeout=10.0)
        text = body.decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as error:
        status, text = None, f"fetch failed: {error}\n"
    with open(path, "a", encoding="utf-8") as out:
        if label:
            out.write(f"### {label} (HTTP {status}, unix {time.time():.3f})\n")
        out.write(text)
        if not text.endswith("\n"):
            out.write("\n")
    return 0 if status == 200 else 1


# --------------------------------------------------------------------- load

def tiny_png(width=32, height=32):
    """A valid RGB PNG, so the sidecar's image header and pixel sampling see
    a real image."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in ((x * 8) & 255, (y * 8) & 255, 128))
        for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def cmd_load(url, seconds, clients, path):
    seconds, clients = float(seconds), int(clients)
    image = base64.b64encode(tiny_png()).decode()
    prompts = ["pick up the red block", "open the drawer", "push the cup to the left",
               "What is in this image?"]
    lock = threading.Lock()
    result = {"url": url, "seconds": seconds, "clients": clients, "sent": 0,
              "status": {}, "errors": {}, "latencies_ms": []}
    deadline = time.monotonic() + seconds

    def client(worker):
        i = 0
        while time.monotonic() < deadline:
            body = json.dumps({"image": image, "prompt": prompts[(worker + i) % len(prompts)]}).encode()
            i += 1
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with lock:
                result["sent"] += 1
            started = time.monotonic()
            key, bucket = None, "status"
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                    key = str(response.status)
            except urllib.error.HTTPError as error:
                error.read()
                key = str(error.code)
            except (OSError, urllib.error.URLError) as error:
                key, bucket = type(error).__name__, "errors"
            elapsed = (time.monotonic() - started) * 1000.0
            with lock:
                result[bucket][key] = result[bucket].get(key, 0) + 1
                result["latencies_ms"].append(elapsed)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(result.pop("latencies_ms"))
    if lat:
        result["latency_ms"] = {"p50": round(lat[len(lat) // 2], 1),
                                "p95": round(lat[int(len(lat) * 0.95) - 1 if len(lat) > 1 else 0], 1),
                                "max": round(lat[-1], 1)}
    result["completed"] = sum(result["status"].values())
    with open(path, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1)
    print(f"load: {json.dumps(result)}")
    return 0


# ----------------------------------------------------------------- evaluate

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """Every sample of one exposition as (name, labels, value)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, value))
    return samples


def sections(path):
    """A file of '### label' sections -> [(label, text)]."""
    out, label, buf = [], None, []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return out
    for line in lines:
        if line.startswith("### "):
            if label is not None:
                out.append((label, "\n".join(buf)))
            label, buf = line[4:], []
        else:
            buf.append(line)
    if label is not None:
        out.append((label, "\n".join(buf)))
    return out


def first(samples, name, **want):
    for n, labels, value in samples:
        if n == name and all(labels.get(k) == v for k, v in want.items()):
            return labels, value
    return None, None


def all_of(samples, name):
    return [(labels, value) for n, labels, value in samples if n == name]


def parse_smi_csv(text):
    """`nvidia-smi --query-gpu=... --format=csv` -> dict of the first GPU,
    keys as queried, values with their unit stripped where numeric."""
    lines = [l for l in text.splitlines() if l.strip()]
    if len(lines) < 2:
        return {}
    # nvidia-smi answers some fields under their current name
    # (clocks.sm -> clocks.current.sm); key them as queried.
    aliases = {"clocks.current.sm": "clocks.sm", "clocks.current.memory": "clocks.mem"}
    keys = [k.strip().split(" [")[0] for k in lines[0].split(",")]
    keys = [aliases.get(k, k) for k in keys]
    values = [v.strip() for v in lines[1].split(",")]
    row = {}
    for k, v in zip(keys, values):
        if k in ("name", "uuid", "driver_version"):
            row[k] = v  # "570.100" is a version, not the number 570.1
            continue
        number = v.split(" ")[0]
        try:
            row[k] = float(number)
        except ValueError:
            row[k] = v
    return row


class Report:
    def __init__(self):
        self.lines = []
        self.failed = 0

    def check(self, name, ok, detail):
        verdict = "PASS" if ok else "FAIL"
        if not ok:
            self.failed += 1
        self.say(f"{verdict} {name}: {detail}")

    def info(self, name, detail):
        self.say(f"INFO {name}: {detail}")

    def say(self, line):
        print(line, flush=True)
        self.lines.append(line)


def cmd_evaluate(work, outdir):
    r = Report()
    smi = dict(sections(os.path.join(outdir, "nvidia-smi.txt")))
    # "csv idle" is taken before the model server starts (an empty GPU);
    # "csv idle server" next to the idle scrape, so compare with that one.
    smi_empty = parse_smi_csv(smi.get("csv idle", ""))
    smi_idle = parse_smi_csv(smi.get("csv idle server", "")) or smi_empty
    smi_load = parse_smi_csv(smi.get("csv load", ""))
    idle_text = open(os.path.join(outdir, "metrics-idle.txt"), encoding="utf-8").read()
    idle = parse_prometheus(idle_text)
    load_scrapes = [parse_prometheus(t) for _, t in sections(os.path.join(outdir, "metrics-load.txt"))]
    final = parse_prometheus(open(os.path.join(outdir, "metrics-final.txt"), encoding="utf-8").read())
    try:
        resources = json.load(open(os.path.join(outdir, "resources.json"), encoding="utf-8"))
    except (OSError, ValueError):
        resources = {}
    try:
        load = json.load(open(os.path.join(work, "load.json"), encoding="utf-8"))
    except (OSError, ValueError):
        load = {}
    upstream_pid = open(os.path.join(work, "upstream.pid")).read().strip() if os.path.exists(
        os.path.join(work, "upstream.pid")) else "?"
    # The second load scrape is taken right before nvidia-smi's load query:
    # compare that one with it.
    last_load = load_scrapes[1] if len(load_scrapes) > 1 else (load_scrapes[-1] if load_scrapes else [])

    # 1. magma_gpu_up
    _, up_idle = first(idle, "magma_gpu_up")
    _, up_load = first(last_load, "magma_gpu_up")
    r.check("magma_gpu_up", up_idle == 1 and up_load == 1, f"idle {up_idle}, load {up_load}")

    # 2. magma_gpu_info
    info, _ = first(idle, "magma_gpu_info")
    info = info or {}
    smi_driver = smi_idle.get("driver_version")
    r.check("magma_gpu_info name", "H200" in info.get("name", ""),
            f"name={info.get('name')!r} (nvidia-smi {smi_idle.get('name')!r}), uuid={info.get('uuid')}, "
            f"gpu={info.get('gpu')}, cuda_version={info.get('cuda_version')}")
    r.check("magma_gpu_info driver_version", smi_driver is not None and info.get("driver_version") == smi_driver,
            f"magma {info.get('driver_version')!r}, nvidia-smi {smi_driver!r}")
    if info.get("uuid") and smi_idle.get("uuid"):
        r.check("magma_gpu_info uuid", info["uuid"] == smi_idle["uuid"],
                f"magma {info['uuid']}, nvidia-smi {smi_idle['uuid']}")

    # 3. memory total
    _, total = first(idle, "magma_gpu_memory_total_bytes")
    smi_total = smi_idle.get("memory.total")
    if total is not None and isinstance(smi_total, float):
        smi_bytes = smi_total * MIB
        diff = abs(total - smi_bytes) / smi_bytes
        r.check("magma_gpu_memory_total_bytes", diff <= 0.01,
                f"{total:.0f} B = {total / MIB:.0f} MiB; nvidia-smi {smi_total:.0f} MiB; difference {diff * 100:.3f}%")
    else:
        r.check("magma_gpu_memory_total_bytes", False, f"magma {total}, nvidia-smi {smi_total}")
    for label, samples, row in (("idle", idle, smi_idle), ("load", last_load, smi_load)):
        _, used = first(samples, "magma_gpu_memory_used_bytes")
        _, reserved = first(samples, "magma_gpu_memory_reserved_bytes")
        _, free = first(samples, "magma_gpu_memory_free_bytes")
        r.info(f"memory {label}",
               f"used {fmt_mib(used)}, reserved {fmt_mib(reserved)}, free {fmt_mib(free)} "
               f"(nvidia-smi memory.used {row.get('memory.used')} MiB)")

    extra_idle = parse_smi_csv(smi.get("csv extra idle", ""))
    extra_load = parse_smi_csv(smi.get("csv extra load", ""))
    r.info("nvidia-smi before the model server started", f"{smi_empty}")
    r.info("nvidia-smi extra (idle | load)", f"{extra_idle} | {extra_load}")
    r.info("nvidia-smi throttle reasons (idle | load)",
           f"{smi.get('throttle idle', '').splitlines()[1:]} | {smi.get('throttle load', '').splitlines()[1:]}")

    # 4. utilization under load
    utils = [first(s, "magma_gpu_utilization_ratio")[1] for s in load_scrapes]
    utils = [u for u in utils if u is not None]
    peak = max(utils) if utils else None
    r.check("magma_gpu_utilization_ratio > 0 under load", peak is not None and peak > 0,
            f"load scrapes {utils}; idle {first(idle, 'magma_gpu_utilization_ratio')[1]}; "
            f"nvidia-smi utilization.gpu idle {smi_idle.get('utilization.gpu')} %, load {smi_load.get('utilization.gpu')} %")
    mem_utils = [first(s, "magma_gpu_memory_utilization_ratio")[1] for s in load_scrapes]
    r.info("magma_gpu_memory_utilization_ratio under load", f"{mem_utils}")

    # 5. the upstream process's GPU memory
    _, up_mem = first(last_load, "magma_upstream_process_gpu_memory_bytes")
    gpu = resources.get("load", {}).get("gpu", {}) if isinstance(resources.get("load"), dict) else {}
    devices = gpu.get("devices") or []
    processes = devices[0].get("processes") if devices else None
    if up_mem is not None:
        r.check("magma_upstream_process_gpu_memory_bytes >= 16 GiB", up_mem >= 16 * GIB,
                f"{up_mem:.0f} B = {up_mem / GIB:.2f} GiB (upstream pid {upstream_pid}; NVML processes {processes})")
    else:
        upstream = resources.get("load", {}).get("upstream", {}) if isinstance(resources.get("load"), dict) else {}
        why = []
        if not processes:
            why.append(f"NVML listed no process on the GPU (processes={processes!r})")
        else:
            pids = [p.get("pid") for p in processes]
            why.append(f"NVML pids {pids} vs upstream pid {upstream_pid}")
        why.append(f"upstream collector pid={upstream.get('pid')} up={upstream.get('up')}")
        why.append(f"sidecar NSpid: {read_nspid()}")
        r.check("magma_upstream_process_gpu_memory_bytes >= 16 GiB", False,
                "series absent (no pid mapping): " + "; ".join(why))
    _, proc_mem = first(last_load, "magma_gpu_process_memory_bytes")
    _, nproc = first(last_load, "magma_gpu_processes")
    r.info("magma_gpu_process_memory_bytes / magma_gpu_processes (load)",
           f"{fmt_gib(proc_mem)}, {nproc} process(es); nvidia-smi compute apps: "
           f"{' | '.join(smi.get('compute-apps load', '').splitlines()[1:]) or 'none'}")

    # 6. power, temperature, clocks
    _, power = first(last_load, "magma_gpu_power_watts")
    _, limit = first(last_load, "magma_gpu_power_limit_watts")
    r.check("magma_gpu_power_watts", power is not None and 20 <= power <= (limit or 1000) * 1.1,
            f"load {power} W (limit {limit} W), idle {first(idle, 'magma_gpu_power_watts')[1]} W; "
            f"nvidia-smi power.draw idle {smi_idle.get('power.draw')} W, load {smi_load.get('power.draw')} W")
    _, temp = first(last_load, "magma_gpu_temperature_celsius")
    r.check("magma_gpu_temperature_celsius", temp is not None and 10 <= temp <= 100,
            f"load {temp} C, idle {first(idle, 'magma_gpu_temperature_celsius')[1]} C; "
            f"nvidia-smi idle {smi_idle.get('temperature.gpu')} C, load {smi_load.get('temperature.gpu')} C")
    _, sm = first(last_load, "magma_gpu_sm_clock_hertz")
    _, memclk = first(last_load, "magma_gpu_memory_clock_hertz")
    r.check("magma_gpu_sm_clock_hertz", sm is not None and 1e8 <= sm <= 3e9,
            f"load {fmt_mhz(sm)}, idle {fmt_mhz(first(idle, 'magma_gpu_sm_clock_hertz')[1])}; "
            f"nvidia-smi clocks.sm idle {smi_idle.get('clocks.sm')} MHz, load {smi_load.get('clocks.sm')} MHz")
    r.check("magma_gpu_memory_clock_hertz", memclk is not None and 1e8 <= memclk <= 1e10, f"load {fmt_mhz(memclk)}")
    _, e0 = first(idle, "magma_gpu_energy_joules_total")
    _, e1 = first(final, "magma_gpu_energy_joules_total")
    r.info("magma_gpu_energy_joules_total", f"idle {e0}, after load {e1}"
           + (f" (+{e1 - e0:.0f} J)" if e0 is not None and e1 is not None else ""))
    for name in ("magma_gpu_ecc_errors_total", "magma_gpu_pcie_replays_total", "magma_gpu_device_up"):
        r.info(name, "; ".join(f"{lbl.get('type', '')}={v}" for lbl, v in all_of(final, name)) or "absent")
    active = [lbl.get("reason") for lbl, v in all_of(last_load, "magma_gpu_throttled") if v == 1]
    idle_active = [lbl.get("reason") for lbl, v in all_of(idle, "magma_gpu_throttled") if v == 1]
    r.info("magma_gpu_throttled", f"{len(all_of(last_load, 'magma_gpu_throttled'))} series; active idle {idle_active}, load {active}")
    _, poll_sum = first(final, "magma_gpu_poll_duration_seconds_sum")
    _, poll_count = first(final, "magma_gpu_poll_duration_seconds_count")
    if poll_sum is not None and poll_count:
        r.info("magma_gpu_poll_duration_seconds", f"{poll_count:.0f} polls, mean {poll_sum / poll_count * 1000:.2f} ms; "
               f"last poll (api) {gpu.get('last_poll_duration_seconds')}")
    disabled = devices[0].get("disabled_counters") if devices else None
    r.info("disabled_counters (/api/resources)", f"{disabled}")

    # 7. errors by kind
    errors = all_of(final, "magma_gpu_collect_errors_total")
    r.info("magma_gpu_collect_errors_total",
           ", ".join(f"{lbl.get('kind')}={v:.0f}" for lbl, v in errors) or "no series (no error of any kind)")

    # 8. request count
    durations = all_of(final, "magma_request_duration_seconds_count")
    counted = sum(v for _, v in durations)
    sent = load.get("sent")
    r.check("magma_request_duration_seconds count == requests sent", sent is not None and counted == sent,
            f"metric {counted:.0f} over {len(durations)} series "
            f"{[(lbl, v) for lbl, v in durations]}; sent {sent}, completed {load.get('completed')}, "
            f"status {load.get('status')}, errors {load.get('errors')}, latency {load.get('latency_ms')}")
    requests_total = all_of(final, "magma_requests_total")
    r.info("magma_requests_total", "; ".join(f"{lbl} {v:.0f}" for lbl, v in requests_total) or "absent")

    r.say(f"SUMMARY: {r.failed} check(s) failed")
    with open(os.path.join(outdir, "summary.txt"), "w", encoding="utf-8") as out:
        out.write("\n".join(r.lines) + "\n")
    return 1 if r.failed else 0


def read_nspid():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("NSpid:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unreadable"


def fmt_mib(v):
    return "absent" if v is None else f"{v / MIB:.0f} MiB"


def fmt_gib(v):
    return "absent" if v is None else f"{v / GIB:.2f} GiB"


def fmt_mhz(v):
    return "absent" if v is None else f"{v / 1e6:.0f} MHz"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "wait-http":
        return cmd_wait_http(*args)
    if cmd == "fetch":
        label = None
        if "--label" in args:
            i = args.index("--label")
            label = args[i + 1]
            args = args[:i] + args[i + 2:]
        return cmd_fetch(args[0], args[1], label)
    if cmd == "load":
        return cmd_load(*args)
    if cmd == "evaluate":
        return cmd_evaluate(*args)
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
