// The page `tessera serve` serves at `/`: pick a model and class, generate
// with live progress (SSE read from fetch's body, since EventSource cannot
// POST) and see the images; pick a scene and orbit it through /v1/render.
// Plain HTML, CSS and JS as strings shipped with the package: no build step,
// no CDN, no framework. The script and style are separate files so the page
// can forbid inline code (Content-Security-Policy in routes.ts). Every URL is
// relative to <base href> (the plugin's prefix), so the page works mounted
// under a prefix too.

const escapeAttr = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** The HTML for a server whose routes live under `prefix` ('' at the root). */
export function indexHtml(prefix: string): string {
  const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<base href="${escapeAttr(base)}">
<title>Tessera</title>
<link rel="icon" href="web/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="web/style.css">
<script src="web/app.js" defer></script>
</head>
<body>
<header>
  <h1><span class="logo" aria-hidden="true"></span>Tessera</h1>
  <p id="server-status" role="status">Connecting…</p>
</header>
<main>
  <section class="card" aria-labelledby="gen-title">
    <h2 id="gen-title">Generate</h2>
    <form id="gen-form">
      <div class="fields">
        <label>Model <select id="gen-model" name="model" required></select></label>
        <label>Class <select id="gen-class" name="class" required></select></label>
        <label>Images <input id="gen-count" name="count" type="number" min="1" max="8" value="4" required></label>
        <label>Seed <span class="row"><input id="gen-seed" name="seed" type="number" min="0" step="1" value="0" required><button type="button" id="gen-dice" class="icon" aria-label="Random seed" title="Random seed">⚄</button></span></label>
      </div>
      <label class="check"><input id="gen-preview" type="checkbox" checked> Live previews at each scale</label>
      <div class="actions">
        <button id="gen-go" type="submit" disabled>Generate</button>
        <button id="gen-cancel" type="button" class="secondary" hidden>Cancel</button>
      </div>
    </form>
    <div class="progress-row">
      <progress id="gen-progress" max="1" value="0" aria-label="Generation progress"></progress>
      <span id="gen-step" aria-hidden="true"></span>
    </div>
    <p id="gen-status" role="status" aria-live="polite"></p>
    <div id="gen-images" class="images" aria-label="Generated images"></div>
  </section>
  <section class="card" aria-labelledby="orbit-title">
    <h2 id="orbit-title">Orbit a scene</h2>
    <div class="fields">
      <label>Scene <select id="orbit-scene"></select></label>
    </div>
    <div id="orbit-view" class="view" tabindex="0" aria-describedby="orbit-help">
      <img id="orbit-img" alt="Server-side render of the scene">
    </div>
    <p id="orbit-help" class="hint">Drag the view to orbit, scroll to zoom; with the view focused, arrow keys orbit and + / − zoom.</p>
    <div class="fields sliders">
      <label>Azimuth <input id="orbit-az" type="range" min="0" max="359" value="35"> <output id="orbit-az-out" for="orbit-az">35°</output></label>
      <label>Elevation <input id="orbit-el" type="range" min="-10" max="85" value="25"> <output id="orbit-el-out" for="orbit-el">25°</output></label>
      <label>Distance <input id="orbit-dist" type="range" min="30" max="300" value="100"> <output id="orbit-dist-out" for="orbit-dist">1.00×</output></label>
    </div>
    <p id="orbit-status" role="status" aria-live="polite"></p>
  </section>
</main>
<footer>Tessera server · <a href="ready">/ready</a> · <a href="metrics">/metrics</a> · <a href="health">/health</a></footer>
</body>
</html>
`;
}

/** Four tiles, the header's logo. */
export const ICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="7.5" height="7.5" rx="1" fill="#f0a43a"/>' +
  '<rect x="8.5" width="7.5" height="7.5" rx="1" fill="#4cc3d9"/><rect y="8.5" width="7.5" height="7.5" rx="1" fill="#7bd88f"/>' +
  '<rect x="8.5" y="8.5" width="7.5" height="7.5" rx="1" fill="#b58cf0"/></svg>';

export const STYLE_CSS = String.raw`:root {
  color-scheme: dark;
  --bg: #0f1115; --card: #181b22; --line: #2a2f3a; --text: #e7e9ee; --muted: #9aa3b2;
  --accent: #f0a43a; --accent-2: #4cc3d9; --error: #ff7b7b;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; padding: 1rem 1.5rem .25rem; }
h1 { margin: 0; font-size: 1.4rem; letter-spacing: .02em; display: flex; align-items: center; gap: .5rem; }
.logo { width: 1.1rem; height: 1.1rem; display: inline-block; background: url(icon.svg) center / contain no-repeat; }
h2 { margin: 0 0 .75rem; font-size: 1.1rem; }
#server-status { margin: 0; color: var(--muted); }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 1rem; padding: 1rem 1.5rem; align-items: start; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem 1.25rem 1.25rem; }
.fields { display: flex; flex-wrap: wrap; gap: .75rem 1rem; }
label { display: flex; flex-direction: column; gap: .25rem; color: var(--muted); font-size: .85rem; }
label.check { flex-direction: row; align-items: center; gap: .4rem; margin-top: .75rem; }
.row { display: flex; gap: .35rem; }
select, input[type=number] { background: #11141a; color: var(--text); border: 1px solid var(--line); border-radius: 6px; padding: .4rem .5rem; font: inherit; min-width: 6rem; }
#gen-class { min-width: 10rem; }
#gen-count, #gen-seed { width: 6.5rem; min-width: 0; }
button { font: inherit; border: 0; border-radius: 6px; padding: .5rem 1.1rem; background: var(--accent); color: #1a1206; font-weight: 600; cursor: pointer; }
button.secondary { background: transparent; color: var(--text); border: 1px solid var(--line); }
button.icon { padding: .2rem .55rem; background: #11141a; color: var(--text); border: 1px solid var(--line); font-size: 1.1rem; line-height: 1; }
button:disabled { opacity: .5; cursor: not-allowed; }
:focus-visible { outline: 2px solid var(--accent-2); outline-offset: 2px; }
.actions { display: flex; gap: .5rem; margin-top: 1rem; }
.progress-row { display: flex; align-items: center; gap: .75rem; margin-top: 1rem; }
progress { flex: 1; height: .6rem; appearance: none; border: 0; border-radius: 99px; background: #11141a; overflow: hidden; }
progress::-webkit-progress-bar { background: #11141a; }
progress::-webkit-progress-value { background: linear-gradient(90deg, var(--accent), var(--accent-2)); transition: width .15s; }
#gen-step { color: var(--muted); font-variant-numeric: tabular-nums; min-width: 6.5rem; text-align: right; font-size: .85rem; }
[role=status] { min-height: 1.4em; margin: .5rem 0 0; color: var(--muted); font-size: .9rem; }
.error { color: var(--error) !important; }
.images { display: grid; grid-template-columns: repeat(auto-fill, minmax(104px, 1fr)); gap: .75rem; margin-top: .75rem; }
figure { margin: 0; text-align: center; }
figure img { width: 100%; aspect-ratio: 1; image-rendering: pixelated; border-radius: 6px; background: #11141a; border: 1px solid var(--line); display: block; }
figure.pending img { opacity: .75; }
figcaption { color: var(--muted); font-size: .8rem; margin-top: .25rem; }
.view { width: min(100%, 420px); aspect-ratio: 1; margin: .75rem 0 0; border-radius: 8px; overflow: hidden; border: 1px solid var(--line);
  background: #11141a; cursor: grab; touch-action: none; user-select: none; }
.view:active { cursor: grabbing; }
.view img { width: 100%; height: 100%; display: block; -webkit-user-drag: none; }
.hint { color: var(--muted); font-size: .8rem; margin: .4rem 0 .75rem; }
.sliders label { flex-direction: row; align-items: center; gap: .5rem; }
.sliders input[type=range] { width: 9rem; accent-color: var(--accent-2); }
output { font-variant-numeric: tabular-nums; color: var(--text); min-width: 3.2rem; }
footer { padding: 0 1.5rem 1.5rem; color: var(--muted); font-size: .85rem; }
a { color: var(--accent-2); }
@media (prefers-reduced-motion: reduce) { progress::-webkit-progress-value { transition: none; } }
`;

// Written without template literals (this file holds it in one).
export const APP_JS = String.raw`'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('server-status'), form: $('gen-form'), model: $('gen-model'), cls: $('gen-class'), count: $('gen-count'),
    seed: $('gen-seed'), dice: $('gen-dice'), preview: $('gen-preview'), go: $('gen-go'), cancel: $('gen-cancel'),
    progress: $('gen-progress'), step: $('gen-step'), genStatus: $('gen-status'), images: $('gen-images'),
    scene: $('orbit-scene'), view: $('orbit-view'), img: $('orbit-img'), az: $('orbit-az'), elev: $('orbit-el'), dist: $('orbit-dist'),
    azOut: $('orbit-az-out'), elOut: $('orbit-el-out'), distOut: $('orbit-dist-out'), orbitStatus: $('orbit-status'),
  };
  let models = [], scenes = [], running = null;

  const say = (node, text, isError) => { node.textContent = text; node.classList.toggle('error', !!isError); };

  /** The server's error message from a non-2xx answer ({"error": {"message"}}), else the status line. */
  async function errorOf(res) {
    try { const j = await res.json(); if (j && j.error && j.error.message) return j.error.message + ' (' + res.status + ')'; } catch (e) { /* not JSON */ }
    return 'HTTP ' + res.status + ' ' + res.statusText;
  }

  /** Reads a text/event-stream body to its end, calling on(event, data) per event ([DONE] ends the OpenAI-style stream). */
  async function readEvents(body, on) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf = (buf + value).replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const v = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = v; else if (field === 'data') data.push(v);
        }
        if (data.length === 0) continue;
        const text = data.join('\n');
        if (text !== '[DONE]') on(event, JSON.parse(text));  // [DONE] is the last event; the server then ends the body
      }
    }
  }

  const png = (b64) => 'data:image/png;base64,' + b64;

  function classOptions() {
    const m = models.find((x) => x.name === el.model.value);
    el.cls.replaceChildren();
    if (!m) return;
    for (let c = 0; c < m.classes; c++) {
      const name = m.class_names && m.class_names[c];
      el.cls.append(new Option(name ? name + ' (' + c + ')' : 'class ' + c, String(c)));
    }
    el.cls.append(new Option('any (no class)', '-1'));
  }

  function figure(alt) {
    const f = document.createElement('figure');
    const img = document.createElement('img');
    img.alt = alt;
    const cap = document.createElement('figcaption');
    f.append(img, cap);
    return f;
  }

  async function generate(ev) {
    ev.preventDefault();
    if (running || !el.form.reportValidity()) return;
    const count = Number(el.count.value), seed = Number(el.seed.value), cls = Number(el.cls.value);
    const label = el.cls.selectedOptions[0] ? el.cls.selectedOptions[0].textContent : String(cls);
    const body = { model: el.model.value, class: cls, count, seed, preview: el.preview.checked };
    const ctl = new AbortController();
    running = ctl;
    el.go.disabled = true; el.cancel.hidden = false;
    el.progress.max = 1; el.progress.value = 0; el.step.textContent = '';
    say(el.genStatus, 'Waiting for a slot…');
    const figs = [];
    el.images.replaceChildren();
    for (let b = 0; b < count; b++) {
      const f = figure(label + ', seed ' + (seed + b) + ' (in progress)');
      f.classList.add('pending');
      f.lastChild.textContent = 'seed ' + (seed + b);
      figs.push(f);
      el.images.append(f);
    }
    const t0 = performance.now();
    let steps = 0;
    try {
      const res = await fetch('v1/generate', {
        method: 'POST', signal: ctl.signal, body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      });
      if (!res.ok) throw new Error(await errorOf(res));
      let result = null;
      await readEvents(res.body, (event, data) => {
        if (event === 'progress') {
          steps++;
          el.progress.max = data.steps; el.progress.value = data.step;
          el.step.textContent = data.unit + ' ' + data.step + ' / ' + data.steps;
          say(el.genStatus, 'Generating: ' + data.unit + ' ' + data.step + ' of ' + data.steps + '…');
          (data.previews || []).forEach((p, b) => { if (figs[b]) figs[b].firstChild.src = png(p); });
        } else if (event === 'result') {
          result = data;
        } else if (event === 'error') {
          throw new Error(data.error.message + ' (' + data.error.code + ')');
        }
      });
      if (!result) throw new Error('the stream ended without a result');
      result.images.forEach((im, b) => {
        const f = figs[b];
        f.classList.remove('pending');
        f.firstChild.src = png(im.png_base64);
        f.firstChild.alt = label + ', seed ' + im.seed;
      });
      el.progress.value = el.progress.max;
      say(el.genStatus, result.images.length + ' image' + (result.images.length > 1 ? 's' : '') + ' of ' + label + ' in ' +
        ((performance.now() - t0) / 1000).toFixed(2) + ' s (' + steps + ' progress events)');
    } catch (e) {
      if (e.name === 'AbortError') say(el.genStatus, 'Cancelled.');
      else say(el.genStatus, 'Generation failed: ' + e.message, true);
      for (const f of figs) if (f.classList.contains('pending')) f.remove();
    } finally {
      running = null;
      el.go.disabled = false; el.cancel.hidden = true;
    }
  }

  // Orbit: a camera on a sphere around the scene's centre, y down (RDF), so height is −y.
  let orbit = { target: [0, 0, 0], radius: 1 }, busy = false, again = false, lastMs = 0;
  function eye() {
    const a = Number(el.az.value) * Math.PI / 180, e = Number(el.elev.value) * Math.PI / 180;
    const d = orbit.radius * 1.75 * Number(el.dist.value) / 100, t = orbit.target;
    return [t[0] + d * Math.cos(e) * Math.sin(a), t[1] - d * Math.sin(e), t[2] + d * Math.cos(e) * Math.cos(a)];
  }
  function outputs() {
    el.azOut.value = el.az.value + '°';
    el.elOut.value = el.elev.value + '°';
    el.distOut.value = (Number(el.dist.value) / 100).toFixed(2) + '×';
  }
  /** Renders the current camera; while one render is in flight, only the latest camera is rendered next. */
  async function renderView() {
    outputs();
    if (!el.scene.value) return;
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        // Pixels as the view shows them (up to 640 a side), so the render is sharp on high-density screens.
        const side = Math.max(64, Math.min(640, Math.round(el.view.clientWidth * (window.devicePixelRatio || 1)))), t0 = performance.now();
        const res = await fetch('v1/render', {
          method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ scene: el.scene.value, camera: { eye: eye(), target: orbit.target, width: side, height: side, fov_y_degrees: 50 }, background: [0.07, 0.08, 0.1] }),
        });
        if (!res.ok) throw new Error(await errorOf(res));
        const j = await res.json();
        await new Promise((resolve) => { el.img.onload = resolve; el.img.onerror = resolve; el.img.src = png(j.png_base64); });
        el.img.alt = 'Render of scene ' + el.scene.value + ' from azimuth ' + el.az.value + '°, elevation ' + el.elev.value + '°';
        lastMs = performance.now() - t0;
        say(el.orbitStatus, j.stats.visible + ' of ' + j.stats.gaussians + ' Gaussians visible · ' + lastMs.toFixed(0) + ' ms round trip');
      } while (again);
    } catch (e) {
      say(el.orbitStatus, 'Render failed: ' + e.message, true);
    } finally {
      busy = false;
    }
  }
  function selectScene() {
    const s = scenes.find((x) => x.id === el.scene.value);
    if (s) orbit = { target: s.center, radius: s.radius };
    renderView();
  }
  function nudge(daz, del, zoom) {
    el.az.value = String(((Math.round(Number(el.az.value) + daz) % 360) + 360) % 360);
    el.elev.value = String(Math.max(-10, Math.min(85, Number(el.elev.value) + del)));
    el.dist.value = String(Math.max(30, Math.min(300, Math.round(Number(el.dist.value) * zoom))));
    renderView();
  }
  let drag = null;
  el.view.addEventListener('pointerdown', (e) => { drag = { x: e.clientX, y: e.clientY }; el.view.setPointerCapture(e.pointerId); });
  el.view.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) < 2) return;
    drag = { x: e.clientX, y: e.clientY };
    nudge(-dx * 0.6, dy * 0.4, 1);
  });
  const endDrag = () => { drag = null; };
  el.view.addEventListener('pointerup', endDrag);
  el.view.addEventListener('pointercancel', endDrag);
  el.view.addEventListener('wheel', (e) => { e.preventDefault(); nudge(0, 0, Math.exp(e.deltaY * 0.001)); }, { passive: false });
  el.view.addEventListener('keydown', (e) => {
    const k = { ArrowLeft: [-10, 0, 1], ArrowRight: [10, 0, 1], ArrowUp: [0, 5, 1], ArrowDown: [0, -5, 1], '+': [0, 0, 0.9], '=': [0, 0, 0.9], '-': [0, 0, 1.1] }[e.key];
    if (!k) return;
    e.preventDefault();
    nudge(k[0], k[1], k[2]);
  });
  for (const s of [el.az, el.elev, el.dist]) s.addEventListener('input', renderView);
  el.scene.addEventListener('change', selectScene);
  el.model.addEventListener('change', classOptions);
  el.form.addEventListener('submit', generate);
  el.cancel.addEventListener('click', () => { if (running) running.abort(); });
  el.dice.addEventListener('click', () => { el.seed.value = String(Math.floor(Math.random() * 1e6)); });

  async function start() {
    try {
      const [ready, sc] = await Promise.all([fetch('ready'), fetch('v1/scenes')]);
      if (!ready.ok) throw new Error(await errorOf(ready));
      const r = await ready.json();
      scenes = sc.ok ? (await sc.json()).scenes : [];
      models = r.models;
      for (const m of models) el.model.append(new Option(m.name + ' (' + m.family + ', ' + m.image_size + ' px)', m.name));
      classOptions();
      for (const s of scenes) el.scene.append(new Option(s.id + ' (' + s.gaussians.toLocaleString('en') + ' Gaussians)', s.id));
      el.go.disabled = models.length === 0;
      if (models.length === 0) say(el.genStatus, 'This server has no models.');
      if (scenes.length === 0) say(el.orbitStatus, 'This server has no scenes (start it with --scene id=path).');
      say(el.status, 'Ready: ' + models.length + ' model' + (models.length === 1 ? '' : 's') + ', ' + scenes.length + ' scene' + (scenes.length === 1 ? '' : 's'));
      if (scenes.length) selectScene();
    } catch (e) {
      say(el.status, 'Server not ready: ' + e.message, true);
    }
  }
  start();
})();
`;
