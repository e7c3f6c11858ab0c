// The package's public entry (lib/index.ts) covers LlamaGen end to end:
// load a tokenizer + GPT pair, generate with each decoding mode, decode to
// pixels, watermark and detect, all through exported names only (no deep
// imports), and with the same results as the reference fixtures.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import {
  detectTokens, generateLantern, generateLlamaGen, generateSjd, generateWithDraft, greenList, loadLlamaGen, poolIndex,
  resolveWatermark, TesseraError, watermarkBias,
} from '../lib/index.js';
import { fixtureDir, GRID, meta, N, ref, unitRange } from './llamagen-fixtures.js';

const vq = join(fixtureDir, 'vq.pt'), gpt = join(fixtureDir, 'gpt.pt');

describe('public API: LlamaGen', () => {
  it('loadLlamaGen + generateLlamaGen + decodeImages give the reference greedy ids and image', async () => {
    const p = await loadLlamaGen(vq, gpt);
    try {
      expect(p.grid(12)).toBe(GRID);
      const classes = Array.from(ref('greedy_labels').data);
      const out = await generateLlamaGen(p.model, { classes, grid: GRID, cfg: Number(meta().greedy_cfg), topK: 1 });
      expect(out.tokens.flat()).toEqual(Array.from(ref('greedy_ids').data));
      expect(out.stats.forwardPasses).toBe(N);
      const img = await p.decodeImages(out.tokens, GRID);
      expect(img.shape).toEqual([classes.length, 3, 12, 12]);
      const want = unitRange(ref('greedy_image').data);
      let worst = 0;
      const got = img.data as Float32Array;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst).toBeLessThan(1e-4);
      img.dispose();
    } finally {
      p.close();
    }
  });

  it('every speculative mode is reachable and lossless under top-k 1', async () => {
    const p = await loadLlamaGen(vq, gpt, { draft: join(fixtureDir, 'gpt_draft.pt') });
    try {
      const opts = { classes: [4], grid: GRID, cfg: 2, topK: 1 };
      const ar = (await generateLlamaGen(p.model, opts)).tokens;
      expect((await generateSjd(p.model, { ...opts, window: 8 })).tokens).toEqual(ar);
      expect((await generateWithDraft(p.model, p.drafter!, opts)).tokens).toEqual(ar);
      const table = await p.neighbourTable(8);
      expect((await generateLantern(p.model, { ...opts, table, k: 8, delta: 0.1 })).tokens).toEqual(ar);
    } finally {
      p.close();
    }
  });

  it('a watermarked generation is detected from its tokens; an unmarked one is not', async () => {
    const p = await loadLlamaGen(vq, gpt);
    try {
      const V = p.model.config.vocabulary;
      const w = resolveWatermark({ key: 'public-api', delta: 8 });
      const opts = { classes: [1, 2, 3, 5], grid: GRID, cfg: 1, topK: 0, seed: 7 };
      const marked = await generateLlamaGen(p.model, { ...opts, logitBias: watermarkBias(w, V, 7, 4) });
      const plain = await generateLlamaGen(p.model, opts);
      // Image b of a batch draws its green list with seed + b; detection tries the whole keyed pool and
      // finds that list. (36 tokens of a 64-code random model are too few for the z-test's decision.)
      const green = (t: number[], b: number) => {
        const g = greenList(w, poolIndex(w, 7 + b), V);
        return t.filter((x) => g[x]).length / t.length;
      };
      marked.tokens.forEach((t, b) => {
        expect(green(t, b)).toBeGreaterThan(0.9);
        expect(detectTokens(t, V, w).list).toBe(poolIndex(w, 7 + b));
      });
      plain.tokens.forEach((t, b) => expect(green(t, b)).toBeLessThan(0.6));
    } finally {
      p.close();
    }
  });

  it('bad files and sizes are TesseraErrors', async () => {
    await expect(loadLlamaGen(gpt, gpt)).rejects.toBeInstanceOf(TesseraError);
    const p = await loadLlamaGen(vq, gpt);
    try {
      expect(() => p.grid(13)).toThrow(/multiple of the tokenizer's downsampling/);
      await expect(p.decodeImages([[1, 2, 3]], GRID)).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    } finally {
      p.close();
    }
  });
});
