// A stand-in for a browser: runs web/app.js in Node (≥ 18: fetch, streams,
// Blob, URL.createObjectURL) against a live server, with just enough of a
// DOM for the Generate tab, then presses Generate and reports what the page
// shows. Usage: node page_harness.js APP_JS BASE_URL [cancel]
"use strict";

const fs = require("fs");
const [appPath, base, mode] = process.argv.slice(2);

function element(id, props = {}) {
  const listeners = {};
  return Object.assign({
    id, value: "", textContent: "", innerHTML: "", className: "", hidden: false, disabled: false,
    src: "", href: "", download: "", min: "", max: "", dataset: {}, options: [], attrs: {},
    addEventListener(type, fn) { (listeners[type] = listeners[type] || []).push(fn); },
    dispatch(type, ev = {}) { for (const fn of listeners[type] || []) fn(Object.assign({ preventDefault() {} }, ev)); },
    setAttribute(k, v) { this.attrs[k] = String(v); },
    append(child) { this.options.push(child); if (this.value === "") this.value = child.value; },
  }, props);
}

const els = {};
for (const id of ["models-status", "model", "sampler", "steps", "eta", "seed", "dice", "n", "go", "cancel",
  "download", "progress", "status", "xt", "x0", "xt-caption", "gen-form",
  "tab-generate", "tab-draw", "tab-compress", "tab-interpolate"]) {
  els[id] = element(id);
}
els.sampler.value = "ddim";
els.sampler.options = ["ddim", "respaced", "ancestral"].map((v) => ({ value: v, disabled: false }));
const tabs = ["generate", "draw", "compress", "interpolate"].map((t) => element("tab-btn-" + t, { dataset: { tab: t } }));

const progressSeen = [];
globalThis.document = {
  getElementById: (id) => els[id],
  querySelectorAll: (sel) => (sel.includes("tab") ? tabs : []),
  createElement: () => ({ value: "", textContent: "" }),
};
const realFetch = globalThis.fetch;
globalThis.fetch = (url, opts) => realFetch(new URL(url, base + "/"), opts);

eval(fs.readFileSync(appPath, "utf8"));

function waitFor(cond, ms) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - start > ms) return reject(new Error("timed out; status: " + els.status.textContent));
      setTimeout(tick, 5);
    };
    tick();
  });
}

(async () => {
  await waitFor(() => els.model.options.length > 0, 10000);
  // The tabs switch panels.
  tabs[3].dispatch("click");
  const switched = !els["tab-interpolate"].hidden && els["tab-generate"].hidden;
  tabs[0].dispatch("click");

  els.steps.value = mode === "cancel" ? "200" : "6";
  els.n.value = "3";
  els.seed.value = "11";
  els.eta.value = "0";
  const origSrc = Object.getOwnPropertyDescriptor(els.x0, "src");
  let frames = 0;
  Object.defineProperty(els.x0, "src", { set(v) { frames++; this._src = v; }, get() { return this._src; } });
  els["gen-form"].dispatch("submit");
  if (mode === "cancel") {
    await waitFor(() => frames > 0, 20000);
    els.cancel.dispatch("click");
    await waitFor(() => !els.go.disabled, 20000);
  } else {
    await waitFor(() => !els.go.disabled && els.status.textContent !== "sending…", 20000);
  }
  console.log(JSON.stringify({
    models: els.model.options.map((o) => o.value),
    modelsStatus: els["models-status"].textContent,
    switched,
    status: els.status.textContent,
    statusClass: els.status.className,
    frames,
    progress: [els.progress.value, els.progress.max],
    xtCaption: els["xt-caption"].innerHTML,
    xt: (els.xt.src || "").slice(0, 22),
    download: { hidden: els.download.hidden, name: els.download.download, href: els.download.href.slice(0, 5) },
    cancelDisabled: els.cancel.disabled,
  }));
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
