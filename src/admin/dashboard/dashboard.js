// magma-monitor dashboard: polls the admin JSON API and draws the charts on
// <canvas> by hand (no library, no network access beyond this server).
"use strict";

const POLL_MS = 2000;
const SLOW_POLL_MS = 5000;
const MAX_POINTS = 1800;
const COLORS = ["#58a6ff", "#f0883e", "#f85149", "#3fb950", "#bc8cff", "#d29922", "#39c5cf", "#ff7eb6"];

const state = {
  points: [],          // /api/timeseries points, oldest first
  lastT: 0,
  rangeSeconds: 900,
  driftThreshold: 0.05,
  charts: {},
};

// ---------- small helpers ----------

function $(id) { return document.getElementById(id); }

function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value);
  }
  for (const child of [].concat(children || [])) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function setText(id, text) { const node = $(id); if (node) node.textContent = text; }

function fmtSeconds(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (v < 1) return (v * 1000).toFixed(0) + " ms";
  return v.toFixed(2) + " s";
}
function fmtNumber(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toFixed(digits === undefined ? 1 : digits);
}
function fmtPercent(v) { return (v === null || v === undefined || !isFinite(v)) ? "–" : (v * 100).toFixed(1) + "%"; }
function fmtBytes(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(i ? 1 : 0) + " " + units[i];
}
function fmtP(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return v < 0.001 ? v.toExponential(1) : v.toFixed(3);
}
function fmtDuration(seconds) {
  if (!isFinite(seconds)) return "–";
  const s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (s % 60) + "s";
}
function fmtClock(ms) {
  const d = new Date(ms);
  return d.toTimeString().slice(0, 8);
}
function toMs(value) {
  // Accepts Unix seconds, Unix milliseconds or an ISO string.
  if (typeof value === "number") return value > 1e12 ? value : value * 1000;
  if (typeof value === "string") { const t = Date.parse(value); return isNaN(t) ? null : t; }
  return null;
}

async function getJson(path) {
  // Resolves to {ok, status, body}; a missing endpoint is {ok:false, status:404}.
  try {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) return { ok: false, status: response.status };
    return { ok: true, status: response.status, body: await response.json() };
  } catch (error) {
    return { ok: false, status: 0 };
  }
}

// ---------- the chart ----------

// A time-series line (or stacked area) chart on a canvas.
class Chart {
  constructor(id, options) {
    this.section = $(id);
    this.canvas = this.section.querySelector("canvas");
    this.legend = this.section.querySelector(".legend");
    this.options = options;
    this.hoverT = null;
    this.canvas.addEventListener("mousemove", (e) => {
      const rect = this.canvas.getBoundingClientRect();
      this.hoverX = e.clientX - rect.left;
      this.draw();
    });
    this.canvas.addEventListener("mouseleave", () => { this.hoverX = null; this.draw(); });
  }

  // series: [{name, color, values: [[tMs, v|null], ...]}]
  update(series, now) {
    this.series = series;
    this.now = now;
    const points = series.reduce((n, s) => n + s.values.filter((p) => p[1] !== null && isFinite(p[1])).length, 0);
    this.section.dataset.points = String(points);
    this.section.classList.toggle("has-data", points > 0);
    this.renderLegend();
    this.draw();
  }

  latest(s) {
    for (let i = s.values.length - 1; i >= 0; i--) {
      const v = s.values[i][1];
      if (v !== null && isFinite(v)) return v;
    }
    return null;
  }

  renderLegend() {
    const format = this.options.format || ((v) => fmtNumber(v, 2));
    this.legend.replaceChildren(...this.series.map((s) => el("span", { "data-series": s.name }, [
      el("span", { class: "key", style: { background: s.color } }),
      s.name,
      el("span", { class: "value" }, format(this.latest(s))),
    ])));
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!this.series) return;

