// Speculative Jacobi decoding on the tiny fixture model. With top-k 1 every
// p is one-hot, so SJD must return exactly the reference's greedy tokens for
// any window; its counters must add up; one seed gives one result.
import { describe, expect, it } from 'vitest';

import { generateSjd } from '../lib/decoding/sjd.js';
import { generateAr } from '../lib/models/llamagen/generate.js';
import { GRID, loadGpt, meta, N, ref } from './llamagen-fixtures.js';

describe('SJD', () => {
  it.each([1, 2, 4, 16, 64])('top-k 1, window %i: exactly the reference greedy tokens, fewer passes than tokens', async (window) => {
    const model = await loadGpt();
    const classes = Array.from(ref('greedy_labels').data);
    const out = await generateSjd(model, { classes, grid: GRID, cfg: Number(meta().greedy_cfg), topK: 1, window });
    expect(out.tokens.flat()).toEqual(Array.from(ref('greedy_ids').data));
    const s = out.stats;
    expect(s.tokens).toBe(N);
    expect(s.forwardPasses).toBeLessThanOrEqual(N);
    if (window === 1) expect(s.numDrafts).toBe(0);
    else expect(s.numDraftTokens).toBeGreaterThan(0);
    expect(s.acceptanceRate).toBeCloseTo(s.numDraftTokens ? s.numAcceptedTokens / s.numDraftTokens : 0, 12);
    model.dispose();
  });

  it('sampling: one seed gives one result; another seed another; the counters are consistent', async () => {
    const model = await loadGpt();
    const opts = { classes: [2, 6], grid: GRID, cfg: 1.5, topK: 8, temperature: 1, window: 8 };
    const a = await generateSjd(model, { ...opts, seed: 3 });
    const b = await generateSjd(model, { ...opts, seed: 3 });
    const c = await generateSjd(model, { ...opts, seed: 4 });
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    for (const t of a.tokens) expect(t).toHaveLength(N);
    // Tokens per image = 1 (prefill) + per verification pass (accepted + 1), minus the final pass's missing bonus at most.
    expect(a.stats.meanAcceptanceLength).toBeGreaterThanOrEqual(1);
    expect(a.stats.forwardPasses).toBeLessThanOrEqual(N);
    model.dispose();
  });

  it('refuses a bad window', async () => {
    const model = await loadGpt();
    await expect(generateSjd(model, { classes: [1], grid: GRID, window: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    model.dispose();
  });

  it('window 1 is plain decoding: the same sampled tokens as AR for the same seed', async () => {
    const model = await loadGpt();
    const opts = { classes: [9], grid: GRID, cfg: 2, topK: 0, temperature: 1.2, seed: 5 };
    const ar = await generateAr(model, opts);
    const sjd = await generateSjd(model, { ...opts, window: 1 });
    expect(sjd.stats.forwardPasses).toBe(N);
    // Different RNG steps (pass-based in SJD): only the first token shares its draw.
    expect(sjd.tokens[0]![0]).toBe(ar.tokens[0]![0]);
    model.dispose();
  });
});
