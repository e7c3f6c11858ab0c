#!/usr/bin/env node
// Load test of `tessera serve` (issue 9, part 6), loopback only and bounded
// in time. It starts `tessera serve` on the embedded tiny VAR (or targets a
// running server with --url), then:
//   1. measures the engine's single-stream throughput in this process: the
//      same model, generate() back to back at the server's batch size, with
//      the model's sampling settings, before and after the load (the mean of
//      the two is the baseline the server is held to);
//   2. runs N concurrent clients for a fixed time (--duration) or a fixed
//      number of requests (--requests), mostly JSON and every 8th one SSE,
//      each answer checked (status, image count, PNG signature, seeds, the
//      SSE event order); a 429 is retried after its Retry-After (at most 1 s)
//      and counted;
//   3. meanwhile fires bad requests (wrong types, huge counts, unknown models
//      and fields and scenes, malformed JSON, wrong content type, an oversized
//      body, a bad camera), slow clients (a body trickled byte by byte that
//      completes, one that never completes, headers that never complete, a
//      connection that sends nothing), SSE clients that disconnect after the
//      first progress event, and one burst beyond the queue bound; every bad
//      request must get its 4xx, the burst some 429s with Retry-After;
//   4. reads the server's /metrics: RSS before (after a warm-up that includes
//      one burst) and after, the event-loop delay
//      over the load window (tessera_event_loop_delay_window_seconds), next
//      to an idle event loop's in a worker thread here (the machine's own
//      share of any timer's delay), batch sizes, cancellations.
// Hard requirements (exit 1 when one fails): no good request fails, every bad
// request gets the 4xx expected, the burst gets 429s with Retry-After, slow
// clients get 408 (or 200 when they finish), the server is alive after the
// load and (when this script started it) shuts down cleanly. Targets,
// reported as met or missed (exit 1 with --strict): throughput >= 95% of the
// engine's, event-loop delay p99 < 20 ms, RSS growth <= 10% (judged only over
// >= 10,000 requests).
//
//   node scripts/load-test.mjs                        # 30 s, 16 clients
//   node scripts/load-test.mjs --requests 10000       # the RSS check
//   node scripts/load-test.mjs --url http://127.0.0.1:8080 --max-batch 8
//
// Needs the built package (npx tsc -p tsconfig.json) and the native addon.
// No dependencies beyond Node: node:http with keep-alive agents, raw
// node:net sockets for the slow clients (autocannon measures one fixed
// request; this test needs mixed, checked, adversarial traffic).
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { readFileSync, writeFileSync } from 'node:fs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `Usage: node scripts/load-test.mjs [--url <base>] [--duration <s>=30 | --requests <n>]
       [--concurrency 16] [--count 1] [--max-batch 8] [--max-queue 64] [--request-timeout-ms 5000]
       [--engine-seconds 5] [--warmup-seconds 3] [--warmup-requests 0] [--bad-interval-ms 100] [--max-seconds 900] [--json <file>] [--strict] [--quiet]

--url targets a running server (its model must be the embedded tiny VAR for the
engine comparison; give its --max-batch and --request-timeout-ms, and it needs
the demo scene); otherwise tessera serve is started
on a free loopback port with --max-batch, --max-queue and --request-timeout-ms.
--duration runs the clients for that many seconds; --requests runs until that
many good requests have been answered (bounded by --max-seconds). The
warm-up (not counted) lasts --warmup-seconds or, when larger, until
--warmup-requests requests have been answered; RSS is first read after it.`;

// ---------- arguments ----------
function parse(argv) {
  const o = { url: undefined, duration: undefined, requests: undefined, concurrency: 16, count: 1, maxBatch: 8, maxQueue: 64, requestTimeoutMs: 5000,
    engineSeconds: 5, warmupSeconds: 3, warmupRequests: 0, badIntervalMs: 100, maxSeconds: 900, json: undefined, strict: false, quiet: false };
  const num = (name, v, min, int = true) => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || x < min || (int && !Number.isInteger(x))) throw new Error(`--${name} needs ${int ? 'an integer' : 'a number'} >= ${min}, got ${v}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => argv[++i];
    switch (a) {
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      case '--url': o.url = v(); if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\/?$/.test(o.url ?? '')) throw new Error(`--url must be a loopback http URL (http://127.0.0.1:PORT), got ${o.url}`); o.url = o.url.replace(/\/$/, ''); break;
      case '--duration': o.duration = num('duration', v(), 0.5, false); break;
      case '--requests': o.requests = num('requests', v(), 1); break;
      case '--concurrency': o.concurrency = num('concurrency', v(), 1); break;
      case '--count': o.count = num('count', v(), 1); break;
      case '--max-batch': o.maxBatch = num('max-batch', v(), 1); break;
      case '--max-queue': o.maxQueue = num('max-queue', v(), 1); break;
      case '--request-timeout-ms': o.requestTimeoutMs = num('request-timeout-ms', v(), 100); break;
      case '--engine-seconds': o.engineSeconds = num('engine-seconds', v(), 0.5, false); break;
      case '--warmup-requests': o.warmupRequests = num('warmup-requests', v(), 0); break;
      case '--warmup-seconds': o.warmupSeconds = num('warmup-seconds', v(), 0, false); break;
      case '--bad-interval-ms': o.badIntervalMs = num('bad-interval-ms', v(), 10); break;
      case '--max-seconds': o.maxSeconds = num('max-seconds', v(), 5); break;
      case '--json': o.json = v(); if (!o.json) throw new Error('--json needs a file'); break;
      case '--strict': o.strict = true; break;
      case '--quiet': o.quiet = true; break;
      default: throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  if (o.duration !== undefined && o.requests !== undefined) throw new Error('give --duration or --requests, not both');
  if (o.duration === undefined && o.requests === undefined) o.duration = 30;
  if (o.count > 16) throw new Error('--count must be <= 16 (the server\'s largest count)');
  return o;
}