    const opt = this.options;
    const left = 52, right = 10, top = 8, bottom = 20;
    const plotW = width - left - right, plotH = height - top - bottom;
    // The x axis spans the chosen window, or less while the history is
    // shorter (at least 30 s), so a fresh start fills the chart.
    const t1 = this.now;
    const first = state.points.length ? state.points[0].t : t1;
    const span = Math.min(state.rangeSeconds * 1000, Math.max(30000, t1 - first));
    const t0 = t1 - span;

    // Values as drawn (stacked areas add up the series below).
    const drawn = [];
    let stackBase = null;
    for (const s of this.series) {
      const values = s.values.filter((p) => p[0] >= t0);
      if (opt.stacked) {
        const base = stackBase || new Map();
        const top = new Map();
        const vals = values.map(([t, v]) => {
          const b = base.get(t) || 0;
          const y = b + (v && isFinite(v) ? v : 0);
          top.set(t, y);
          return [t, y, b];
        });
        stackBase = top;
        drawn.push({ s, vals });
      } else {
        drawn.push({ s, vals: values.map(([t, v]) => [t, v, null]) });
      }
    }

    // The y range.
    let yMin = opt.log ? opt.logMin : 0, yMax = opt.yMax || 0;
    for (const d of drawn) for (const p of d.vals) if (p[1] !== null && isFinite(p[1])) yMax = Math.max(yMax, p[1]);
    for (const th of opt.thresholds || []) if (!opt.log) yMax = Math.max(yMax, th.value * 1.15);
    if (opt.log) yMax = 1; else yMax = niceCeil(yMax || 1);
    const y = (v) => {
      if (v === null || !isFinite(v)) return null;
      if (opt.log) {
        const lv = Math.log10(Math.max(v, opt.logMin));
        const l0 = Math.log10(opt.logMin), l1 = 0;
        return top + plotH - ((lv - l0) / (l1 - l0)) * plotH;
      }
      return top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;
    };
    const x = (t) => left + ((t - t0) / (t1 - t0)) * plotW;

    // Grid and axis labels.
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#8796a5";
    ctx.strokeStyle = "#27313c";
    ctx.lineWidth = 1;
    const ticks = opt.log ? logTicks(opt.logMin) : [0, 0.25, 0.5, 0.75, 1].map((f) => yMin + f * (yMax - yMin));
    const format = opt.axisFormat || opt.format || ((v) => fmtNumber(v, 1));
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const tick of ticks) {
      const yy = Math.round(y(tick)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + plotW, yy); ctx.stroke();
      ctx.fillText(opt.log ? (tick >= 0.01 ? String(tick) : tick.toExponential(0)) : format(tick), left - 4, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (i / 4) * (t1 - t0);
      ctx.textAlign = i === 0 ? "left" : i === 4 ? "right" : "center";
      ctx.fillText(fmtClock(t), x(t), top + plotH + 4);
    }

    // Thresholds.
    for (const th of opt.thresholds || []) {
      const yy = y(th.value);
      if (yy === null) continue;
      ctx.save();
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = th.color || "#f85149";
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + plotW, yy); ctx.stroke();
      ctx.restore();
      ctx.fillStyle = th.color || "#f85149";
      ctx.textAlign = "left";
      ctx.textBaseline = "bottom";
      ctx.fillText(th.label, left + 4, yy - 2);
    }

    // Stacks bottom first; plain lines last first, so the first series
    // (p50, requests/s) stays on top where lines cross.
    ctx.lineWidth = 2;
    for (const d of opt.stacked ? drawn : drawn.slice().reverse()) {
      ctx.strokeStyle = d.s.color;
      ctx.fillStyle = d.s.color + "55";
      let started = false, lastX = null;
      const path = new Path2D();
      for (const [t, v] of d.vals) {
        const yy = y(v);
        if (yy === null) { started = false; continue; }
        const xx = x(t);
        if (!started || (lastX !== null && xx - lastX > plotW / 20)) path.moveTo(xx, yy); else path.lineTo(xx, yy);
        started = true; lastX = xx;
      }
      ctx.stroke(path);
      if (opt.stacked && d.vals.length > 1) {
        const area = new Path2D();
        d.vals.forEach(([t, v], i) => (i ? area.lineTo(x(t), y(v)) : area.moveTo(x(t), y(v))));
        for (let i = d.vals.length - 1; i >= 0; i--) area.lineTo(x(d.vals[i][0]), y(d.vals[i][2]));
        area.closePath();
        ctx.fill(area);
      }
    }

    // Hover: a cursor line and the values at that time.
    if (this.hoverX !== null && this.hoverX !== undefined && this.hoverX >= left) {
      const t = t0 + ((this.hoverX - left) / plotW) * (t1 - t0);
      ctx.strokeStyle = "#8796a5";
      ctx.beginPath(); ctx.moveTo(this.hoverX, top); ctx.lineTo(this.hoverX, top + plotH); ctx.stroke();
      const lines = [fmtClock(t)];
      for (const s of this.series) {
        let best = null;
        for (const p of s.values) if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
        if (best) lines.push(s.name + " " + (opt.format || ((v) => fmtNumber(v, 2)))(best[1]));
      }
      ctx.fillStyle = "rgba(15,20,25,.9)";
      const boxW = 150, boxH = lines.length * 14 + 6;
      const bx = Math.min(this.hoverX + 8, width - boxW - 2);
      ctx.fillRect(bx, top + 2, boxW, boxH);
      ctx.fillStyle = "#dce3ea";
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      lines.forEach((line, i) => ctx.fillText(line, bx + 6, top + 5 + i * 14));
    }
  }
}

