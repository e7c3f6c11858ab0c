// The HTTP contract of `tessera serve` (issue 9), through fastify.inject:
// validation, PNG and JSON answers equal to the library run alone, batching,
// SSE, 429, timeouts, operations endpoints and graceful shutdown.
import { crc32, createDeflate } from 'node:zlib';

import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generate } from '../lib/models/var/generate.js';
import { loadVar } from '../lib/models/var/load.js';
import { buildServer } from '../lib/server/app.js';
import { pngOf } from '../lib/server/images.js';
import { MODELS, fixtureServer } from './server-fixtures.js';

const json = { 'content-type': 'application/json' };

/** The PNG `tessera generate` would write for these VAR settings, run alone. */
async function soloPng(opts: { classes: number[]; seed: number; topK?: number; topP?: number; cfg?: number }, b = 0): Promise<Buffer> {
  const pipe = await loadVar(MODELS![0]!.tokenizer, MODELS![0]!.weights);
  try {
    return await pngOf((await generate(pipe.vae, pipe.model, opts)).images, b);
  } finally {
    pipe.close();
  }
}

/** Parses an SSE body into events. */
function events(body: string): { event: string; data: string }[] {
  return body.split('\n\n').filter((b) => b.trim() !== '').map((block) => {
    const lines = block.split('\n');
    return { event: lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message', data: lines.find((l) => l.startsWith('data: '))?.slice(6) ?? '' };
  });
}

describe('a server without models', () => {
  it('is alive, not ready, and says how to configure models (no silent fallback)', async () => {
    const app = await buildServer({}, { logger: false });
    expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
    const ready = await app.inject({ url: '/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().error.message).toMatch(/no models are configured.*--var-tokenizer.*embedded tiny VAR/);
    const gen = await app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: { class: 1 } });
    expect(gen.statusCode).toBe(503);
    expect(gen.json().error.message).toMatch(/no models are configured/);
    await app.close();
  });
});

describe('tessera serve over the fixture models', () => {
  let app: FastifyInstance;
  beforeAll(async () => { app = await fixtureServer({ maxWaitMs: 30, maxBatch: 8, bodyLimit: 64 * 1024 }); });
  afterAll(async () => { await app.close(); });

  it('/ready lists the models and scenes; /health reports the event-loop delay', async () => {
    const r = await app.inject({ url: '/ready' });
    expect(r.statusCode).toBe(200);
    expect(r.json().models.map((m: { name: string }) => m.name)).toEqual(['var', 'llamagen']);
    expect(r.json().scenes).toEqual(['ball']);
    expect((await app.inject({ url: '/health' })).json().event_loop_delay_ms.p99).toBeGreaterThanOrEqual(0);
  });

  it.each([
    ['a string class', { class: 'one' }, /class/],
    ['an unknown field', { klass: 1 }, /unknown field klass/],
    ['a count over the limit', { class: 1, count: 1000 }, /count/],
    ['top_p above 1', { class: 1, top_p: 2 }, /top_p/],
    ['an unknown model', { model: 'nope', class: 1 }, /unknown model nope/],
    ['a class the model lacks', { class: 10 }, /class 10 is not a class id of model var/],
    ['sjd on VAR', { class: 1, decode: 'sjd' }, /VAR predicts next scales/],
  ])('refuses %s with 400 and a reason', async (_case, payload, why) => {
    const r = await app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.message).toMatch(why);
  });

  it('refuses malformed JSON (400) and oversized bodies (413)', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: '{"class": 1' })).statusCode).toBe(400);
    const big = await app.inject({ method: 'POST', url: '/v1/edit', headers: json, payload: { image: 'A'.repeat(100_000), box: [0, 0, 1, 1] } });
    expect(big.statusCode).toBe(413);
  });

  it('answers Accept: image/png with the exact PNG of the library run alone', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/generate', headers: { ...json, accept: 'image/png' }, payload: { class: 3, seed: 7, top_k: 0, top_p: 0 } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('image/png');
    expect(r.rawPayload).toEqual(await soloPng({ classes: [3], seed: 7, topK: 0, topP: 0 }));
  });

  it('answers JSON with base64 PNGs, seeds and token ids; count 2 draws seeds s and s+1', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: { class: 2, count: 2, seed: 4, top_k: 0, top_p: 0 } });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.images.map((i: { seed: number }) => i.seed)).toEqual([4, 5]);
    expect(body.images[1].tokens).toHaveLength(5);  // one array per scale
    expect(Buffer.from(body.images[1].png_base64, 'base64')).toEqual(await soloPng({ classes: [2], seed: 5, topK: 0, topP: 0 }));
  });

  it('batches requests that arrive together into one step per scale, each equal to its solo run', async () => {
    const before = await app.tessera.metrics.batchSize.get();
    const reqs = [{ class: 1, seed: 11 }, { class: 5, seed: 12 }, { class: 8, seed: 13 }];
    const rs = await Promise.all(reqs.map((payload) =>
      app.inject({ method: 'POST', url: '/v1/generate', headers: { ...json, accept: 'image/png' }, payload: { ...payload, top_k: 0, top_p: 0 } })));
    for (let i = 0; i < reqs.length; i++)
      expect(rs[i]!.rawPayload).toEqual(await soloPng({ classes: [reqs[i]!.class], seed: reqs[i]!.seed, topK: 0, topP: 0 }));
    const after = await app.tessera.metrics.batchSize.get();
    const count3 = (h: typeof after): number => h.values.find((v) => v.metricName === 'tessera_batch_size_bucket' && v.labels.le === 4)!.value
      - h.values.find((v) => v.metricName === 'tessera_batch_size_bucket' && v.labels.le === 2)!.value;
    expect(count3(after) - count3(before)).toBe(5);  // five scales, each one call over the three images
  });

  it('streams scale k of n progress with previews, then the result and [DONE]', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/generate', headers: { ...json, accept: 'text/event-stream' }, payload: { class: 1, preview: true } });
    expect(r.headers['content-type']).toBe('text/event-stream');
    const ev = events(r.body);
    const progress = ev.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
    expect(progress.map((p) => `${p.step}/${p.steps}`)).toEqual(['1/5', '2/5', '3/5', '4/5', '5/5']);
    expect(progress[0].previews).toHaveLength(1);
    expect(ev.at(-2)!.event).toBe('result');
    expect(ev.at(-1)!.data).toBe('[DONE]');
  });

  it('LlamaGen: AR and SJD by JSON, SJD streams its acceptance rate', async () => {
    const ar = await app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: { model: 'llamagen', class: 1, seed: 2 } });
    expect(ar.statusCode).toBe(200);
    expect(ar.json().images[0].tokens).toHaveLength(36);
    const sjd = await app.inject({ method: 'POST', url: '/v1/generate', headers: { ...json, accept: 'text/event-stream' },
      payload: { model: 'llamagen', class: 1, seed: 2, decode: 'sjd', window: 4 } });
    const ev = events(sjd.body);
    const last = JSON.parse(ev.filter((e) => e.event === 'progress').at(-1)!.data);
    const result = JSON.parse(ev.find((e) => e.event === 'result')!.data);
    expect(last.acceptance_rate).toBeCloseTo(result.stats.acceptanceRate, 12);
    expect(result.images[0].tokens).toHaveLength(36);
  });

  it('edits a VAR image in a box and renders a scene', async () => {
    const src = await soloPng({ classes: [1], seed: 0 });
    const e = await app.inject({ method: 'POST', url: '/v1/edit', headers: json, payload: { image: src.toString('base64'), box: [0, 0, 8, 8], class: 2 } });
    expect(e.statusCode).toBe(200);
    expect(e.json().images).toHaveLength(1);
    const r = await app.inject({ method: 'POST', url: '/v1/render', headers: json,
      payload: { scene: 'ball', camera: { eye: [0, 0, -3], target: [0, 0, 0], width: 32, height: 24 } } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('image/png');
    const missing = await app.inject({ method: 'POST', url: '/v1/render', headers: json, payload: { scene: 'x', camera: { eye: [0, 0, -3], target: [0, 0, 0], width: 8, height: 8 } } });
    expect(missing.json().error.message).toMatch(/unknown scene x; this server has ball/);
  });

  it('exposes Prometheus metrics', async () => {
    const text = (await app.inject({ url: '/metrics' })).body;
    for (const name of ['tessera_queue_depth', 'tessera_requests_running', 'tessera_batch_size_bucket', 'tessera_time_to_first_progress_seconds_bucket',
      'tessera_step_duration_seconds_bucket', 'tessera_e2e_request_latency_seconds_bucket', 'tessera_spec_decode_acceptance_rate',
      'tessera_native_host_pool_bytes{state="in_use"}', 'tessera_event_loop_delay_seconds{quantile="0.99"}', 'nodejs_eventloop_lag_p99_seconds'])
      expect(text).toContain(name);
  });
});