let opts;
try { opts = parse(process.argv.slice(2)); } catch (e) { console.error(`load-test: ${e.message}`); process.exit(2); }
const log = (...a) => { if (!opts.quiet) console.error(...a); };

// ---------- statistics ----------
const quantile = (xs, q) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- HTTP ----------
const goodAgent = new Agent({ keepAlive: true, maxSockets: Infinity });
const otherAgent = new Agent({ keepAlive: true, maxSockets: Infinity });
let base;

/** One request; resolves with { status, headers, body } or { error }. */
function http(method, path, { body, headers = {}, agent = otherAgent, timeoutMs = 120_000, onData } = {}) {
  return new Promise((resolve) => {
    const u = new URL(base + path);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent, headers: { ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}), ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => { chunks.push(c); onData?.(c, req); });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (error) => resolve({ error }));
      res.on('aborted', () => resolve({ error: new Error('response aborted') }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => resolve({ error }));
    req.end(body);
  });
}

async function metrics() {
  const r = await http('GET', '/metrics');
  if (r.error || r.status !== 200) throw new Error(`GET /metrics failed: ${r.error?.message ?? r.status}`);
  const out = new Map();
  for (const line of r.body.toString().split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([^\s{]+)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) out.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return out;
}
const sumOf = (m, prefix) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);

// ---------- the server ----------
let server;  // { child, exited: Promise<code>, tail: string[] }