function niceCeil(v) {
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
  return 10 * exp;
}
function logTicks(min) {
  const ticks = [];
  for (let v = 1; v >= min; v /= 10) ticks.push(Number(v.toPrecision(1)));
  return ticks;
}

// ---------- series from the time-series points ----------

function column(key, transform) {
  return state.points.map((p) => {
    const v = p[key];
    return [p.t, v === null || v === undefined ? null : (transform ? transform(v) : v)];
  });
}

function breakdown(key) {
  const names = new Set();
  for (const p of state.points) for (const name of Object.keys(p[key] || {})) names.add(name);
  return [...names].sort().map((name, i) => ({
    name, color: COLORS[i % COLORS.length],
    values: state.points.map((p) => [p.t, (p[key] || {})[name] || 0]),
  }));
}

function renderCharts() {
  // The server's clock, not the browser's: the two may differ.
  const now = state.points.length ? state.points[state.points.length - 1].t : Date.now();
  const c = state.charts;
  c.latency.update([
    { name: "p50", color: COLORS[0], values: column("latency_p50_seconds") },
    { name: "p95", color: COLORS[1], values: column("latency_p95_seconds") },
    { name: "p99", color: COLORS[2], values: column("latency_p99_seconds") },
  ], now);
  c.throughput.update([
    { name: "requests/s", color: COLORS[0], values: column("requests_per_second") },
    { name: "errors/s", color: COLORS[2], values: column("errors_per_second") },
  ], now);
  const errors = [{ name: "error share", color: COLORS[2], values: column("error_ratio", (v) => v * 100) }];
  if (state.points.some((p) => p.output_anomalies_per_second !== null && p.output_anomalies_per_second !== undefined)) {
    errors.push({ name: "output anomalies/s", color: COLORS[5], values: column("output_anomalies_per_second") });
  }
  c.errors.update(errors, now);
  c.modality.update(breakdown("modality"), now);
  c.task.update(breakdown("task"), now);
  c.drift.options.thresholds = [{ value: state.driftThreshold, label: "threshold " + state.driftThreshold, color: "#f85149" }];
  c.drift.update([{ name: "p-value", color: COLORS[4], values: column("drift_p_value") }], now);
  const memory = [{ name: "sidecar", color: COLORS[0], values: column("sidecar_resident_bytes", (v) => v / 1048576) }];
  if (state.points.some((p) => p.upstream_resident_bytes !== null && p.upstream_resident_bytes !== undefined)) {
    memory.push({ name: "model process", color: COLORS[1], values: column("upstream_resident_bytes", (v) => v / 1048576) });
  }
  c.memory.update(memory, now);
  c.gpu.update([
    { name: "memory used", color: COLORS[3], values: state.points.map((p) => [p.t,
      p.gpu_memory_used_bytes !== null && p.gpu_memory_total_bytes ? 100 * p.gpu_memory_used_bytes / p.gpu_memory_total_bytes : null]) },
    { name: "utilisation", color: COLORS[6], values: column("gpu_utilization_ratio", (v) => v * 100) },
  ], now);
}

