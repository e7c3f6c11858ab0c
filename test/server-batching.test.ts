// Batching identity: requests stepped together through one transformer call
// per scale (VAR) or per token (LlamaGen) give exactly what each gives alone
// with the same seed. Exact equality, no tolerance: the stacked ops are
// row-wise, so any difference would be a scheduling bug.
import { describe, expect, it } from 'vitest';

import { decodeEach, generate } from '../lib/models/var/generate.js';
import { VarTransformer } from '../lib/models/var/transformer.js';
import { Tensor } from '../lib/tensor.js';
import { Vqvae } from '../lib/models/var/vqvae.js';
import { generateSjd } from '../lib/decoding/sjd.js';
import { generateAr } from '../lib/models/llamagen/generate.js';
import { runLlamaGenCohort } from '../lib/server/llamagen-cohort.js';
import { ConditioningCache, decodeGroup, decodeGroups, KvCachePool, runVarCohort } from '../lib/server/var-cohort.js';
import { loadGpt } from './llamagen-fixtures.js';
import { openFixture } from './var-fixtures.js';

const never = new AbortController().signal;
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A cohort member's result equals the same request generated alone: tokens and image bytes. */
async function expectSolo(vae: Vqvae, model: VarTransformer, options: Parameters<typeof generate>[2], r: Awaited<ReturnType<typeof runVarCohort>>[number]): Promise<void> {
  const alone = await generate(vae, model, options);
  if (!r.ok) throw r.error;
  expect(r.value.tokens).toEqual(alone.tokens);
  expect(bytes(r.value.images.data as Float32Array)).toEqual(bytes(alone.images.data as Float32Array));
}

describe('VAR cohort', () => {
  it('three requests with different classes, settings and counts equal their solo runs', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const reqs = [
      { classes: [3], cfg: 2, topK: 0, topP: 0, temperature: 2, seed: 5 },
      { classes: [1, 7], cfg: 1.5, topK: 50, topP: 0.9, seed: 9 },
      { classes: [-1], cfg: 0, topK: 0, topP: 0, temperature: 1.5, seed: 1, moreSmooth: true },
    ];
    const steps: number[] = [];
    const together = await runVarCohort(vae, model, reqs.map((options) => ({ options, signal: never })), (n) => steps.push(n));
    expect(steps).toEqual(new Array(model.config.schedule.length).fill(4));
    for (let i = 0; i < reqs.length; i++) {
      await expectSolo(vae, model, reqs[i]!, together[i]!);
    }
    model.dispose();
  });

  it('a request cancelled mid-way is dropped at the next scale; the others still equal their solo runs', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const ac = new AbortController();
    const reqs = [{ classes: [2], seed: 3, topK: 0, topP: 0 }, { classes: [4, 4], seed: 8, topK: 0, topP: 0 }, { classes: [6], seed: 4, topK: 0, topP: 0 }];
    const steps: number[] = [];
    const res = await runVarCohort(vae, model, reqs.map((options, i) => ({
      options, signal: i === 1 ? ac.signal : never, onScale: i === 1 ? (si: number) => { if (si === 1) ac.abort(new Error('gone')); } : undefined,
    })), (n) => steps.push(n));
    expect(steps.slice(0, 3)).toEqual([4, 4, 2]);
    expect(res[1]).toMatchObject({ ok: false });
    for (const i of [0, 2]) {
      await expectSolo(vae, model, reqs[i]!, res[i]!);
    }
    model.dispose();
  });
});

