// DDPM studio: the Draw, Compress and Interpolate tabs. Loaded after app.js,
// whose helpers ($, png, readEvents, currentModel) it uses. Images go to the
// API as PNG data URLs; the server resizes them to the model's input.
"use strict";

// ---- shared helpers ----

// post sends JSON and returns the JSON answer, or throws its error.
async function post(path, body, signal) {
  const r = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  });
  let d = null;
  try { d = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((d && d.error) || r.statusText);
  return d;
}

function say(id, text, isError) {
  $(id).textContent = text;
  $(id).className = isError ? "error" : "muted";
}

// fileToDataURL reads an uploaded file as a data URL.
function fileToDataURL(file) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(fr.result);
    fr.onerror = () => reject(fr.error);
    fr.readAsDataURL(file);
  });
}

// examples fetches the model's first test images (base64 PNGs), cached.
const exampleCache = {};
async function examples() {
  const m = currentModel().name;
  if (!exampleCache[m]) {
    const r = await fetch(`api/v1/examples?model=${encodeURIComponent(m)}&n=16`);
    const d = await r.json();
    if (!r.ok) throw new Error(d.error || r.statusText);
    exampleCache[m] = d.images;
  }
  return exampleCache[m];
}

// loadInto draws a picture (a URL) onto a canvas, covering it.
function loadInto(canvas, url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const g = canvas.getContext("2d");
      g.imageSmoothingEnabled = true;
      g.fillStyle = "#000";
      g.fillRect(0, 0, canvas.width, canvas.height);
      const s = Math.max(canvas.width / img.width, canvas.height / img.height);
      const w = img.width * s, h = img.height * s;
      g.drawImage(img, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
      resolve();
    };
    img.onerror = () => reject(new Error("not an image"));
    img.src = url;
  });
}

// Keep the t sliders within the model's T; called by app.js once the models are listed.
function onModels() {
  const m = currentModel();
  if (!m) return;
  for (const id of ["draw-t", "interp-t"]) {
    $(id).max = Math.min(m.T, m.max_steps);
    if (Number($(id).value) > Number($(id).max)) $(id).value = $(id).max;
  }
  $("draw-n").max = m.max_images;
  $("interp-n").max = m.max_images;
  showT();
}
$("model").addEventListener("change", onModels);

// ---- Draw ----

const pad = $("pad");
const g = pad.getContext("2d");
let drawn = false; // anything on the pad

function clearPad() {
  g.fillStyle = "#000";
  g.fillRect(0, 0, pad.width, pad.height);
  drawn = false;
  $("noise-xt").removeAttribute("src");
  say("draw-status", "draw something");
}
clearPad();

// Pointer events cover mouse, pen and touch; the pad's touch-action: none
// keeps a finger from scrolling the page.
let last = null;
function padPoint(ev) {
  const r = pad.getBoundingClientRect();
  return [(ev.clientX - r.left) * pad.width / r.width, (ev.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener("pointerdown", (ev) => {
  pad.setPointerCapture(ev.pointerId);
  last = padPoint(ev);
  stroke(last, last);
});
pad.addEventListener("pointermove", (ev) => {
  if (!last) return;
  const p = padPoint(ev);
  stroke(last, p);
  last = p;
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!last) return;
    last = null;
    drawn = true;
    noisePreview();
  });
}
function stroke(a, b) {
  g.strokeStyle = "#fff";
  g.lineWidth = pad.width / 11;
  g.lineCap = "round";
  g.lineJoin = "round";
  g.beginPath();
  g.moveTo(a[0], a[1]);
  g.lineTo(b[0], b[1]);
  g.stroke();
}

function drawing() {
  return pad.toDataURL("image/png");
}

$("pad-clear").addEventListener("click", clearPad);
$("pad-example").addEventListener("click", async () => {
  try {
    const imgs = await examples();
    const k = Math.floor(Math.random() * imgs.length);
    await loadInto(pad, png(imgs[k]));
    drawn = true;
    noisePreview();
  } catch (e) { say("draw-status", e.message, true); }
});
$("pad-upload").addEventListener("change", async (ev) => {
  const f = ev.target.files[0];
  if (!f) return;
  try {
    await loadInto(pad, await fileToDataURL(f));
    drawn = true;
    noisePreview();
  } catch (e) { say("draw-status", e.message, true); }
  ev.target.value = "";
});

function showT() {
  $("noise-caption").innerHTML = `x<sub>t</sub> ~ q(x<sub>t</sub> | x<sub>0</sub>), t = ${$("draw-t").value}`;
}

// The x_t preview costs no network evaluation; it follows the slider.
let noiseTimer = null;
let noiseSeq = 0;
function noisePreview() {
  showT();
  clearTimeout(noiseTimer);
  if (!drawn) return;
  noiseTimer = setTimeout(async () => {
    const seq = ++noiseSeq;
    try {
      const d = await post("api/v1/noise", { model: currentModel().name, image: drawing(), t: Number($("draw-t").value), seed: Number($("draw-seed").value) });
      if (seq !== noiseSeq) return; // a newer preview is on its way
      $("noise-xt").src = png(d.xt);
      say("draw-status", `t = ${d.t}: x_t = √ᾱ x0 + √(1−ᾱ) ε with ᾱ = ${d.alpha_bar.toPrecision(3)}`);
    } catch (e) { say("draw-status", e.message, true); }
  }, 120);
}
$("draw-t").addEventListener("input", noisePreview);
$("draw-seed").addEventListener("change", noisePreview);

let drawBusy = false;
async function drawCall(label, f) {
  if (drawBusy) return;
  if (!drawn) { say("draw-status", "draw something first (or load a test image)", true); return; }
  drawBusy = true;
  $("regen").disabled = $("bpd-go").disabled = true;
  say("draw-status", label + "…");
  try { await f(); } catch (e) { say("draw-status", e.message, true); } finally {
    drawBusy = false;
    $("regen").disabled = $("bpd-go").disabled = false;
  }
}

$("draw-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  drawCall("regenerating", async () => {
    const d = await post("api/v1/regenerate", {
      model: currentModel().name, image: drawing(), t: Number($("draw-t").value),
      n: Number($("draw-n").value), seed: Number($("draw-seed").value),
    });
    $("noise-xt").src = png(d.xt);
    $("regen-grid").src = png(d.grid);
    say("draw-status", `${d.samples.length} samples from x_t at t = ${d.t} in ${d.seconds.toFixed(1)} s: spread ${d.pixel_std.toFixed(1)}, RMSE to your image ${d.rmse.toFixed(1)} (of 255)`);
  });
});