function renderTiles() {
  const p = state.points[state.points.length - 1];
  if (!p) return;
  setText("v-requests", fmtNumber(p.requests_total, 0));
  setText("v-inflight", "in flight " + fmtNumber(p.in_flight, 0));
  setText("v-qps", fmtNumber(p.requests_per_second, 1));
  setText("v-errors-per-second", "errors/s " + fmtNumber(p.errors_per_second, 2));
  setText("v-p95", fmtSeconds(p.latency_p95_seconds));
  $("v-p95").className = "big " + (p.latency_p95_seconds > 2 ? "bad" : p.latency_p95_seconds > 1.5 ? "warn" : "");
  setText("v-p50-p99", "p50 " + fmtSeconds(p.latency_p50_seconds) + " · p99 " + fmtSeconds(p.latency_p99_seconds));
  setText("v-error-ratio", fmtPercent(p.error_ratio));
  $("v-error-ratio").className = "big " + (p.error_ratio > 0.05 ? "bad" : p.error_ratio > 0.01 ? "warn" : "");
  if (p.drift_p_value !== null && p.drift_p_value !== undefined) {
    setText("v-drift", fmtP(p.drift_p_value));
    $("v-drift").className = "big " + (p.drift_p_value < state.driftThreshold ? "bad" : "good");
  }
  setText("v-drift-threshold", "threshold " + state.driftThreshold);
}

// ---------- polling ----------

async function pollTimeseries() {
  const answer = await getJson("api/timeseries?since=" + state.lastT);
  const badge = $("connection");
  if (!answer.ok) {
    badge.textContent = answer.status ? "HTTP " + answer.status : "offline";
    badge.className = "badge bad";
    return;
  }
  badge.textContent = "live";
  badge.className = "badge good";
  for (const point of answer.body.points || []) {
    if (point.t > state.lastT) { state.points.push(point); state.lastT = point.t; }
  }
  if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
  document.body.dataset.points = String(state.points.length);
  renderTiles();
  renderCharts();
}

async function pollStatus() {
  const answer = await getJson("api/status");
  if (!answer.ok) return;
  const s = answer.body;
  setText("version", s.version ? "v" + s.version : "");
  setText("uptime", fmtDuration(s.uptime_seconds));
  const upstream = s.upstream || {};
  setText("upstream-url", upstream.url || "–");
  const health = upstream.health || {};
  const badge = $("upstream-state");
  badge.textContent = health.draining ? "draining" : health.ready ? "ready" : health.upstream_up ? "up" : "not ready";
  badge.className = "badge " + (health.ready ? "good" : "bad");
}

function showEmpty(panelId, text) {
  $(panelId).querySelector(".body").replaceChildren(el("div", { class: "empty-text" }, text));
}

