// The rnnkit playground: plain JS over the server's own API (no build step, no libraries).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const LM_KINDS = new Set(["char-stream", "word-stream", "ngram-word"]);
// Fields of a training record that are bookkeeping, not curves worth a chart.
const NOT_CURVES = new Set(["step", "epoch", "elapsed_s", "seconds", "iterations", "val_n", "lr_step"]);

let models = [];
let running = null; // the AbortController of the completion streaming in, if any

// ------------------------------------------------------------------ errors
class APIError extends Error {}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, body, signal) {
  const init = body === undefined ? {signal} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), signal,
  };
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      if (data && data.error && data.error.message) message = data.error.message;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new APIError(message);
  }
  return response;
}

// ------------------------------------------------------------------ models
function describe(m) {
  const vocab = typeof m.vocab_size === "object" && m.vocab_size !== null
    ? Object.entries(m.vocab_size).map(([k, v]) => `${k} ${v}`).join(", ") : m.vocab_size;
  const facts = [`${m.kind}`, `${Number(m.parameters).toLocaleString("en")} parameters`, `vocabulary ${vocab}`];
  const t = m.training || {};
  for (const key of ["steps", "epochs", "val_loss", "val_bpc", "loss"]) {
    if (typeof t[key] === "number") facts.push(`${key.replace("_", " ")} ${fmt(t[key])}`);
  }
  return facts.join(" · ");
}

function fmt(x) {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  const a = Math.abs(x);
  return a >= 1000 ? x.toFixed(0) : a >= 1 ? x.toFixed(3) : x.toPrecision(3);
}

async function loadModels() {
  try {
    const data = await (await api("/v1/models")).json();
    models = data.data || [];
  } catch (e) {
    showError(`cannot list the models: ${e.message}`);
    return;
  }
  const select = $("model");
  select.replaceChildren(...models.map((m) => new Option(`${m.id} (${m.kind})`, m.id)));
  if (models.length === 0) showError("this server serves no models");
  else selectModel();
}

function current() {
  return models.find((m) => m.id === $("model").value);
}

function selectModel() {
  const m = current();
  if (!m) return;
  stopGeneration();
  showError("");
  $("model-info").textContent = describe(m);
  const lm = LM_KINDS.has(m.kind);
  $("lm-panel").hidden = !lm;
  $("s2s-panel").hidden = lm;
  if (!lm) { $("translation").textContent = ""; $("heatmap").replaceChildren(); }
  loadCurves(m.id);
}

// ------------------------------------------------------------- generation
// A number field's value: null when blank, a Number otherwise (the server checks the range and
// names the field; text the browser cannot read as a number is sent as it is, to be refused).
function numberField(id) {
  const el = $(id);
  if (el.value === "") return el.validity.badInput ? el.value || "?" : null;
  return Number(el.value);
}

function completionBody() {
  const body = {model: $("model").value, prompt: $("prompt").value, stream: true};
  const fields = {temperature: "temperature", top_k: "top-k", top_p: "top-p", max_tokens: "max-tokens", seed: "seed"};
  for (const [name, id] of Object.entries(fields)) {
    const v = numberField(id);
    if (v !== null) body[name] = v;
  }
  return body;
}

// Server-sent events read from a POST: the `data:` payloads, one by one, as they arrive.
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
      if (data.length) yield data.join("\n");
    }
  }
}

