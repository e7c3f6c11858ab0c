// LlamaGen GPT and VQ tokenizer against the independent float64 PyTorch
// reference (scripts/reference/llamagen_reference.py; fixtures from
// make_llamagen_fixtures.py). Tolerance: float32 end to end vs float64,
// relative to the largest magnitude, 1e-4 (the bar). Token ids must
// be identical: the generator only accepts weights whose every greedy/VQ
// choice has a margin > 2e-3 and every seeded draw a CDF margin > 2e-4, far
// above float32 error.
import { describe, expect, it } from 'vitest';

import { gptConfig, vqConfig } from '../lib/models/llamagen/config.js';
import type { GptState, LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import { generateAr, GuidedSampler, prefill, resolveSampling, type GenerateOptions } from '../lib/models/llamagen/generate.js';
import { toUnitRange } from '../lib/models/llamagen/vq.js';
import { philoxUniform } from '../lib/ops/sampling.js';
import { Tensor } from '../lib/tensor.js';
import { TesseraError } from '../lib/errors.js';
import { GRID, loadGpt, loadVq, maxRelError, meta, N, openFixture, ref, unitRange } from './llamagen-fixtures.js';

const LABELS = [3, 7];
const ROWS = [...LABELS, -1, -1];  // CFG batch: conditional rows, then the null class

/** Embeddings [rows·n, dim] of slots from..from+n−1: slot 0 the class, slot 1+t token t (teacher forcing). */
async function slotInputs(model: LlamaGenGpt, from: number, n: number): Promise<Tensor> {
  const ids = ref('tf_ids').data;
  const d = model.config.dim;
  const out = Tensor.empty([ROWS.length * n, d]);
  const od = out.data as Float32Array;
  const cls = (await model.classEmbeddings(ROWS)).data as Float32Array;
  for (let r = 0; r < ROWS.length; r++)
    for (let j = 0; j < n; j++) {
      const slot = from + j;
      const src = slot === 0 ? cls.subarray(r * d, (r + 1) * d)
        : ((await model.tokenEmbeddings(Int32Array.of(ids[(r % 2) * N + slot - 1]!))).data as Float32Array);
      od.set(src, (r * n + j) * d);
    }
  return out;
}

/** Runs the slots in chunks (sizes sum to N) and gathers logits as [rows, N, V]. */
async function teacherForced(model: LlamaGenGpt, chunks: number[]): Promise<Float32Array> {
  const V = model.config.vocabulary;
  const state: GptState = model.newState(ROWS.length, GRID);
  const all = new Float32Array(ROWS.length * N * V);
  let at = 0;
  for (const n of chunks) {
    const logits = (await model.forward(state, await slotInputs(model, at, n), n)).data as Float32Array;
    for (let r = 0; r < ROWS.length; r++) all.set(logits.subarray(r * n * V, (r + 1) * n * V), (r * N + at) * V);
    at += n;
  }
  expect(state.length).toBe(N);
  state.dispose();
  return all;
}

describe('LlamaGen configuration from shapes', () => {
  it('reads the GPT and the tokenizer; heads by the head_dim-64 rule when args.gpt_model is not an official name', () => {
    const g = openFixture('gpt.pt');
    expect(gptConfig(g.tensors, 'gpt.pt', { extras: g.extras })).toEqual({
      layers: 2, dim: 128, heads: 2, kvHeads: 2, headDim: 64, headsSource: 'head-dim rule', vocabulary: 64, classes: 10, ffnHidden: 96,
    });
    expect(vqConfig(openFixture('vq.pt').tensors, 'vq.pt')).toEqual({
      channels: [32, 32], numResBlocks: 1, zChannels: 32, vocabulary: 64, codeDim: 8, downsample: 2,
    });
  });
});

describe('LlamaGen GPT vs the reference', () => {
  it('teacher-forced logits, one slot per pass through the KV cache, within 1e-4 (cond and null-class rows)', async () => {
    const model = await loadGpt();
    const got = await teacherForced(model, new Array<number>(N).fill(1));
    expect(maxRelError(got, ref('tf_logits').data)).toBeLessThan(1e-4);
    model.dispose();
  });

  it('the same logits when slots arrive several per pass (speculative windows) after a cached prefix', async () => {
    const model = await loadGpt();
    const got = await teacherForced(model, [1, 5, 11, N - 17]);
    expect(maxRelError(got, ref('tf_logits').data)).toBeLessThan(1e-4);
    model.dispose();
  });

  it('an explicit head count overrides the rule (4 heads of 32)', async () => {
    const model = await loadGpt({ heads: 4 });
    expect(model.config.headsSource).toBe('override');
    const got = await teacherForced(model, [1, N - 1]);
    expect(maxRelError(got, ref('tf_logits_h4').data)).toBeLessThan(1e-4);
    model.dispose();
  });
});

describe('LlamaGen generation vs the reference', () => {
  it('greedy (top-k 1) with CFG 2.5: identical tokens; decoded image within 1e-4', async () => {
    const model = await loadGpt();
    const vq = loadVq();
    const labels = Array.from(ref('greedy_labels').data);
    const out = await generateAr(model, { classes: labels, grid: GRID, cfg: Number(meta().greedy_cfg), topK: 1 });
    expect(out.tokens.flat()).toEqual(Array.from(ref('greedy_ids').data));
    expect(out.stats.forwardPasses).toBe(N);
    const img = toUnitRange(await vq.decodeCodes(Int32Array.from(out.tokens.flat()), labels.length, GRID));
    expect(img.shape).toEqual([2, 3, 12, 12]);
    expect(maxRelError(img.data as Float32Array, unitRange(ref('greedy_image').data))).toBeLessThan(1e-4);
    model.dispose();
  });

  it('seeded sampling (T 1.3, top-k 20, top-p 0.9, cfg 1.75) draws the reference\'s Philox tokens', async () => {
    const model = await loadGpt();
    const m = meta();
    const out = await generateAr(model, {
      classes: Array.from(ref('sample_labels').data), grid: GRID, cfg: Number(m.sample_cfg), topK: Number(m.sample_top_k),
      topP: Number(m.sample_top_p), temperature: Number(m.sample_temperature), seed: Number(m.sample_seed),
    });
    expect(out.tokens.flat()).toEqual(Array.from(ref('sample_ids').data));
    model.dispose();
  });

  it('cfg <= 1 runs the conditional rows alone (official generate())', async () => {
    const model = await loadGpt();
    const out = await generateAr(model, { classes: [4], grid: GRID, cfg: 1, topK: 1 });
    expect(out.tokens[0]).toEqual(Array.from(ref('nocfg_ids').data));
    model.dispose();
  });

  // The native loop (LlamaGenGpt.decode) against the same loop stepped from
  // TypeScript: GuidedSampler.draw, then one forward per token.
  async function steppedAr(model: LlamaGenGpt, o: GenerateOptions): Promise<number[][]> {
    const V = model.config.vocabulary, B = o.classes.length, n = o.grid * o.grid;
    const sampler = new GuidedSampler(resolveSampling(o, V), B, V, o.logitBias);
    const state = model.newState(sampler.rows, o.grid);
    const tokens = Array.from({ length: B }, () => [] as number[]);
    let logits = await prefill(model, state, sampler, o.classes);
    for (let t = 0; t < n; t++) {
      const picked = await sampler.draw(logits, 1, () => t);
      logits.dispose();
      picked.forEach((tok, b) => tokens[b]!.push(tok));
      if (t === n - 1) break;
      logits = await model.forward(state, await model.tokenEmbeddings(sampler.feed(picked)), 1);
    }
    state.dispose();
    return tokens;
  }

  it('the native decoding loop draws what the stepped loop draws (CFG or not, batch 2, per-image bias, top-k/top-p)', async () => {
    const model = await loadGpt();
    const V = model.config.vocabulary;
    const bias = Float32Array.from({ length: V }, (_, i) => (i % 3 === 0 ? 2 : 0));
    const cases: GenerateOptions[] = [
      { classes: [3, 7], grid: GRID, cfg: 2.5, topK: 30, topP: 0.8, temperature: 1.2, seed: 5 },
      { classes: [1, 9], grid: GRID, cfg: 1, topK: 0, topP: 1, temperature: 0.9, seed: 11 },
      { classes: [0, 4], grid: GRID, cfg: 3, topK: 50, seed: 2, logitBias: [bias, undefined] },
    ];
    for (const o of cases) {
      const done: number[] = [];
      const native = await generateAr(model, { ...o, onProgress: (d, total) => { expect(total).toBe(N); done.push(d); } });
      expect(native.tokens).toEqual(await steppedAr(model, o));
      expect(done.length).toBeGreaterThan(0);
      expect(done[done.length - 1]).toBe(N);
      for (let i = 1; i < done.length; i++) expect(done[i]!).toBeGreaterThan(done[i - 1]!);
    }
    // The bias moves the first image's tokens onto its favoured ids, not the second's.
    const biased = await generateAr(model, cases[2]!);
    const share = (ts: number[]): number => ts.filter((t) => t % 3 === 0).length / ts.length;
    expect(share(biased.tokens[0]!)).toBeGreaterThan(share(biased.tokens[1]!));
    model.dispose();
  });

  it('an onProgress that throws rejects the generation with its error (the loop stops; the process lives)', async () => {
    const model = await loadGpt();
    const boom = new Error('progress sink failed');
    let calls = 0;
    await expect(generateAr(model, {
      classes: [3], grid: GRID, cfg: 2, topK: 5, seed: 1,
      onProgress: (done) => { calls++; if (done >= 3) throw boom; },
    })).rejects.toBe(boom);
    expect(calls).toBeGreaterThanOrEqual(3);
    // The model still works afterwards.
    const ok = await generateAr(model, { classes: [3], grid: GRID, cfg: 2, topK: 1 });
    expect(ok.tokens[0]!.length).toBe(N);
    model.dispose();
  });

  it('the native loop refuses bad calls with a TesseraError and leaves the caches as they were', async () => {
    const model = await loadGpt();
    const V = model.config.vocabulary;
    const state = model.newState(4, GRID);
    const sampler = new GuidedSampler(resolveSampling({ cfg: 2 }, V), 2, V);
    const logits = await prefill(model, state, sampler, [3, 7]);
    const opts = { images: 2, steps: N, cfg: 2, temperature: 1, topK: 0, topP: 1, seed: 0, firstStep: 0 };
    const bad = [
      { ...opts, images: 3 },                              // rows 4 fit neither 3 nor 6
      { ...opts, steps: N + 1 },                           // one slot past the grid
      { ...opts, steps: 0 },
      { ...opts, bias: new Float32Array(V) },              // [1, V] for 2 images
    ];
    for (const o of bad) {
      await expect(model.decode(state, logits, o)).rejects.toBeInstanceOf(TesseraError);
      expect(state.length).toBe(1);
    }
    await expect(model.decode(state, logits, { ...opts, temperature: Number.NaN })).rejects.toBeInstanceOf(TesseraError);
    expect(state.caches.every((c) => c.lengths.every((l) => l === 1))).toBe(true);
    const tokens = await model.decode(state, logits, opts);
    expect(tokens.length).toBe(2 * N);
    expect(state.length).toBe(N);
    logits.dispose();
    state.dispose();
    model.dispose();
  });

  it('the reference\'s Philox port agrees with the engine', () => {
    for (const [s, r, t, u] of JSON.parse(meta().philox!) as number[][]) expect(philoxUniform(BigInt(s!), r!, BigInt(t!))).toBe(u);
  });
});

describe('LlamaGen VQ tokenizer vs the reference', () => {
  it('encodes to z within 1e-4 and to identical code ids (L2-normalised nearest)', async () => {
    const vq = loadVq();
    const image = ref('image');
    const z = await vq.encode(Tensor.from(image.data as Float32Array, image.shape));
    expect(z.shape).toEqual([1, 8, GRID, GRID]);
    expect(maxRelError(z.data as Float32Array, ref('enc_z').data)).toBeLessThan(1e-4);
    const ids = await vq.quantize(z);
    expect(Array.from(ids.data)).toEqual(Array.from(ref('enc_ids').data));
    const recon = await vq.decodeCodes(ids.data as Int32Array, 1, GRID);
    expect(maxRelError(recon.data as Float32Array, ref('enc_recon').data)).toBeLessThan(1e-4);
  });

  it('decode_code of given codes within 1e-4', async () => {
    const vq = loadVq();
    const img = await vq.decodeCodes(ref('dec_codes').data as Int32Array, 2, GRID);
    expect(maxRelError(img.data as Float32Array, ref('dec_image').data)).toBeLessThan(1e-4);
  });
});