// Drift: a table of detectors, whatever exact shape /api/drift has.
function driftRows(body) {
  let detectors = body.detectors || body.results || body;
  if (!Array.isArray(detectors)) {
    detectors = Object.entries(detectors)
      .filter(([, v]) => v && typeof v === "object" && !Array.isArray(v))
      .map(([name, v]) => Object.assign({ name }, v));
  }
  return detectors.map((d) => {
    const last = d.last || d.last_result || d.result || d;
    const p = last.p_value ?? d.p_value;
    const drift = last.drift ?? last.detected ?? d.drift ?? d.detected;
    const features = last.top_features || last.features_moved || d.top_features || [];
    return {
      name: d.name || d.detector || [d.detector, d.features].filter(Boolean).join("/") || "detector",
      p, drift,
      when: toMs(last.tested_at ?? last.time ?? last.at ?? d.tested_at),
      threshold: last.threshold ?? d.threshold,
      features: Array.isArray(features) ? features.slice(0, 3).map((f) => typeof f === "string" ? f : (f.name || f.feature || JSON.stringify(f))).join(", ") : "",
    };
  });
}

async function pollDrift() {
  const answer = await getJson("api/drift");
  if (!answer.ok) { showEmpty("panel-drift", answer.status === 404 ? "no data yet (drift engine not in this build)" : "no data yet"); return; }
  const body = answer.body || {};
  const pVal = body.p_val ?? body.p_value_threshold ?? (body.config || {}).p_val;
  if (typeof pVal === "number" && pVal > 0 && pVal < 1) state.driftThreshold = pVal;
  const rows = driftRows(body);
  if (!rows.length) {
    const ref = body.reference || {};
    const progress = typeof ref.samples === "number" && typeof ref.target_samples === "number"
      ? " (reference " + ref.samples + " / " + ref.target_samples + " samples, window " + (body.window_samples ?? "–") + ")" : "";
    showEmpty("panel-drift", body.enabled === false ? "drift detection is off" : "no test yet" + progress);
    return;
  }
  let smallest = null;
  const table = el("table", {}, [
    el("tr", {}, ["detector", "p-value", "drift", "tested", "moved most"].map((h) => el("th", {}, h))),
    ...rows.map((r) => {
      if (typeof r.p === "number") smallest = smallest === null ? r.p : Math.min(smallest, r.p);
      return el("tr", {}, [
        el("td", {}, r.name),
        el("td", { class: "num" }, fmtP(r.p)),
        el("td", {}, r.drift === true ? "yes" : r.drift === false ? "no" : "–"),
        el("td", {}, r.when ? fmtClock(r.when) : "–"),
        el("td", { class: "truncate" }, r.features || "–"),
      ]);
    }),
  ]);
  $("panel-drift").querySelector(".body").replaceChildren(table);
  if (smallest !== null) {
    setText("v-drift", fmtP(smallest));
    $("v-drift").className = "big " + (smallest < state.driftThreshold ? "bad" : "good");
  }
}

function causeText(cause) {
  if (typeof cause === "string") return cause;
  const text = String(cause.description || cause.cause || cause.hint || cause.summary || cause.kind || JSON.stringify(cause)).replace(/_/g, " ");
  const evidence = cause.evidence ? (Array.isArray(cause.evidence) ? cause.evidence.join("; ") : String(cause.evidence)) : "";
  const score = typeof cause.score === "number" ? " (" + cause.score.toFixed(2) + ")" : "";
  return text + score + (evidence && evidence !== text ? " — " + evidence : "");
}