function startServer() {
  const cli = join(root, 'dist', 'lib', 'cli', 'main.js');
  const args = [cli, 'serve', '--host', '127.0.0.1', '--port', '0', '--max-batch', String(opts.maxBatch), '--max-queue', String(opts.maxQueue),
    '--request-timeout-ms', String(opts.requestTimeoutMs)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = [];
  let lines = 0, pending = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tessera serve did not listen within 60 s:\n${tail.join('\n')}`)), 60_000);
    const onData = (d) => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop();
      for (const l of parts) {
        lines++;
        tail.push(l);
        if (tail.length > 40) tail.shift();
        const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(l);
        if (m) { clearTimeout(timer); resolve({ child, exited, tail, url: m[1], lines: () => lines }); }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then((code) => { clearTimeout(timer); reject(new Error(`tessera serve exited (${code}) before listening:\n${tail.join('\n')}`)); });
  });
}

// ---------- the engine, in this process ----------
let engine;  // { pipe, generate, sampling, classes }

async function loadEngine() {
  const dist = join(root, 'dist', 'lib');
  let lib, emb;
  try {
    lib = await import(pathToFileURL(join(dist, 'index.js')).href);
    emb = await import(pathToFileURL(join(dist, 'models', 'embedded.js')).href);
  } catch (e) {
    throw new Error(`cannot load the built package (run npx tsc -p tsconfig.json): ${e.message}`);
  }
  const m = emb.embeddedModel();
  const pipe = await lib.loadVar(m.tokenizer, m.weights);
  return { pipe, generate: lib.generateVar, sampling: m.sampling, classes: m.classes.length };
}

/** Images per second of generate() at batch `opts.maxBatch`, back to back for `seconds` (after one warm-up batch), and CPU ms per image (this process, all threads). */
async function engineThroughput(seconds) {
  const B = opts.maxBatch;
  const run = async (seed) => {
    const classes = Array.from({ length: B }, (_, b) => (seed + b) % engine.classes);
    const r = await engine.generate(engine.pipe.vae, engine.pipe.model, { classes, seed, ...engine.sampling });
    r.images.dispose();
  };
  await run(0);
  const t0 = performance.now(), c0 = process.cpuUsage();
  let images = 0;
  while (performance.now() - t0 < seconds * 1000) { await run(images + 1); images += B; }
  const c = process.cpuUsage(c0);
  return { rate: images / ((performance.now() - t0) / 1000), cpuMs: (c.user + c.system) / 1000 / images };
}

// ---------- good clients ----------
const PNG_B64 = 'iVBORw0KGgo';
const good = { ok: 0, images: 0, errors: [], latencies: [], retried429: 0, sse: 0 };
let issued = 0, stopAt = Infinity, stopIssuing = false;

function checkJson(r, seed, count) {
  const j = JSON.parse(r.body.toString());
  if (!Array.isArray(j.images) || j.images.length !== count) return `expected ${count} images, got ${j.images?.length}`;
  for (let b = 0; b < count; b++) {
    const im = j.images[b];
    if (typeof im.png_base64 !== 'string' || !im.png_base64.startsWith(PNG_B64) || im.png_base64.length < 100) return `image ${b} is not a PNG`;
    if (im.seed !== seed + b) return `image ${b} has seed ${im.seed}, expected ${seed + b}`;
  }
  return undefined;
}

function checkSse(r, seed, count) {
  const events = r.body.toString().split('\n\n').filter((b) => b.trim() && !b.startsWith(':')).map((b) => {
    const lines = b.split('\n');
    return { event: lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message', data: lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n') };
  });
  const progress = events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
  if (progress.length === 0 || progress.some((p, i) => p.step !== i + 1 || p.steps !== progress.length)) return `progress events out of order: ${progress.map((p) => `${p.step}/${p.steps}`).join(' ')}`;
  const result = events.find((e) => e.event === 'result');
  if (!result) return `no result event (${events.map((e) => e.event).join(', ')})`;
  if (events.at(-1).data !== '[DONE]') return 'the stream does not end with [DONE]';
  return checkJson({ body: Buffer.from(result.data) }, seed, count);
}

async function goodClient(id, model) {
  for (;;) {
    if (stopIssuing || performance.now() >= stopAt) return;
    const n = issued++;
    if (opts.requests !== undefined && n >= opts.requests) { issued--; return; }
    const seed = 1000 + n * opts.count, sse = n % 8 === 7;
    const body = JSON.stringify({ model, class: n % 10, count: opts.count, seed });
    for (let attempt = 0; ; attempt++) {
      const t0 = performance.now();
      const r = await http('POST', '/v1/generate', { body, agent: goodAgent, headers: { 'content-type': 'application/json', accept: sse ? 'text/event-stream' : 'application/json' } });
      const ms = performance.now() - t0;
      if (r.status === 429 && attempt < 50) {
        good.retried429++;
        await sleep(Math.min(1000, 1000 * Number(r.headers['retry-after'] ?? 1)));
        continue;
      }
      let why = r.error ? `network: ${r.error.message}` : r.status !== 200 ? `HTTP ${r.status}: ${r.body.toString().slice(0, 200)}` : undefined;
      if (!why) {
        try { why = sse ? checkSse(r, seed, opts.count) : checkJson(r, seed, opts.count); } catch (e) { why = `unparseable answer: ${e.message}`; }
      }
      if (why) good.errors.push(`client ${id} request ${n}${sse ? ' (SSE)' : ''}: ${why}`);
      else { good.ok++; good.images += opts.count; good.latencies.push(ms); if (sse) good.sse++; }
      break;
    }
  }
}

// ---------- bad requests ----------
const json = { 'content-type': 'application/json' };
const BAD = [
  { name: 'wrong type: class "circle"', path: '/v1/generate', body: '{"class":"circle"}', expect: [400] },
  { name: 'wrong type: class {id:1}', path: '/v1/generate', body: '{"class":{"id":1}}', expect: [400] },
  { name: 'wrong type: cfg "lots"', path: '/v1/generate', body: '{"cfg":"lots"}', expect: [400] },
  { name: 'body is an array', path: '/v1/generate', body: '[1,2]', expect: [400] },
  { name: 'huge count 1e6', path: '/v1/generate', body: '{"count":1000000}', expect: [400] },
  { name: 'huge count 1e300', path: '/v1/generate', body: '{"count":1e300}', expect: [400] },
  { name: 'negative seed', path: '/v1/generate', body: '{"seed":-1}', expect: [400] },
  { name: 'class out of range', path: '/v1/generate', body: '{"class":99}', expect: [400] },
  { name: 'unknown model', path: '/v1/generate', body: '{"model":"no-such-model","class":1}', expect: [400] },
  { name: 'unknown field', path: '/v1/generate', body: '{"clas":1}', expect: [400] },
  { name: 'malformed JSON', path: '/v1/generate', body: '{"class": 1', expect: [400] },
  { name: 'empty JSON body', path: '/v1/generate', body: '', expect: [400] },
  { name: '__proto__ key', path: '/v1/generate', body: '{"__proto__":{"x":1}}', expect: [400] },
  { name: 'unsupported content type', path: '/v1/generate', body: '<class>1</class>', headers: { 'content-type': 'application/xml' }, expect: [415] },
  { name: 'PNG asked for 2 images', path: '/v1/generate', body: '{"count":2}', headers: { ...json, accept: 'image/png' }, expect: [406] },
  { name: 'GET on a POST route', method: 'GET', path: '/v1/generate', expect: [404] },
  { name: 'unknown scene', path: '/v1/render', body: '{"scene":"no-such-scene","camera":{"eye":[0,0,3],"target":[0,0,0],"width":64,"height":64}}', expect: [400] },
  { name: 'camera 100000 px wide', path: '/v1/render', body: '{"scene":"demo","camera":{"eye":[0,0,3],"target":[0,0,0],"width":100000,"height":64}}', expect: [400] },
  // The edit's image is decoded when its cohort starts, after admission: while the queue is full it gets 429 first.
  { name: 'edit: image not an image', path: '/v1/edit', body: '{"image":"aGVsbG8=","box":[0,0,8,8]}', expect: [400, 429] },
  // Over the body limit (8 MiB by default), on a raw socket: the server answers 413 and closes while the client is still
  // writing, which node:http reports as EPIPE instead of the answer.
  { name: 'body over the limit (9 MiB, Content-Length)', raw: 'length', expect: [413], every: 25 },
  { name: 'body over the limit (9 MiB, chunked)', raw: 'chunked', expect: [413], every: 25 },
];

/** A 9 MiB JSON body written in 1 MiB pieces on a raw socket; resolves like http() (body: the JSON error, when answered). */
async function oversized(kind) {
  const u = new URL(base), mib = 2 ** 20, piece = ' '.repeat(mib);
  const head = `POST /v1/generate HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nConnection: close\r\n` +
    (kind === 'length' ? `Content-Length: ${9 * mib + 2}\r\n\r\n{` : 'Transfer-Encoding: chunked\r\n\r\n');
  const parts = [head, ...Array.from({ length: 9 }, () => (kind === 'length' ? piece : `${mib.toString(16)}\r\n${piece}\r\n`)), kind === 'length' ? '}' : '0\r\n\r\n'];
  const r = await rawClient(parts, 1, 30_000);
  if (typeof r.result !== 'number') return { error: new Error(`no answer (${r.result})`) };
  return { status: r.result, body: Buffer.from(r.body ?? '') };
}
const badSeen = new Map(BAD.map((b) => [b.name, { expected: b.expect, got: new Map(), wrong: [] }]));

async function badClient() {
  const regular = BAD.filter((b) => !b.every), special = BAD.filter((b) => b.every);
  for (let k = 0, j = 0; !stopIssuing && performance.now() < stopAt; k++) {
    // The costly kinds (every: n) go at k = 3, 3 + n, ...; the rest in turn.
    const b = special.find((x, i) => k % x.every === 3 + i) ?? regular[j++ % regular.length];
    const r = b.raw ? await oversized(b.raw)
      : await http(b.method ?? 'POST', b.path, { body: b.body, headers: b.headers ?? (b.body !== undefined ? json : {}), timeoutMs: 30_000 });
    const s = badSeen.get(b.name), key = r.error ? `error: ${r.error.code ?? r.error.message}` : r.status;
    s.got.set(key, (s.got.get(key) ?? 0) + 1);
    if (!b.expect.includes(r.status)) s.wrong.push(r.error ? r.error.message : `HTTP ${r.status}: ${r.body.toString().slice(0, 120)}`);
    else {
      // Every 4xx carries the JSON error shape.
      try { const j = JSON.parse(r.body.toString()); if (!j.error) s.wrong.push(`HTTP ${r.status} without an error object`); } catch { s.wrong.push(`HTTP ${r.status} with a non-JSON body`); }
    }
    await sleep(opts.badIntervalMs);
  }
}

// ---------- slow and vanishing clients ----------
const slow = [];

/** A raw socket client: writes `parts` (strings) `gapMs` apart, then waits up to `waitMs` for the answer; resolves with the status (or 'closed'/'timeout'). */
function rawClient(parts, gapMs, waitMs) {
  return new Promise((resolve) => {
    const u = new URL(base);
    const t0 = performance.now();
    const s = connect(Number(u.port), u.hostname);
    let buf = '', done = false, i = 0;
    const finish = (v) => {
      if (done) return;
      done = true; clearTimeout(timer); clearTimeout(writer); s.destroy();
      const end = buf.indexOf('\r\n\r\n');
      resolve({ result: v, ms: performance.now() - t0, head: buf.slice(0, 200), body: end >= 0 ? buf.slice(end + 4) : undefined });
    };
    const timer = setTimeout(() => finish('timeout'), waitMs);
    let writer;
    const next = () => { if (i < parts.length && !s.destroyed) { s.write(parts[i++]); writer = setTimeout(next, gapMs); } };
    s.on('connect', next);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      const end = buf.indexOf('\r\n\r\n');
      if (!m || end < 0) return;
      const len = /content-length: *(\d+)/i.exec(buf.slice(0, end));
      if (!len || buf.length - end - 4 >= Number(len[1])) finish(Number(m[1]));
    });
    s.on('error', () => finish(buf ? Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0) || 'closed' : 'closed'));
    s.on('close', () => finish(buf ? Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0) || 'closed' : 'closed'));
  });
}

async function slowClients(model) {
  const u = new URL(base), host = `Host: ${u.host}\r\n`;
  const wait = opts.requestTimeoutMs + 5000;
  const body = JSON.stringify({ model, class: 4, seed: 77 });
  const cases = [
    { name: 'body trickled byte by byte over 1/4 of the request timeout, completes', expect: [200],
      parts: [`POST /v1/generate HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`, ...body],
      gap: Math.max(1, Math.floor(opts.requestTimeoutMs / 4 / body.length)) },
    { name: 'body never completes', expect: [408], parts: [`POST /v1/generate HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n`, '{"cla', 'ss"'], gap: 200 },
    { name: 'headers never complete', expect: [408], parts: ['POST /v1/generate HTTP/1.1\r\n', host, 'Content-Ty'], gap: 200 },
    { name: 'connects, sends nothing', expect: [408], parts: [], gap: 0 },
  ];
  await Promise.all(cases.map(async (c) => {
    // Each case while the load runs: twice, the second half a request timeout later.
    for (let k = 0; k < 2; k++) {
      if (k) await sleep(opts.requestTimeoutMs / 2);
      if (stopIssuing) break;
      const r = await rawClient(c.parts, c.gap, wait);
      slow.push({ name: c.name, expect: c.expect, ...r, ok: c.expect.includes(r.result) });
    }
  }));
}

/** SSE clients that hang up after the first progress event (the server should cancel their work). */
const vanished = { tried: 0, sawProgress: 0 };
async function vanishingClients(model) {
  for (let k = 0; k < 4 && !stopIssuing && performance.now() < stopAt; k++) {
    vanished.tried++;
    await http('POST', '/v1/generate', {
      body: JSON.stringify({ model, class: k % 10, count: Math.min(4, opts.count * 4), seed: 5000 + k }),
      headers: { ...json, accept: 'text/event-stream' },
      onData: (chunk, req) => { if (chunk.toString().includes('event: progress')) { vanished.sawProgress++; req.destroy(); } },
    });
    await sleep(500);
  }
}

/** One burst beyond the queue bound: some answers must be 429 with Retry-After, the rest 200. */
const burst = { size: 0, ok: 0, r429: 0, withRetryAfter: 0, other: [], endedAt: 0 };
async function burstClients(model, maxQueue) {
  burst.size = maxQueue + 2 * opts.maxBatch + 16;
  const rs = await Promise.all(Array.from({ length: burst.size }, (_, i) => http('POST', '/v1/generate', {
    body: JSON.stringify({ model, class: i % 10, seed: 9000 + i }), headers: json,
  })));
  for (const r of rs) {
    if (r.status === 200) burst.ok++;
    else if (r.status === 429) { burst.r429++; if (Number(r.headers['retry-after']) >= 1) burst.withRetryAfter++; }
    else burst.other.push(r.error ? r.error.message : `HTTP ${r.status}`);
  }
  burst.endedAt = performance.now();
}

/**
 * An idle event loop in a worker thread of this process, sampled like the
 * server's (10 ms resolution, the interval subtracted) over the load window:
 * the delay the machine alone imposes on a timer (scheduling on a loaded
 * host), next to which the server's own figure is read. stop() gives its p99, ms.
 */
async function idleControl() {
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    parentPort.once('message', () => { h.disable(); parentPort.postMessage(h.count === 0 ? 0 : Math.max(0, h.percentile(99) / 1e6 - 10)); });`, { eval: true });
  await new Promise((r) => w.once('online', r));
  return {
    async stop() {
      w.postMessage('stop');
      const p99 = await new Promise((r) => w.once('message', r));
      await w.terminate();
      return p99;
    },
  };
}

/** RSS of the spawned server from /proc (no /metrics scrape, which would reset the event-loop window), sampled every 2 s. */
const rssTrace = [];
function sampleRss(t0) {
  if (!server) return undefined;
  return setInterval(() => {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))?.[1]);
      if (kb) rssTrace.push({ s: (performance.now() - t0) / 1000, requests: good.ok, bytes: kb * 1024 });
    } catch { /* not Linux, or the server is gone */ }
  }, 2000);
}