async function generate(event) {
  event.preventDefault();
  stopGeneration();
  showError("");
  const body = completionBody();
  const out = $("generated");
  $("prime-echo").textContent = body.prompt;
  out.textContent = "";
  const controller = new AbortController();
  running = controller;
  setRunning(true, "generating…");
  let tokens = 0, seed = body.seed, finish = null;
  try {
    const response = await api("/v1/completions", body, controller.signal);
    for await (const payload of sseData(response)) {
      if (payload === "[DONE]") break;
      const chunk = JSON.parse(payload);
      if (chunk.error) throw new APIError(chunk.error.message);
      for (const choice of chunk.choices || []) {
        out.append(choice.text);  // a text node per chunk: the page grows as the text streams in
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      if (chunk.seed !== undefined) seed = chunk.seed;
    }
    setRunning(false, `${tokens} tokens, seed ${seed}${finish ? `, ended by ${finish}` : ""}`);
  } catch (e) {
    if (e.name === "AbortError") { setRunning(false, "stopped"); return; }
    setRunning(false, "");
    showError(e instanceof APIError ? e.message : `the request failed: ${e.message}`);
  } finally {
    if (running === controller) running = null;
  }
}

function setRunning(on, status) {
  $("generate").disabled = on;
  $("stop").disabled = !on;
  $("lm-status").textContent = status;
}

function stopGeneration() {
  if (running) running.abort();
  running = null;
}

// ------------------------------------------------------------ translation
async function translate(event) {
  event.preventDefault();
  showError("");
  $("s2s-status").textContent = "translating…";
  $("translation").textContent = "";
  $("heatmap").replaceChildren();
  try {
    const body = {model: $("model").value, texts: [$("source").value], attention: true};
    const data = await (await api("/v1/translate", body)).json();
    const r = data.outputs[0];
    $("translation").textContent = r.output;
    drawHeatmap($("heatmap"), r.input_tokens, r.output_tokens, r.attention);
    $("s2s-status").textContent = (data.warnings || []).join("; ");
  } catch (e) {
    $("s2s-status").textContent = "";
    showError(e instanceof APIError ? e.message : `the request failed: ${e.message}`);
  }
}

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Viridis, in 5 stops: dark blue (low) to yellow (high), readable in grey and by most color-blind eyes.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function color(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c.join(",")})`;
}

function shown(token) {
  return token === " " ? "␣" : token === "\n" ? "⏎" : token;
}

// The attention matrix (rows: output tokens, columns: input tokens) as an SVG of cells, one
// <rect class="cell"> per weight, colored by weight / the matrix's largest weight, with a legend.
function drawHeatmap(box, inputs, outputs, weights) {
  const cell = 22, left = 40, top = 40, legend = 30;
  const lh = Math.max(cell * 3, outputs.length * cell);  // the legend's height
  const width = left + inputs.length * cell + legend + 40, height = top + lh + 10;
  const svg = el("svg", {viewBox: `0 0 ${width} ${height}`, width, height, class: "heatmap"});
  const peak = Math.max(1e-12, ...weights.flat());
  inputs.forEach((tok, j) => svg.append(el("text", {x: left + j * cell + cell / 2, y: top - 8,
    "text-anchor": "middle", class: "tok"}, shown(tok))));
  outputs.forEach((tok, i) => {
    svg.append(el("text", {x: left - 8, y: top + i * cell + cell / 2 + 4, "text-anchor": "end", class: "tok"},
      shown(tok)));
    weights[i].forEach((w, j) => {
      const rect = el("rect", {x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
        fill: color(w / peak), class: "cell"});
      rect.append(el("title", {}, `${shown(outputs[i])} ← ${shown(inputs[j])}: ${w.toFixed(3)}`));
      svg.append(rect);
    });
  });
  // The legend: the scale from 0 to the largest weight.
  const lx = left + inputs.length * cell + 12;
  const grad = el("linearGradient", {id: "scale", x1: 0, y1: 1, x2: 0, y2: 0});
  VIRIDIS.forEach((_, k) => grad.append(el("stop", {offset: k / (VIRIDIS.length - 1),
    "stop-color": color(k / (VIRIDIS.length - 1))})));
  const defs = el("defs");
  defs.append(grad);
  svg.append(defs, el("rect", {x: lx, y: top, width: 12, height: lh, fill: "url(#scale)", class: "legend"}));
  svg.append(el("text", {x: lx + 16, y: top + 8, class: "axis"}, peak.toFixed(2)));
  svg.append(el("text", {x: lx + 16, y: top + lh, class: "axis"}, "0"));
  box.replaceChildren(svg);
}

// ---------------------------------------------------------- training curves
async function loadCurves(id) {
  const box = $("curves");
  box.replaceChildren();
  $("curves-info").textContent = "";
  let data;
  try {
    data = await (await api(`/v1/models/${encodeURIComponent(id)}/metrics`)).json();
  } catch (e) {
    showError(`cannot read the training curves: ${e.message}`);
    return;
  }
  if ($("model").value !== id) return; // another model was chosen meanwhile
  const points = data.points || [];
  const xKey = points.some((p) => typeof p.step === "number") ? "step" : "epoch";
  const keys = [...new Set(points.flatMap((p) => Object.keys(p)))]
    .filter((k) => !NOT_CURVES.has(k) && points.some((p) => typeof p[k] === "number"));
  $("curves-info").textContent = points.length
    ? `${points.length} record${points.length === 1 ? "" : "s"} from ${data.source}, against ${xKey}`
    : `no training records in ${data.source || "this run"}`;
  for (const key of keys) {
    const series = points.filter((p) => typeof p[xKey] === "number" && Number.isFinite(p[key]))
      .map((p) => [p[xKey], p[key]]);
    if (series.length) box.append(lineChart(key, xKey, series));
  }
}

// One metric against step/epoch: an SVG with a polyline, a dot per record and labelled axes.
function lineChart(name, xKey, series) {
  const w = 320, h = 180, l = 56, r = 12, t = 24, b = 34;
  const xs = series.map((p) => p[0]), ys = series.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.05 || 1; y0 = y0 >= 0 ? Math.max(0, y0 - d) : y0 - d; y1 += d; }
  const px = (x) => l + (x - x0) / (x1 - x0) * (w - l - r);
  const py = (y) => t + (1 - (y - y0) / (y1 - y0)) * (h - t - b);
  const figure = document.createElement("figure");
  figure.className = "curve";
  figure.dataset.metric = name;
  const svg = el("svg", {viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img",
    "aria-label": `${name} against ${xKey}, ${series.length} points`});
  svg.append(el("text", {x: l, y: 14, class: "title"}, name));
  svg.append(el("line", {x1: l, y1: h - b, x2: w - r, y2: h - b, class: "frame"}));
  svg.append(el("line", {x1: l, y1: t, x2: l, y2: h - b, class: "frame"}));
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    svg.append(el("line", {x1: l - 4, y1: py(y), x2: w - r, y2: py(y), class: "grid"}));
    svg.append(el("text", {x: l - 6, y: py(y) + 4, "text-anchor": "end", class: "axis"}, fmt(y)));
  }
  for (const x of [x0, x1]) {
    svg.append(el("text", {x: px(x), y: h - b + 16, "text-anchor": "middle", class: "axis"}, fmt(x)));
  }
  svg.append(el("text", {x: (l + w - r) / 2, y: h - 4, "text-anchor": "middle", class: "axis"}, xKey));
  svg.append(el("polyline", {points: series.map(([x, y]) => `${px(x)},${py(y)}`).join(" "), class: "line"}));
  for (const [x, y] of series) {
    const dot = el("circle", {cx: px(x), cy: py(y), r: 2.5, class: "dot"});
    dot.append(el("title", {}, `${xKey} ${fmt(x)}: ${name} ${fmt(y)}`));
    svg.append(dot);
  }
  figure.append(svg);
  return figure;
}

// ------------------------------------------------------------------ wiring
document.addEventListener("DOMContentLoaded", () => {
  $("model").addEventListener("change", selectModel);
  $("lm-form").addEventListener("submit", generate);
  $("stop").addEventListener("click", () => { stopGeneration(); });
  $("s2s-form").addEventListener("submit", translate);
  loadModels();
});
