// DDPM studio: the Generate tab streams /api/v1/sample/stream (Server-Sent
// Events over a POST, read with fetch) into the x_t and x̂0 panels. The
// other tabs are studio.js's.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let running = null; // the AbortController of the request in flight
let downloadURL = null;

// Tabs.
for (const tab of document.querySelectorAll("nav [role=tab]")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll("nav [role=tab]")) {
      const on = t === tab;
      t.setAttribute("aria-selected", on);
      $("tab-" + t.dataset.tab).hidden = !on;
    }
  });
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

function currentModel() {
  return models.find((m) => m.name === $("model").value) || models[0];
}

// Keep the inputs to what the model and sampler allow.
function syncForm() {
  const m = currentModel();
  if (!m) return;
  const sampler = $("sampler").value;
  for (const opt of $("sampler").options) opt.disabled = !m.samplers.includes(opt.value);
  $("eta").disabled = sampler !== "ddim";
  $("steps").disabled = sampler === "ancestral";
  if (sampler === "ancestral") $("steps").value = m.T;
  $("steps").max = Math.min(m.T, m.max_steps);
  $("steps").min = sampler === "respaced" ? 2 : 1;
  $("n").max = m.max_images;
}

async function loadModels() {
  try {
    const r = await fetch("api/v1/models");
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    models = body.models;
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} (${m.resolution}×${m.resolution}${m.channels === 3 ? " RGB" : ""}, T=${m.T})`;
      $("model").append(o);
    }
    $("models-status").textContent = models.map((m) => m.source).join(" · ");
    syncForm();
    if (typeof onModels === "function") onModels(); // studio.js's tabs
  } catch (e) {
    $("models-status").textContent = "could not list the models: " + e.message;
    $("models-status").className = "error";
  }
}

$("model").addEventListener("change", syncForm);
$("sampler").addEventListener("change", syncForm);
$("dice").addEventListener("click", () => {
  $("seed").value = Math.floor(Math.random() * 2 ** 31);
});
$("cancel").addEventListener("click", () => running && running.abort());

function request() {
  const sampler = $("sampler").value;
  const body = {
    model: $("model").value,
    sampler,
    n: Number($("n").value),
    seed: Number($("seed").value),
  };
  if (sampler !== "ancestral") body.steps = Number($("steps").value);
  if (sampler === "ddim") body.eta = Number($("eta").value);
  return body;
}

function png(b64) {
  return "data:image/png;base64," + b64;
}

function setDownload(b64, name) {
  if (downloadURL) URL.revokeObjectURL(downloadURL);
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  downloadURL = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
  $("download").href = downloadURL;
  $("download").download = name;
  $("download").hidden = false;
}

// Read a Server-Sent Events body, calling on(event, data) per event.
async function readEvents(body, on) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) on(name, JSON.parse(data.join("\n")));
    }
  }
}

$("gen-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (running) return;
  const body = request();
  running = new AbortController();
  $("go").disabled = true;
  $("cancel").disabled = false;
  $("download").hidden = true;
  $("progress").value = 0;
  $("xt-caption").innerHTML = "x<sub>t</sub>";
  status("sending…");
  let finished = false;
  try {
    const r = await fetch("api/v1/sample/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: running.signal,
    });
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      if (r.status === 503) msg += ` (retry in ${r.headers.get("Retry-After") || "a few"} s)`;
      throw new Error(msg);
    }
    await readEvents(r.body, (name, d) => {
      switch (name) {
        case "queued":
          status(`queued (seed ${d.seed})`);
          break;
        case "start":
          $("progress").max = d.total;
          status(`denoising: 0 / ${d.total}`);
          break;
        case "progress":
          $("progress").max = d.total;
          $("progress").value = d.step;
          $("xt").src = png(d.xt);
          $("x0").src = png(d.x0);
          $("xt-caption").innerHTML = `x<sub>t</sub>, t = ${d.t}`;
          status(`denoising: ${d.step} / ${d.total}`);
          break;
        case "done":
          finished = true;
          $("progress").value = $("progress").max;
          $("xt").src = png(d.grid);
          $("xt-caption").innerHTML = "samples x<sub>0</sub>";
          setDownload(d.grid, `${d.model}-${d.sampler}-seed${d.seed}.png`);
          status(`${d.n} images in ${d.seconds.toFixed(1)} s (queued ${d.queued_seconds.toFixed(1)} s), seed ${d.seed}`);
          break;
        case "error":
          finished = true;
          status(d.error, true);
          break;
      }
    });
    if (!finished) status("the stream ended early", true);
  } catch (e) {
    if (e.name === "AbortError") status("cancelled");
    else status(e.message, true);
  } finally {
    running = null;
    $("go").disabled = false;
    $("cancel").disabled = true;
  }
});

loadModels();