$("bpd-go").addEventListener("click", () => {
  drawCall("computing the bound (T network evaluations)", async () => {
    const d = await post("api/v1/bpd", { model: currentModel().name, image: drawing(), seed: Number($("draw-seed").value) });
    $("bpd-total").textContent = d.bits_per_dim.toFixed(4);
    $("bpd-prior").textContent = d.prior_bpd.toExponential(3);
    $("bpd-terms").textContent = d.terms_bpd.toFixed(4);
    $("bpd-decoder").textContent = d.decoder_bpd.toFixed(4);
    $("bpd-table").hidden = false;
    say("draw-status", `${d.bits_per_dim.toFixed(3)} bits/dim (${d.network_evaluations} network evaluations, ${d.seconds.toFixed(1)} s)`);
  });
});

// ---- Compress ----

let compressing = null; // its AbortController
let rdPoints = [];

// compressImage is the chosen source as a data URL.
async function sourceImage(kind, value, fileInput) {
  switch (kind) {
    case "drawing":
      if (!drawn) throw new Error("the Draw tab's pad is empty");
      return drawing();
    case "example": {
      const imgs = await examples();
      return png(imgs[Math.min(Math.max(0, value | 0), imgs.length - 1)]);
    }
    case "upload": {
      const f = fileInput.files[0];
      if (!f) throw new Error("choose a file to upload");
      return fileToDataURL(f);
    }
  }
  return null;
}
$("compress-source").addEventListener("change", () => {
  if ($("compress-source").value === "upload") $("compress-upload").click();
});

// plotRD draws the distortion against the rate, the latest point marked.
function plotRD(final) {
  const c = $("rd-plot");
  const w = c.width, h = c.height, pad = 40;
  const p = c.getContext("2d");
  p.clearRect(0, 0, w, h);
  p.fillStyle = "#fff";
  p.fillRect(0, 0, w, h);
  const xmax = Math.max(0.05, ...rdPoints.map((q) => q.rate)) * 1.05;
  const ymax = Math.max(1, ...rdPoints.map((q) => q.rmse)) * 1.05;
  const X = (v) => pad + (w - pad - 10) * v / xmax;
  const Y = (v) => h - pad + (-(h - pad - 10)) * v / ymax;
  p.strokeStyle = "#999";
  p.fillStyle = "#555";
  p.font = "12px system-ui, sans-serif";
  p.beginPath();
  p.moveTo(pad, 10); p.lineTo(pad, h - pad); p.lineTo(w - 10, h - pad);
  p.stroke();
  p.fillText("rate (bits/dim)", w / 2 - 40, h - 8);
  p.fillText(xmax.toFixed(2), w - 40, h - pad + 14);
  p.fillText("0", pad - 4, h - pad + 14);
  p.fillText(ymax.toFixed(0), 4, 16);
  p.fillText("RMSE", 4, h / 2);
  if (!rdPoints.length) return;
  p.strokeStyle = "#2b59c3";
  p.lineWidth = 2;
  p.beginPath();
  rdPoints.forEach((q, k) => (k ? p.lineTo(X(q.rate), Y(q.rmse)) : p.moveTo(X(q.rate), Y(q.rmse))));
  p.stroke();
  const q = rdPoints[rdPoints.length - 1];
  p.fillStyle = final ? "#2b59c3" : "#b3261e";
  p.beginPath();
  p.arc(X(q.rate), Y(q.rmse), 5, 0, 2 * Math.PI);
  p.fill();
}
plotRD(false);

