// Draft-model speculative sampling and LANTERN on the tiny fixture models
// (gpt.pt, 2 layers; gpt_draft.pt, its first layer alone: a smaller LlamaGen).
// With top-k 1 every p and q is one-hot, so the draft mode must return the
// reference's greedy tokens for any window. LANTERN with δ = 0 or k = 0 must
// be exactly standard acceptance (the same tokens as the unrelaxed loop for
// the same seed); with δ > 0 it may only accept more. The neighbour table is
// checked against a brute-force ranking of the fixture codebook.
import { describe, expect, it } from 'vitest';

import { generateWithDraft } from '../lib/decoding/draft.js';
import { generateLantern, vqNeighbourTable } from '../lib/decoding/lantern.js';
import { generateSjd } from '../lib/decoding/sjd.js';
import { LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import { WeightReader } from '../lib/models/var/weights.js';
import { GRID, loadGpt, meta, N, openFixture, ref } from './llamagen-fixtures.js';

async function loadDrafter(): Promise<LlamaGenGpt> {
  const c = openFixture('gpt_draft.pt');
  return LlamaGenGpt.load(c.tensors, 'gpt_draft.pt', { extras: c.extras });
}

describe('draft-model speculative sampling', () => {
  it.each([1, 2, 5, 16])('top-k 1, window %i: exactly the reference greedy tokens', async (window) => {
    const [model, drafter] = [await loadGpt(), await loadDrafter()];
    const classes = Array.from(ref('greedy_labels').data);
    const out = await generateWithDraft(model, drafter, { classes, grid: GRID, cfg: Number(meta().greedy_cfg), topK: 1, window });
    expect(out.tokens.flat()).toEqual(Array.from(ref('greedy_ids').data));
    const s = out.stats;
    expect(s.forwardPasses).toBeLessThanOrEqual(N);
    if (window > 1) expect(s.numDraftTokens).toBeGreaterThan(0);
    model.dispose(); drafter.dispose();
  });

  it('the target as its own drafter: every draft accepted, ceil((N − 1)/window) + 1 target passes', async () => {
    // p and q are then the same distribution (up to the rounding of a different
    // slot batching), so min(1, p/q) is 1 and the bookkeeping alone decides the count.
    const model = await loadGpt();
    const window = 5;
    for (const topK of [1, 8]) {
      const out = await generateWithDraft(model, model, { classes: [3, 8], grid: GRID, cfg: 1.5, topK, window, seed: 2 });
      expect(out.stats.acceptanceRate).toBeGreaterThan(0.97);
      if (topK === 1) expect(out.stats.forwardPasses).toBe(1 + Math.ceil((N - 1) / window));
    }
    model.dispose();
  });

  it('sampling: seeded, every image complete, counters consistent; refuses a mismatched drafter', async () => {
    const [model, drafter] = [await loadGpt(), await loadDrafter()];
    const opts = { classes: [2, 6, 1], grid: GRID, cfg: 1.5, topK: 8, window: 4 };
    const a = await generateWithDraft(model, drafter, { ...opts, seed: 3 });
    const b = await generateWithDraft(model, drafter, { ...opts, seed: 3 });
    expect(b.tokens).toEqual(a.tokens);
    for (const t of a.tokens) expect(t).toHaveLength(N);
    expect(a.stats.acceptanceRate).toBeCloseTo(a.stats.numAcceptedTokens / a.stats.numDraftTokens, 12);
    expect(a.stats.meanAcceptanceLength).toBeCloseTo(1 + a.stats.numAcceptedTokens / a.stats.numDrafts, 12);
    // Per position (vLLM's _per_pos): non-increasing, summing to the accepted total.
    const perPos = a.stats.numAcceptedTokensPerPos ?? [];
    expect(perPos.reduce((x, y) => x + y, 0)).toBe(a.stats.numAcceptedTokens);
    for (let i = 1; i < perPos.length; i++) expect(perPos[i]).toBeLessThanOrEqual(perPos[i - 1]!);
    await expect(generateWithDraft(model, drafter, { ...opts, window: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    model.dispose(); drafter.dispose();
  });
});

describe('LANTERN', () => {
  it('the neighbour table is the brute-force L2 ranking of the raw codebook', async () => {
    const c = openFixture('vq.pt');
    const table = await vqNeighbourTable(c.tensors, 'vq.pt', 10);
    expect(table.width).toBe(11);  // k walked + the (k+1)-th the rejection rule also zeroes
    const W = table.width;
    const e = Float64Array.from(new WeightReader(c.tensors, 'vq.pt').values('quantize.embedding.weight'));
    const D = 8, V = e.length / D;
    for (let v = 0; v < V; v++) {
      const d = Array.from({ length: V }, (_, u) => [u, e.subarray(u * D, u * D + D).reduce((s, x, i) => s + (x - e[v * D + i]!) ** 2, 0)] as const)
        .filter(([u]) => u !== v).sort((x, y) => x[1] - y[1] || x[0] - y[0]);
      expect(Array.from(table.ids.subarray(v * W, v * W + W))).toEqual(d.slice(0, W).map(([u]) => u));
    }
    expect((await vqNeighbourTable(c.tensors, 'vq.pt', V)).width).toBe(V - 1);
  });

  it('δ = 0 or k = 0 is standard acceptance (same tokens, same counters) with Jacobi and draft-model drafts', async () => {
    const [model, drafter] = [await loadGpt(), await loadDrafter()];
    const table = await vqNeighbourTable(openFixture('vq.pt').tensors, 'vq.pt', 16);
    const opts = { classes: [4, 7], grid: GRID, cfg: 1.5, topK: 16, seed: 11, window: 6 };
    const sjd = await generateSjd(model, opts);
    const draft = await generateWithDraft(model, drafter, opts);
    for (const relax of [{ k: 16, delta: 0 }, { k: 0, delta: 0.3 }]) {
      expect(await generateLantern(model, { ...opts, table, ...relax })).toEqual(sjd);
      expect(await generateLantern(model, { ...opts, table, ...relax, drafter })).toEqual(draft);
    }
    model.dispose(); drafter.dispose();
  });

  it('δ > 0 accepts at least as many drafts over 20 seeds (mass moved from up to k neighbours)', async () => {
    const model = await loadGpt();
    const table = await vqNeighbourTable(openFixture('vq.pt').tensors, 'vq.pt', 16);
    let plain = 0, relaxed = 0;
    for (let seed = 0; seed < 20; seed++) {
      const opts = { classes: [seed % 10], grid: GRID, cfg: 1.5, topK: 32, seed, window: 8 };
      plain += (await generateSjd(model, opts)).stats.acceptanceRate;
      relaxed += (await generateLantern(model, { ...opts, table, k: 16, delta: 0.3 })).stats.acceptanceRate;
    }
    expect(relaxed).toBeGreaterThan(plain);
    await expect(generateLantern(model, { classes: [1], grid: GRID, table, k: table.width + 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    model.dispose();
  });

  it("LANTERN++'s multiplicative bound λ: accepts more than plain SJD; bad λ / δ refused", async () => {
    const model = await loadGpt();
    const table = await vqNeighbourTable(openFixture('vq.pt').tensors, 'vq.pt', 16);
    let plain = 0, relaxed = 0;
    for (let seed = 0; seed < 10; seed++) {
      const opts = { classes: [seed % 10], grid: GRID, cfg: 1.5, topK: 32, seed, window: 8 };
      plain += (await generateSjd(model, opts)).stats.acceptanceRate;
      relaxed += (await generateLantern(model, { ...opts, table, k: 16, lambda: 3 })).stats.acceptanceRate;
    }
    expect(relaxed).toBeGreaterThan(plain);
    const base = { classes: [1], grid: GRID, table };
    for (const bad of [{ lambda: 1 }, { lambda: Number.NaN }, { delta: 1.5 }, { delta: -0.1 }, { delta: 0.1, lambda: 2 }])
      await expect(generateLantern(model, { ...base, ...bad })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    model.dispose();
  });
});