describe('limits', () => {
  it('a full queue answers 429 with Retry-After; the admitted requests still succeed', async () => {
    const app = await fixtureServer({ maxQueue: 2, maxBatch: 1, maxWaitMs: 0 });
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) =>
      app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: { class: 1, seed: i } })));
    const codes = rs.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 429).length).toBeGreaterThan(0);
    expect(codes.filter((c) => c === 200).length).toBeGreaterThanOrEqual(2);
    const refused = rs.find((r) => r.statusCode === 429)!;
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.json().error.type).toBe('overloaded');
    await app.close();
  });

  it('edit: a small body holding a huge image (8000x8000 PNG, 0.2 MB) is refused from its header, before decoding', async () => {
    // A PNG of zeros compresses ~1000:1; decoding it would take 192 MB of pixels and 768 MB of floats.
    const side = 8000, row = Buffer.alloc(1 + 3 * side);  // filter byte 0, black RGB
    const z = createDeflate({ level: 9 }), parts: Buffer[] = [];
    z.on('data', (c: Buffer) => parts.push(c));
    const ended = new Promise((r) => z.on('end', r));
    for (let y = 0; y < side; y++) if (!z.write(row)) await new Promise((r) => z.once('drain', r));
    z.end();
    await ended;
    const chunk = (type: string, data: Buffer): Buffer => {
      const len = Buffer.alloc(4), crc = Buffer.alloc(4), td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
      len.writeUInt32BE(data.length);
      crc.writeUInt32BE(crc32(td));
      return Buffer.concat([len, td, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(side, 0);
    ihdr.writeUInt32BE(side, 4);
    ihdr[8] = 8;  // bit depth
    ihdr[9] = 2;  // RGB
    const png = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.concat(parts)), chunk('IEND', Buffer.alloc(0))]);
    expect(png.length).toBeLessThan(512 * 1024);
    const app = await fixtureServer({});
    const peak0 = process.resourceUsage().maxRSS;  // KiB
    const r = await app.inject({ method: 'POST', url: '/v1/edit', headers: json, payload: { image: png.toString('base64'), box: [0, 0, 1, 1] } });
    const grew = (process.resourceUsage().maxRSS - peak0) / 1024;
    expect(r.statusCode).toBe(400);
    expect(r.json().error.message).toMatch(/image is 8000x8000; model var edits \d+x\d+ images/);
    expect(grew).toBeLessThan(128);  // MiB of peak RSS; decoding it first took ~1 GB
    await app.close();
  });

  it('settings the sampler would refuse get 400 before admission and never fail the requests batched with them', async () => {
    const app = await fixtureServer({ maxWaitMs: 50, maxBatch: 8 });
    const bad = [{ class: 1, top_k: 1e20 }, { class: 1, top_k: 2 ** 31 }, { class: 1, seed: Number.MAX_SAFE_INTEGER - 2, count: 4 },
      { model: 'llamagen', class: 1, top_k: 2 ** 31 }];
    const rs = await Promise.all([...bad, { class: 2, seed: 1 }, { model: 'llamagen', class: 2, seed: 1 }].map((payload) =>
      app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload })));
    expect(rs.map((r) => r.statusCode)).toEqual([400, 400, 400, 400, 200, 200]);
    expect(rs[0]!.json().error.message).toMatch(/top_k/);
    expect(rs[2]!.json().error.message).toMatch(/seed must be an integer in 0\.\.9007199254740988 for 4 image/);
    await app.close();
  });

  it('a streamed request is counted once in tessera_requests_total, with its outcome', async () => {
    const app = await fixtureServer({ timeoutMs: 1 });
    const counts = async (): Promise<Record<string, number>> => Object.fromEntries((await app.tessera.metrics.requests.get()).values
      .filter((v) => v.labels.endpoint === '/v1/generate').map((v) => [String(v.labels.code), v.value]));
    const r = await app.inject({ method: 'POST', url: '/v1/generate', headers: { ...json, accept: 'text/event-stream' }, payload: { model: 'llamagen', class: 1 } });
    expect(r.statusCode).toBe(200);  // the stream had started; its error event says 504
    expect(events(r.body).find((e) => e.event === 'error')!.data).toMatch(/"code":504/);
    expect(await counts()).toEqual({ 504: 1 });
    await app.close();
  });

  it('renders batch by output size: a cohort holds at most max-batch megapixels', async () => {
    const app = await fixtureServer({ maxBatch: 4, maxWaitMs: 100 });
    const view = (w: number, h: number) => app.inject({ method: 'POST', url: '/v1/render', headers: json,
      payload: { scene: 'ball', camera: { eye: [0, 0, -3], target: [0, 0, 0], width: w, height: h } } });
    // 1100x1000 is two slots: two such views fill a cohort of 4, the third waits for the next.
    const rs = await Promise.all([view(1100, 1000), view(1100, 1000), view(1100, 1000)]);
    expect(rs.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    const h = (await app.tessera.metrics.batchSize.get()).values;
    expect([h.find((v) => v.metricName === 'tessera_batch_size_count')!.value, h.find((v) => v.metricName === 'tessera_batch_size_sum')!.value]).toEqual([2, 3]);
    await app.close();
  });

  it('a request past its time limit gets 504 and leaves the server usable', async () => {
    const app = await fixtureServer({ timeoutMs: 1 });
    const r = await app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: { model: 'llamagen', class: 1 } });
    expect(r.statusCode).toBe(504);
    expect(r.json().error.message).toMatch(/within 1 ms/);
    expect(app.tessera.scheduler.running + app.tessera.scheduler.waiting).toBe(0);
    await app.close();
  });

  it('graceful shutdown: close() finishes in-flight requests, then refuses and frees the models', async () => {
    const app = await fixtureServer({ maxWaitMs: 20 });
    const inflight = app.inject({ method: 'POST', url: '/v1/generate', headers: json, payload: { class: 1 } });
    await new Promise((r) => setTimeout(r, 5));
    expect(app.tessera.scheduler.waiting + app.tessera.scheduler.running).toBe(1);
    const closing = app.close();
    expect((await inflight).statusCode).toBe(200);
    await closing;
    expect(app.tessera.registry.models.size).toBe(0);
    expect(app.tessera.registry.notReady).toBe('closed');
  });
});
