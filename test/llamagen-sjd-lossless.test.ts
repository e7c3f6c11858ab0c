// SJD and the draft-model mode keep the target distribution: on a 2x2 grid
// the exact marginals of tokens 1 and 2 are computable by enumerating the
// (top-k 8) supports of the earlier tokens; 400 seeded runs of each (window
// 4, so tokens 1..3 are drafted: for SJD random one-hot drafts first, then
// reused outputs with q = their p; for the draft mode the 1-layer drafter's
// samples with its q) must pass a chi-square test against them at a
// false-alarm rate of 1e-3 per token (critical values: the 0.999 quantiles
// of chi-square). Power: accepting reused drafts unconditionally gives chi2
// ~1000 here, and LANTERN's relaxation (lossy) is rejected (last case); a
// bias of a few percent of the mass needs far more runs.
import { describe, expect, it } from 'vitest';

import { generateWithDraft } from '../lib/decoding/draft.js';
import { generateLantern, vqNeighbourTable } from '../lib/decoding/lantern.js';
import { generateSjd } from '../lib/decoding/sjd.js';
import { GuidedSampler, prefill, resolveSampling, type Generated } from '../lib/models/llamagen/generate.js';
import { LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import { Tensor } from '../lib/tensor.js';
import { loadGpt, openFixture } from './llamagen-fixtures.js';

const CHI2_999 = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12, 37.70];
const SETTINGS = { cfg: 1.5, topK: 8, temperature: 1, topP: 1, seed: 0 };
const GRID = 2, CLASS = 3, RUNS = 400;

/** The processed next-token distribution after `prefix` (float64). */
async function nextDistribution(model: LlamaGenGpt, prefix: number[]): Promise<Float64Array> {
  const V = model.config.vocabulary;
  const sampler = new GuidedSampler(resolveSampling(SETTINGS, V), 1, V);
  const state = model.newState(sampler.rows, GRID);
  let logits = await prefill(model, state, sampler, [CLASS]);
  for (const t of prefix) {
    logits.dispose();
    logits = await model.forward(state, await model.tokenEmbeddings(sampler.feed(Int32Array.of(t))), 1);
  }
  const probs = Tensor.empty([1, V]);
  await sampler.draw(logits, 1, () => 0, probs);
  state.dispose();
  return Float64Array.from(probs.data as Float32Array);
}

/** Exact marginal of token `pos` by enumerating every prefix with positive probability. */
async function marginal(model: LlamaGenGpt, pos: number, prefix: number[] = [], weight = 1, acc?: Float64Array): Promise<Float64Array> {
  const p = await nextDistribution(model, prefix);
  const out = acc ?? new Float64Array(p.length);
  if (prefix.length === pos) { p.forEach((v, i) => { out[i] += weight * v; }); return out; }
  for (let t = 0; t < p.length; t++) if (p[t]! > 0) await marginal(model, pos, [...prefix, t], weight * p[t]!, out);
  return out;
}

/** Pearson's statistic over bins with expected count >= 5 (the rest pooled into one bin). */
function chiSquare(counts: number[], expected: Float64Array, n: number): { stat: number; df: number } {
  let stat = 0, bins = 0, restObs = 0, restExp = 0;
  expected.forEach((p, i) => {
    const e = p * n;
    if (e >= 5) { stat += (counts[i]! - e) ** 2 / e; bins++; } else { restObs += counts[i]!; restExp += e; }
  });
  if (restExp > 0) { stat += (restObs - restExp) ** 2 / Math.max(restExp, 1e-9); bins++; }
  return { stat, df: bins - 1 };
}

type Run = (model: LlamaGenGpt, seed: number) => Promise<Generated>;

/** 400 seeded runs of `run`: chi-square of tokens 1 and 2 against the exact marginals; returns the mean passes. */
async function checkMarginals(model: LlamaGenGpt, run: Run): Promise<number> {
  const V = model.config.vocabulary;
  const counts = [new Array<number>(V).fill(0), new Array<number>(V).fill(0)];
  let passes = 0;
  for (let seed = 0; seed < RUNS; seed++) {
    const out = await run(model, seed);
    counts[0]![out.tokens[0]![1]!]++;
    counts[1]![out.tokens[0]![2]!]++;
    passes += out.stats.forwardPasses;
  }
  for (const pos of [1, 2]) {
    const { stat, df } = chiSquare(counts[pos - 1]!, await marginal(model, pos), RUNS);
    expect(df).toBeGreaterThan(0);
    expect(stat, `token ${pos}: chi2 ${stat.toFixed(2)} on ${df} df`).toBeLessThan(CHI2_999[df - 1]!);
  }
  return passes / RUNS;
}

describe('speculative decoding is lossless', () => {
  it('SJD: token marginals of 400 seeded runs match the exact ones (chi-square, 1e-3 false alarms per token)', async () => {
    const model = await loadGpt();
    const passes = await checkMarginals(model, (m, seed) => generateSjd(m, { ...SETTINGS, classes: [CLASS], grid: GRID, window: 4, seed }));
    expect(passes).toBeLessThanOrEqual(4);
    model.dispose();
  });

  it('draft model (the 1-layer gpt_draft.pt drafting for gpt.pt): the same chi-square test', async () => {
    const model = await loadGpt();
    const c = openFixture('gpt_draft.pt');
    const drafter = await LlamaGenGpt.load(c.tensors, 'gpt_draft.pt', { extras: c.extras });
    const passes = await checkMarginals(model, (m, seed) =>
      generateWithDraft(m, drafter, { ...SETTINGS, classes: [CLASS], grid: GRID, window: 4, seed }));
    expect(passes).toBeLessThanOrEqual(4);
    model.dispose(); drafter.dispose();
  });

  it('power: the same test rejects LANTERN (δ 0.2, k 63, lossy by design) with the same drafter', async () => {
    // Measured: chi2 ~50 on 6 df for token 1 (critical 22.46); δ 0.05 is rejected too (chi2 ~40 on 8 df).
    const model = await loadGpt();
    const c = openFixture('gpt_draft.pt');
    const drafter = await LlamaGenGpt.load(c.tensors, 'gpt_draft.pt', { extras: c.extras });
    const table = await vqNeighbourTable(openFixture('vq.pt').tensors, 'vq.pt', 63);
    await expect(checkMarginals(model, (m, seed) =>
      generateLantern(m, { ...SETTINGS, classes: [CLASS], grid: GRID, window: 4, seed, table, k: 63, delta: 0.2, drafter }))).rejects.toThrow(/chi2/);
    model.dispose(); drafter.dispose();
  });
});