describe('VAR cohort: conditioning cache and grouped decoding', () => {
  it('cohorts reuse conditionings by class list and still equal their solo runs; eviction frees entries', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const cache = new ConditioningCache(model);
    const cohorts = [
      [{ classes: [3], seed: 5, topK: 0, topP: 0 }, { classes: [3], seed: 6, cfg: 3, topK: 0, topP: 0 }, { classes: [1, 1], seed: 2 }],
      [{ classes: [1, 1], seed: 7, topP: 0.5 }, { classes: [3], seed: 8, topK: 0, topP: 0 }, { classes: [-1], seed: 1, cfg: 0 }],
    ];
    const misses: number[] = [];
    for (const reqs of cohorts) {
      const res = await runVarCohort(vae, model, reqs.map((options) => ({ options, signal: never })), undefined, { conditioning: cache });
      misses.push(cache.misses);
      for (let i = 0; i < reqs.length; i++) {
        await expectSolo(vae, model, reqs[i]!, res[i]!);
      }
    }
    // [3] and [1,1] computed once each in the first cohort (the repeat of [3] shared); only [-1] is new in the second.
    expect(misses).toEqual([2, 3]);
    expect(cache.hits).toBe(2);
    expect(cache.size).toBe(3);
    // A cache that holds one entry keeps the most recent list and frees the others.
    const one = cache.bytes / 4;  // one [c] entry: [c] and [-1] hold 2 rows each, [1,1] 4
    const small = new ConditioningCache(model, Math.ceil(one * 1.5));
    await small.use([[3], [5]], () => undefined);
    expect(small.size).toBe(1);
    await small.use([[5]], () => undefined);
    expect([small.hits, small.misses]).toEqual([1, 2]);
    await small.use([[1, 1]], () => undefined);  // larger than the whole cache: used, not kept
    expect([small.size, small.misses]).toEqual([1, 3]);
    small.clear();
    cache.clear();
    expect([cache.size, cache.bytes]).toEqual([0, 0]);
    await expect(runVarCohort(vae, model, [{ options: { classes: [1] }, signal: never }], undefined, { conditioning: new ConditioningCache(await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth')) }))
      .rejects.toThrow(/another model/);
    model.dispose();
  });

  it('cohorts reuse KV caches from a pool (stale contents never reach a result), within its byte bound', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const kv = new KvCachePool(model);
    const a = [{ classes: [3], seed: 5 }, { classes: [7], seed: 1, cfg: 4, topK: 0, topP: 0 }];
    const b = [{ classes: [-1], seed: 9, temperature: 2 }, { classes: [2], seed: 4, topP: 0.5 }];
    for (const reqs of [a, b, a]) {  // b runs on a's cache, then a on b's
      const res = await runVarCohort(vae, model, reqs.map((options) => ({ options, signal: never })), undefined, { kv });
      expect(kv.bytes).toBeGreaterThan(0);  // given back
      for (let i = 0; i < reqs.length; i++) {
        await expectSolo(vae, model, reqs[i]!, res[i]!);
      }
    }
    const one = kv.bytes;
    expect(kv.size).toBe(1);
    const taken = kv.take(4);
    expect(kv.bytes).toBe(0);
    const small = new KvCachePool(model, one - 1);
    small.give(taken);  // over the byte bound: disposed, not kept
    expect(small.bytes).toBe(0);
    expect(taken.k[0]!.disposed).toBe(true);
    // At most maxCaches kept, the least recently returned out first.
    const two = new KvCachePool(model, 64 * 2 ** 20, 2);
    const [c2, c4, c6] = [two.take(2), two.take(4), two.take(6)];
    for (const c of [c2, c4, c6]) two.give(c);
    expect(two.size).toBe(2);
    expect(c2.k[0]!.disposed).toBe(true);
    expect(two.take(4)).toBe(c4);
    expect(two.take(2)).not.toBe(c2);
    two.clear();
    kv.clear();
    model.dispose();
  });

  it('decodes several images per call with the bytes of one call per image', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const last = model.config.schedule.at(-1)!, C = model.config.latentChannels;
    expect(decodeGroup(vae, last)).toBeGreaterThan(1);  // the fixture is small: grouping is what runs here
    const fHat = Tensor.from(Float32Array.from({ length: 5 * C * last * last }, (_, i) => Math.sin(i * 0.37) * 0.8), [5, C, last, last]);
    const each = await decodeEach(vae, fHat);
    for (const g of [1, 2, 3, 5, 8]) {
      const grouped = await decodeGroups(vae, fHat, g);
      expect(grouped.shape).toEqual(each.shape);
      expect(bytes(grouped.data as Float32Array)).toEqual(bytes(each.data as Float32Array));
      grouped.dispose();
    }
    model.dispose();
  });
});

describe('cohort isolation', () => {
  it('VAR: a member whose settings the sampler refuses, or whose progress callback throws, fails alone', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const reqs = [{ classes: [2], seed: 3 }, { classes: [4], seed: 1, topK: 2 ** 40 }, { classes: [5, 6], seed: 8, topP: 0.7 }, { classes: [1], seed: 2 }];
    const res = await runVarCohort(vae, model, reqs.map((options, i) => ({
      options, signal: never, onScale: i === 3 ? (si: number) => { if (si === 2) throw new Error('stream broke'); } : undefined,
    })));
    expect(res[1]).toMatchObject({ ok: false, error: { code: 'ERR_INVALID_ARGUMENT' } });
    expect(res[3]).toMatchObject({ ok: false, error: { message: 'stream broke' } });
    for (const i of [0, 2]) {
      await expectSolo(vae, model, reqs[i]!, res[i]!);
    }
    model.dispose();
  });

  it('LlamaGen: a member whose settings the sampler refuses fails alone', async () => {
    const model = await loadGpt();
    const grid = 4;
    const reqs = [{ classes: [1], sampling: { cfg: 2, seed: 3 } }, { classes: [2], sampling: { seed: 2 ** 53 + 2 } }, { classes: [0], sampling: { cfg: 1, seed: 7 } }];
    const res = await runLlamaGenCohort(model, reqs.map((r) => ({ ...r, grid, decode: 'ar' as const, signal: never })));
    expect(res[1]).toMatchObject({ ok: false });
    for (const i of [0, 2]) {
      const alone = await generateAr(model, { classes: reqs[i]!.classes, grid, ...reqs[i]!.sampling });
      const r = res[i]!;
      if (!r.ok) throw r.error;
      expect(r.value.tokens).toEqual(alone.tokens);
    }
    model.dispose();
  });
});

