// Speculative Jacobi decoding on the tiny fixture model. With top-k 1 every
// p is one-hot, so SJD must return exactly the reference's greedy tokens for
// any window; its counters must add up; one seed gives one result.
import { describe, expect, it } from 'vitest';

import { generateSjd, officialSjdWindow } from '../lib/decoding/sjd.js';
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

  it('refuses a bad window, a bad schedule and a CFG interval (every token is guided)', async () => {
    const model = await loadGpt();
    await expect(generateSjd(model, { classes: [1], grid: GRID, window: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(generateSjd(model, { classes: [1], grid: GRID, schedule: 'x' as 'full' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(generateSjd(model, { classes: [1], grid: GRID, cfg: 2, cfgInterval: 3 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect((await generateSjd(model, { classes: [1], grid: GRID, cfg: 2, topK: 1, cfgInterval: -1 })).tokens[0]).toHaveLength(N);
    model.dispose();
  });

  it("the official script's schedule: windows from a cur_len one pass old, plain decoding at both ends", async () => {
    // test_llamagen.py at 512 px: 1024 tokens, window 16, jacobi_loop_interval_l = 1, _r = 1024 − 16 − 2.
    expect([1, 2, 3, 1000, 1006, 1007, 1023].map((n) => officialSjdWindow(16, n, 1024))).toEqual([1, 16, 16, 7, 1, 1, 1]);
    const model = await loadGpt();
    const classes = Array.from(ref('greedy_labels').data);
    const window = 4, seen: number[] = [];
    const out = await generateSjd(model, {
      classes, grid: GRID, cfg: Number(meta().greedy_cfg), topK: 1, window, schedule: 'official', onProgress: (n) => seen.push(n),
    });
    expect(out.tokens.flat()).toEqual(Array.from(ref('greedy_ids').data));
    // seen[t]: tokens after pass t (seen[0] = 1, the prefill). Pass t fed w_t tokens and emitted 1..w_t.
    expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
    let jacobi = 0;
    for (let t = 1; t < seen.length; t++) {
      const w = Math.min(N - seen[t - 1]! + 1, t === 1 ? 1 : officialSjdWindow(window, seen[t - 2]!, N));
      const step = seen[t]! - seen[t - 1]!;
      expect(step).toBeGreaterThanOrEqual(1);
      expect(step).toBeLessThanOrEqual(w);
      if (w > 1) jacobi++;
    }
    expect(jacobi).toBeGreaterThan(0);
    expect(out.stats.forwardPasses).toBe(seen.length);  // the prefill + one per pass
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