async function pollAnomalies() {
  const answer = await getJson("api/anomalies");
  if (!answer.ok) {
    showEmpty("panel-anomalies", answer.status === 404 ? "no data yet (anomaly detection not in this build)" : "no data yet");
    return;
  }
  const body = answer.body;
  const active = Array.isArray(body) ? body : (body.active || []);
  const recent = Array.isArray(body) ? [] : (body.recent || []);
  setText("v-anomalies", String(active.length));
  $("v-anomalies").className = "big " + (active.length ? "bad" : "good");
  const first = active[0];
  setText("v-anomaly-top", first ? [first.signal, first.kind].filter(Boolean).join(" / ") : "none");
  const card = (a, isActive) => {
    const causes = a.causes || a.root_causes || a.ranked_causes || a.hints || [];
    const since = toMs(a.started_unix ?? a.start ?? a.started_at ?? a.since ?? a.opened_at);
    const end = toMs(a.ended_unix ?? a.end ?? a.ended_at ?? a.closed_at);
    const title = [a.signal, a.kind].filter(Boolean).join(" / ") || "anomaly";
    return el("div", { class: "anomaly" + (a.severity === "critical" || a.severity === "high" ? " critical" : "") }, [
      el("div", { class: "title" }, title + (a.severity ? " · " + a.severity : "") + (isActive ? "" : " · closed")),
      el("div", { class: "muted" }, (since ? "since " + fmtClock(since) : "") + (end ? " until " + fmtClock(end) : "") +
        (a.evidence ? " · " + (Array.isArray(a.evidence) ? a.evidence.join("; ") : (typeof a.evidence === "string" ? a.evidence : JSON.stringify(a.evidence))) : "")),
      causes.length ? el("ol", {}, causes.slice(0, 4).map((c) => el("li", {}, causeText(c)))) : null,
    ]);
  };
  const cards = active.map((a) => card(a, true)).concat(recent.slice(0, 3).map((a) => card(a, false)));
  $("panel-anomalies").querySelector(".body").replaceChildren(...(cards.length ? cards : [el("div", { class: "empty-text" }, "no anomalies")]));
}

async function pollSamples() {
  const answer = await getJson("api/samples?limit=15");
  if (!answer.ok) {
    showEmpty("panel-samples", answer.status === 404 ? "no data yet (sampling not in this build)" : "no data yet");
    return;
  }
  const body = answer.body;
  const records = (Array.isArray(body) ? body : (body.samples || body.records || [])).slice();
  if (!records.length) {
    showEmpty("panel-samples", body.enabled === false ? "sampling is off (--sample-rate 0 or no sample store)" : "no samples yet");
    return;
  }
  const get = (r, ...keys) => { for (const k of keys) { const v = k.split(".").reduce((o, part) => (o ? o[part] : undefined), r); if (v !== undefined && v !== null) return v; } return null; };
  const table = el("table", {}, [
    el("tr", {}, ["time", "route", "modality", "task", "status", "latency", "prompt / output", "request id"].map((h) => el("th", {}, h))),
    // Newest first, whatever order the endpoint uses.
    ...records.sort((a, b) => (toMs(get(b, "time", "timestamp", "t", "at")) || 0) - (toMs(get(a, "time", "timestamp", "t", "at")) || 0)).slice(0, 15).map((r) => {
      const t = toMs(get(r, "time", "timestamp", "t", "at"));
      const latency = get(r, "latency_seconds", "latency", "duration_seconds");
      const prompt = get(r, "prompt");
      const answer = get(r, "answer", "output_text", "output.text");
      const text = [prompt, answer].filter((v) => v !== null).map(String).join(" → ");
      return el("tr", {}, [
        el("td", {}, t ? fmtClock(t) : "–"),
        el("td", {}, String(get(r, "route") ?? "–")),
        el("td", {}, String(get(r, "modality") ?? "–")),
        el("td", {}, String(get(r, "task") ?? "–")),
        el("td", {}, String(get(r, "status", "code") ?? "–")),
        el("td", { class: "num" }, typeof latency === "number" ? fmtSeconds(latency) : "–"),
        el("td", { class: "truncate" }, text ? String(text).slice(0, 200) : "–"),
        el("td", { class: "truncate" }, String(get(r, "request_id", "id") ?? "–")),
      ]);
    }),
  ]);
  $("panel-samples").querySelector(".body").replaceChildren(table);
}