// ---------- the run ----------
async function main() {
  const t00 = performance.now();
  const load0 = loadavg();
  if (opts.url) base = opts.url;
  else {
    log('starting tessera serve ...');
    server = await startServer();
    base = server.url;
  }
  const ready = await http('GET', '/ready');
  if (ready.error || ready.status !== 200) throw new Error(`${base}/ready: ${ready.error?.message ?? `HTTP ${ready.status} ${ready.body}`}`);
  const info = JSON.parse(ready.body.toString());
  const model = info.models[0]?.name;
  if (!model) throw new Error('the server has no model');
  const sat = JSON.parse((await http('GET', '/saturation')).body.toString() || '{}');
  const maxQueue = sat.max_queue ?? opts.maxQueue;

  log(`engine: loading the embedded model in this process ...`);
  engine = await loadEngine();
  const comparable = model === 'tiny-var';
  const eb = comparable ? await engineThroughput(opts.engineSeconds) : { rate: NaN, cpuMs: NaN };
  const engineBefore = eb.rate;
  log(`engine before: ${engineBefore.toFixed(1)} images/s at batch ${opts.maxBatch}`);

  // Warm-up (not counted): the clients' load and one burst of the size the run fires, so the server's pools, caches and
  // allocator reach the high-water mark of this traffic before its RSS is first read.
  log('warm-up ...');
  const warm = Date.now();
  let wi = 0;
  await Promise.all([
    ...Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() - warm < opts.warmupSeconds * 1000 || wi < opts.warmupRequests) await http('POST', '/v1/generate', { body: JSON.stringify({ model, class: wi++ % 10, count: opts.count }), headers: json, agent: goodAgent });
    }),
    Promise.all(Array.from({ length: maxQueue + 2 * opts.maxBatch + 16 }, (_, i) => http('POST', '/v1/generate', { body: JSON.stringify({ model, class: i % 10, seed: i }), headers: json }))),
  ]);

  const warmed = wi;
  const control = await idleControl();
  const m0 = await metrics();  // also starts the event-loop delay window
  const rss0 = m0.get('process_resident_memory_bytes');
  const cancelled0 = sumOf(m0, 'tessera_requests_cancelled_total');
  const cpu0 = m0.get('process_cpu_seconds_total');
  const batchSum0 = m0.get('tessera_batch_size_sum') ?? 0, batchCount0 = m0.get('tessera_batch_size_count') ?? 0;

  log(`load: ${opts.concurrency} clients x count ${opts.count}, ${opts.requests !== undefined ? `${opts.requests} requests` : `${opts.duration} s`} ...`);
  const t0 = performance.now();
  const hardStop = t0 + opts.maxSeconds * 1000;
  stopAt = opts.requests !== undefined ? hardStop : t0 + opts.duration * 1000;
  const guard = setTimeout(() => { stopIssuing = true; }, stopAt - t0);
  const rssTimer = sampleRss(t0);
  const progress = opts.quiet ? undefined : setInterval(() => log(`  ${good.ok} good requests, ${((performance.now() - t0) / 1000).toFixed(0)} s`), 15_000);
  const side = Promise.all([
    badClient(), slowClients(model), vanishingClients(model),
  ]);
  const burstDone = (async () => { await sleep(Math.min(2000, (opts.duration ?? 20) * 250)); if (!stopIssuing) await burstClients(model, maxQueue); })();
  await Promise.all(Array.from({ length: opts.concurrency }, (_, i) => goodClient(i, model)));
  await burstDone;
  // The window holds the good clients' work and the burst's (its 200s count as images served; the other side traffic costs no model steps but the vanishing SSE clients' first scales).
  const seconds = (Math.max(performance.now(), burst.endedAt) - t0) / 1000;
  const served = good.images + burst.ok;
  stopIssuing = true;
  clearTimeout(guard);
  if (progress) clearInterval(progress);
  await side;
  if (rssTimer) clearInterval(rssTimer);

  const m1 = await metrics();
  const controlP99 = await control.stop();
  const rss1 = m1.get('process_resident_memory_bytes');
  const mem = (m) => ({ heapUsed: m.get('nodejs_heap_size_used_bytes'), heapTotal: m.get('nodejs_heap_size_total_bytes'), external: m.get('nodejs_external_memory_bytes'),
    poolInUse: m.get('tessera_native_host_pool_bytes{state="in_use"}'), poolCached: m.get('tessera_native_host_pool_bytes{state="cached"}') });
  const mem0 = mem(m0), mem1 = mem(m1);
  // RSS at about a quarter, half and three quarters of the good requests (from /proc, spawned servers only).
  const at = (f) => rssTrace.find((x) => x.requests >= f * good.ok);
  const trace = [0.25, 0.5, 0.75].map(at).filter(Boolean);
  const loop = { p50: m1.get('tessera_event_loop_delay_window_seconds{quantile="0.5"}') * 1e3, p99: m1.get('tessera_event_loop_delay_window_seconds{quantile="0.99"}') * 1e3, max: m1.get('tessera_event_loop_delay_window_seconds{quantile="max"}') * 1e3, idleControlP99: controlP99 };
  const cancelled = sumOf(m1, 'tessera_requests_cancelled_total') - cancelled0;
  const serverCpuMs = ((m1.get('process_cpu_seconds_total') - cpu0) * 1000) / Math.max(1, served);
  const meanBatch = ((m1.get('tessera_batch_size_sum') ?? 0) - batchSum0) / Math.max(1, (m1.get('tessera_batch_size_count') ?? 0) - batchCount0);
  const health = await http('GET', '/health');
  const alive = !health.error && health.status === 200;

  const ea = comparable ? await engineThroughput(opts.engineSeconds) : { rate: NaN, cpuMs: NaN };
  const engineAfter = ea.rate, engineCpuMs = (eb.cpuMs + ea.cpuMs) / 2;
  engine.pipe.close();
  const baseline = (engineBefore + engineAfter) / 2;
  const throughput = served / seconds;

  let shutdown;
  if (server) {
    server.child.kill('SIGTERM');
    shutdown = await Promise.race([server.exited, sleep(30_000).then(() => 'did not exit within 30 s')]);
    if (shutdown !== 0) server.child.kill('SIGKILL');
  }

  // ---------- verdicts ----------
  const badWrong = [...badSeen].filter(([, s]) => s.wrong.length > 0);
  const badUnsent = [...badSeen].filter(([, s]) => s.got.size === 0).map(([n]) => n);
  const badTotal = [...badSeen.values()].reduce((a, s) => a + [...s.got.values()].reduce((x, y) => x + y, 0), 0);
  const slowWrong = slow.filter((s) => !s.ok);
  const hard = [
    ['no good request failed', good.errors.length === 0, `${good.errors.length} failed`],
    [`every bad request got its 4xx (${badTotal} sent, ${BAD.length} kinds)`, badWrong.length === 0, badWrong.map(([n, s]) => `${n}: ${s.wrong[0]}`).join('; ')],
    ['every kind of bad request was sent (the run was long enough)', badUnsent.length === 0, `not sent: ${badUnsent.join(', ')}`],
    ['slow clients: 408 (200 when they finish)', slowWrong.length === 0 && slow.length > 0, slowWrong.map((s) => `${s.name}: ${s.result}`).join('; ')],
    ['burst beyond the queue: 429 with Retry-After, the rest 200', burst.size === 0 || (burst.r429 > 0 && burst.withRetryAfter === burst.r429 && burst.other.length === 0),
      burst.size === 0 ? 'not run' : `${burst.r429} x 429 (${burst.withRetryAfter} with Retry-After), other: ${burst.other.slice(0, 3).join(', ')}`],
    ['server alive after the load (/health 200)', alive, health.error?.message ?? `HTTP ${health.status}`],
    ...(server ? [['clean shutdown on SIGTERM (exit 0)', shutdown === 0, String(shutdown)]] : []),
    ...(opts.requests !== undefined ? [[`all ${opts.requests} requests answered within --max-seconds`, good.ok + good.errors.length >= opts.requests, `${good.ok + good.errors.length} answered`]] : []),
  ];
  const judgedRss = good.ok >= 10_000;
  const rssGrowth = (rss1 - rss0) / rss0;
  const targets = [
    ['throughput >= 95% of the engine', comparable ? throughput >= 0.95 * baseline : undefined, comparable ? `${(100 * throughput / baseline).toFixed(1)}%` : 'not compared (the server\'s model is not the embedded tiny VAR)'],
    ['event-loop delay p99 < 20 ms', loop.p99 < 20, `${loop.p99.toFixed(1)} ms`],
    ['RSS growth <= 10% over 10,000 requests', judgedRss ? rssGrowth <= 0.10 : undefined, judgedRss ? `${(100 * rssGrowth).toFixed(1)}%` : `not judged (${good.ok} < 10,000 requests)`],
  ];

  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const verdict = (v) => (v === undefined ? 'n/a ' : v ? 'PASS' : 'FAIL');
  const lines = [
    '',
    `Tessera load test: ${base} (${server ? `tessera serve started here: --max-batch ${opts.maxBatch} --max-queue ${opts.maxQueue} --request-timeout-ms ${opts.requestTimeoutMs}` : 'given by --url'}), model ${model}`,
    `machine: ${availableParallelism()} CPUs, load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end`,
    '',
    '| measure | value |',
    '|---|---|',
    `| engine, single stream in-process, batch ${opts.maxBatch} | ${comparable ? `${engineBefore.toFixed(1)} images/s before, ${engineAfter.toFixed(1)} after: baseline ${baseline.toFixed(1)}` : 'n/a'} |`,
    `| server, ${opts.concurrency} clients x count ${opts.count} (every 8th SSE) | ${good.ok} requests (${good.images} images) and ${burst.ok} burst requests answered 200 in ${seconds.toFixed(1)} s: **${throughput.toFixed(1)} images/s**${comparable ? ` = ${(100 * throughput / baseline).toFixed(1)}% of the engine` : ''} |`,
    `| CPU time per image (all threads) | engine ${engineCpuMs.toFixed(1)} ms; server ${serverCpuMs.toFixed(1)} ms (everything it did in the window, per image served) |`,
    `| mean images per batched step | ${meanBatch.toFixed(2)} |`,
    `| latency of good requests (per attempt) | p50 ${quantile(good.latencies, 0.5).toFixed(0)} ms, p99 ${quantile(good.latencies, 0.99).toFixed(0)} ms, max ${Math.max(0, ...good.latencies).toFixed(0)} ms |`,
    `| 429 answers | ${good.retried429} to good clients (retried), ${burst.r429} of a ${burst.size}-request burst (${burst.withRetryAfter} with Retry-After; ${burst.ok} answered 200) |`,
    `| event-loop delay of the server over the load | p50 ${loop.p50.toFixed(1)} ms, p99 ${loop.p99.toFixed(1)} ms, max ${loop.max.toFixed(1)} ms (an idle loop on this machine meanwhile: p99 ${controlP99.toFixed(1)} ms) |`,
    `| server RSS | ${mib(rss0)} before (after a warm-up of ${warmed} requests and a burst), ${mib(rss1)} after (${rssGrowth >= 0 ? '+' : ''}${(100 * rssGrowth).toFixed(1)}%) over ${good.ok} requests${trace.length ? `; on the way: ${trace.map((x) => `${mib(x.bytes)} at ${x.requests}`).join(', ')}` : ''} |`,
    `| server JS heap used / native pool in use + cached | ${mib(mem0.heapUsed)} / ${mib(mem0.poolInUse)} + ${mib(mem0.poolCached)} before, ${mib(mem1.heapUsed)} / ${mib(mem1.poolInUse)} + ${mib(mem1.poolCached)} after |`,
    `| SSE clients that hung up after a progress event | ${vanished.sawProgress} of ${vanished.tried}; ${cancelled} requests cancelled by the server |`,
    `| good-request errors | ${good.errors.length} |`,
    '',
    '| bad request | expected | answers |',
    '|---|---|---|',
    ...[...badSeen].map(([n, s]) => `| ${n} | ${s.expected.join('/')} | ${[...s.got].map(([k, v]) => `${v} x ${k}`).join(', ') || 'not sent'}${s.wrong.length ? ` **WRONG: ${s.wrong[0]}**` : ''} |`),
    ...slow.map((s) => `| slow client: ${s.name} | ${s.expect.join('/')} | ${s.result} after ${(s.ms / 1000).toFixed(1)} s${s.ok ? '' : ' **WRONG**'} |`),
    '',
    'Hard requirements:',
    ...hard.map(([n, ok, why]) => `  ${verdict(ok)}  ${n}${ok ? '' : `: ${why}`}`),
    'Targets:',
    ...targets.map(([n, ok, v]) => `  ${verdict(ok)}  ${n}: ${v}`),
    '',
    `(${((performance.now() - t00) / 1000).toFixed(0)} s in all)`,
  ];
  console.log(lines.join('\n'));
  if (good.errors.length) console.log(`\nFirst good-request errors:\n  ${good.errors.slice(0, 5).join('\n  ')}`);
  if (server && hard.some(([, ok]) => !ok)) console.log(`\nLast server log lines:\n${server.tail.slice(-10).join('\n')}`);

  const hardOk = hard.every(([, ok]) => ok), targetsOk = targets.every(([, ok]) => ok !== false);
  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify({
      base, model, options: opts, seconds, served, engine: { before: engineBefore, after: engineAfter, baseline, cpuMsPerImage: engineCpuMs }, serverCpuMsPerImage: serverCpuMs, throughput, requests: good.ok, images: good.images, sse: good.sse,
      meanBatch, latencyMs: { p50: quantile(good.latencies, 0.5), p99: quantile(good.latencies, 0.99) }, retried429: good.retried429, burst, loopDelayMs: loop,
      warmupRequests: warmed, rss: { before: rss0, after: rss1, growth: rssGrowth, trace: rssTrace }, memory: { before: mem0, after: mem1 }, vanished, cancelled, goodErrors: good.errors,
      bad: Object.fromEntries([...badSeen].map(([n, s]) => [n, { expected: s.expected, got: Object.fromEntries(s.got), wrong: s.wrong }])),
      slow, hard: hard.map(([name, ok, why]) => ({ name, ok, why })), targets: targets.map(([name, ok, value]) => ({ name, ok: ok ?? null, value })), hardOk, targetsOk,
    }, null, 2));
  }
  return hardOk && (!opts.strict || targetsOk) ? 0 : 1;
}

const onSignal = () => { server?.child.kill('SIGTERM'); process.exit(130); };
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
main().then((code) => { goodAgent.destroy(); otherAgent.destroy(); process.exit(code); }, (e) => {
  console.error(`load-test: ${e.message}`);
  if (server) { console.error(`server log tail:\n${server.tail.slice(-10).join('\n')}`); server.child.kill('SIGKILL'); }
  process.exit(1);
});