$("compress-cancel").addEventListener("click", () => compressing && compressing.abort());
$("compress-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (compressing) return;
  compressing = new AbortController();
  $("compress-go").disabled = true;
  $("compress-cancel").disabled = false;
  $("rd-table").hidden = true;
  rdPoints = [];
  plotRD(false);
  let finished = false;
  try {
    const image = await sourceImage($("compress-source").value, 0, $("compress-upload"));
    say("compress-status", "sending…");
    const r = await fetch("api/v1/compress/stream", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: currentModel().name, image, seed: Number($("compress-seed").value) }),
      signal: compressing.signal,
    });
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    await readEvents(r.body, (name, d) => {
      switch (name) {
        case "queued":
          $("compress-progress").max = d.total;
          say("compress-status", `queued (seed ${d.seed})`);
          break;
        case "progress": {
          rdPoints.push(...d.points);
          const q = rdPoints[rdPoints.length - 1];
          $("compress-progress").max = d.total;
          $("compress-progress").value = d.step;
          $("compress-xt").src = png(d.xt);
          $("compress-rec").src = png(d.x0);
          $("compress-xt-caption").innerHTML = `x<sub>t</sub> received, t = ${q.t}`;
          say("compress-status", `reverse step ${q.step} / ${d.total}: ${q.rate.toFixed(3)} bits/dim, RMSE ${q.rmse.toFixed(1)}`);
          plotRD(false);
          break;
        }
        case "done": {
          finished = true;
          $("compress-x0").src = png(d.image);
          plotRD(true);
          const body = $("rd-table").querySelector("tbody");
          body.textContent = "";
          d.table.forEach((row, k) => {
            const tr = document.createElement("tr");
            for (const v of [row.step, row.rate.toFixed(4), row.rmse.toFixed(2)]) {
              const td = document.createElement("td");
              td.textContent = v;
              tr.append(td);
            }
            const td = document.createElement("td");
            const img = document.createElement("img");
            img.src = png(d.reconstructions[k]);
            img.alt = `x̂0 after step ${row.step}`;
            td.append(img);
            tr.append(td);
            body.append(tr);
          });
          $("rd-table").hidden = false;
          say("compress-status", `done in ${d.seconds.toFixed(1)} s: rate ${d.rate[d.T - 1].toFixed(3)} + decoder ${d.decoder_bpd.toFixed(3)} = the bound ${d.total_bpd.toFixed(3)} bits/dim`);
          break;
        }
        case "error":
          finished = true;
          say("compress-status", d.error, true);
          break;
      }
    });
    if (!finished) say("compress-status", "the stream ended early", true);
  } catch (e) {
    say("compress-status", e.name === "AbortError" ? "cancelled" : e.message, e.name !== "AbortError");
  } finally {
    compressing = null;
    $("compress-go").disabled = false;
    $("compress-cancel").disabled = true;
  }
});
// Show the source image before compressing it.
$("compress-source").addEventListener("change", showCompressSource);
$("compress-upload").addEventListener("change", showCompressSource);
async function showCompressSource() {
  try {
    const url = await sourceImage($("compress-source").value, 0, $("compress-upload"));
    if (url) $("compress-x0").src = url;
  } catch (_) { /* shown when compressing */ }
}

// ---- Interpolate ----

let interp = null; // the latest answer
for (const side of ["a", "b"]) {
  $(`interp-${side}-source`).addEventListener("change", () => {
    if ($(`interp-${side}-source`).value === "upload") $(`interp-${side}-upload`).click();
  });
}

function showLambda() {
  if (!interp) return;
  const k = Number($("interp-lambda").value);
  $("interp-lambda-value").textContent = `λ = ${interp.lambdas[k].toFixed(3)}`;
  $("interp-latent").src = png(interp.images[k]);
  $("interp-pixel").src = png(interp.pixel[k]);
}
$("interp-lambda").addEventListener("input", showLambda);
$("interp-t").addEventListener("input", () => say("interp-status", `t = ${$("interp-t").value}`));

$("interp-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if ($("interp-go").disabled) return;
  $("interp-go").disabled = true;
  say("interp-status", "interpolating…");
  try {
    const body = { model: currentModel().name, t: Number($("interp-t").value), n: Number($("interp-n").value), seed: 1 };
    for (const side of ["a", "b"]) {
      const kind = $(`interp-${side}-source`).value, v = Number($(`interp-${side}-value`).value);
      if (kind === "seed") body["seed_" + side] = v;
      else body[side] = await sourceImage(kind, v, $(`interp-${side}-upload`));
    }
    interp = await post("api/v1/interpolate", body);
    $("interp-grid").src = png(interp.grid);
    $("interp-lambda").max = interp.lambdas.length - 1;
    $("interp-lambda").value = Math.floor((interp.lambdas.length - 1) / 2);
    $("interp-lambda").disabled = false;
    showLambda();
    say("interp-status", `t = ${interp.t}, ${interp.lambdas.length} mixes in ${interp.seconds.toFixed(1)} s; RMSE of λ = 0 to a ${interp.rmse_a.toFixed(1)}, of λ = 1 to b ${interp.rmse_b.toFixed(1)}`);
  } catch (e) {
    say("interp-status", e.message, true);
  } finally {
    $("interp-go").disabled = false;
  }
});

if (models.length) onModels();