async function pollResources() {
  const answer = await getJson("api/resources");
  if (!answer.ok) {
    showEmpty("panel-resources", answer.status === 404 ? "no data yet (GPU collector not in this build)" : "no data yet");
    return;
  }
  const body = answer.body || {};
  const gpu = body.gpu || {};
  const gpus = gpu.devices || body.gpus || body.devices || [];
  const parts = [];
  if (gpus.length) {
    parts.push(el("table", {}, [
      el("tr", {}, ["GPU", "name", "memory", "util", "temp", "power"].map((h) => el("th", {}, h))),
      ...gpus.map((g, i) => el("tr", {}, [
        el("td", {}, String(g.index ?? g.gpu ?? i)),
        el("td", { class: "truncate" }, String(g.name ?? "–")),
        el("td", { class: "num" }, fmtBytes(g.memory_used_bytes) + " / " + fmtBytes(g.memory_total_bytes)),
        el("td", { class: "num" }, typeof g.utilization_ratio === "number" ? fmtPercent(g.utilization_ratio) : "–"),
        el("td", { class: "num" }, typeof g.temperature_celsius === "number" ? g.temperature_celsius + " °C" : "–"),
        el("td", { class: "num" }, typeof g.power_watts === "number" ? g.power_watts.toFixed(0) + " W" : "–"),
      ])),
    ]));
  } else {
    const reason = gpu.down_reason ? " (" + String(gpu.down_reason).replace(/_/g, " ") + ")" : "";
    parts.push(el("div", { class: "empty-text" }, gpu.enabled === false ? "GPU collector off" : "no GPU visible" + reason));
  }
  const proc = body.upstream || body.upstream_process || body.model_process || body.process;
  if (proc && typeof proc === "object") {
    parts.push(el("table", {}, [
      el("tr", {}, [el("th", {}, "model process"), el("th", {}, "")]),
      ...Object.entries(proc).filter(([, v]) => v !== null && typeof v !== "object").slice(0, 10).map(([k, v]) => el("tr", {}, [
        el("td", {}, k), el("td", { class: "num" }, /bytes/.test(k) && typeof v === "number" ? fmtBytes(v) : String(v)),
      ])),
    ]));
  }
  $("panel-resources").querySelector(".body").replaceChildren(...parts);
}

function start() {
  state.charts = {
    latency: new Chart("chart-latency", { format: fmtSeconds, axisFormat: (v) => v.toFixed(v < 1 ? 2 : 1) + "s",
      thresholds: [{ value: 2, label: "p95 alert 2 s", color: "#f85149" }] }),
    throughput: new Chart("chart-throughput", { format: (v) => fmtNumber(v, 1) }),
    errors: new Chart("chart-errors", { format: (v) => fmtNumber(v, 1), thresholds: [{ value: 5, label: "5%", color: "#d29922" }] }),
    modality: new Chart("chart-modality", { stacked: true, format: (v) => fmtNumber(v, 1) }),
    task: new Chart("chart-task", { stacked: true, format: (v) => fmtNumber(v, 1) }),
    drift: new Chart("chart-drift", { log: true, logMin: 1e-4, format: fmtP }),
    memory: new Chart("chart-memory", { format: (v) => fmtNumber(v, 0) + " MiB", axisFormat: (v) => v.toFixed(0) }),
    gpu: new Chart("chart-gpu", { yMax: 100, format: (v) => fmtNumber(v, 0) + "%", axisFormat: (v) => v.toFixed(0) }),
  };
  $("range").addEventListener("change", (e) => { state.rangeSeconds = Number(e.target.value) || 900; renderCharts(); });
  window.addEventListener("resize", () => renderCharts());
  const fast = () => Promise.all([pollTimeseries(), pollStatus()]);
  const slow = () => Promise.all([pollDrift(), pollAnomalies(), pollSamples(), pollResources()]);
  fast(); slow();
  setInterval(fast, POLL_MS);
  setInterval(slow, SLOW_POLL_MS);
}

start();