describe('LlamaGen cohort', () => {
  it('AR requests with and without CFG, different seeds and counts equal generateAr alone', async () => {
    const model = await loadGpt();
    const grid = 4;
    const reqs = [
      { classes: [1], sampling: { cfg: 2, topK: 0, seed: 3, temperature: 1.5 } },
      { classes: [0, 2], sampling: { cfg: 1, topK: 5, seed: 7 } },
      { classes: [-1], sampling: { cfg: 3, topP: 0.8, seed: 2 } },
    ];
    const steps: number[] = [];
    const res = await runLlamaGenCohort(model, reqs.map((r) => ({ ...r, grid, decode: 'ar' as const, signal: never })), (n) => steps.push(n));
    expect(steps).toEqual(new Array(grid * grid).fill(4));
    for (let i = 0; i < reqs.length; i++) {
      const alone = await generateAr(model, { classes: reqs[i]!.classes, grid, ...reqs[i]!.sampling });
      const r = res[i]!;
      if (!r.ok) throw r.error;
      expect(r.value.tokens).toEqual(alone.tokens);
    }
    model.dispose();
  });

  it('an SJD request equals generateSjd alone and reports a running acceptance rate', async () => {
    const model = await loadGpt();
    const rates: number[] = [];
    const w = { classes: [1], grid: 4, sampling: { cfg: 2, topK: 0, seed: 4 }, decode: 'sjd' as const, window: 4, signal: never,
      onStep: (_d: number, _n: number, s?: { acceptanceRate?: number }) => rates.push(s?.acceptanceRate ?? -1) };
    const [r] = await runLlamaGenCohort(model, [w]);
    if (!r!.ok) throw r!.error;
    const alone = await generateSjd(model, { classes: [1], grid: 4, cfg: 2, topK: 0, seed: 4, window: 4 });
    expect(r!.value.tokens).toEqual(alone.tokens);
    expect(rates.at(-1)).toBeCloseTo(alone.stats.acceptanceRate, 12);
    model.dispose();
  });
});
