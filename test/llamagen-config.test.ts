// The head-count rule and shape checks on shape-only stand-ins for the
// official checkpoints (no weights are read): heads are in no tensor shape.
import { describe, expect, it } from 'vitest';

import { PickleObject } from '../lib/io/pickle.js';
import type { StoredTensor } from '../lib/io/stored-tensor.js';
import { gptConfig } from '../lib/models/llamagen/config.js';
import { generateAr } from '../lib/models/llamagen/generate.js';
import { GRID, loadGpt, loadVq } from './llamagen-fixtures.js';

function fake(shapes: Record<string, number[]>): Map<string, StoredTensor> {
  return new Map(Object.entries(shapes).map(([name, shape]) => [name, {
    name, dtype: 'float32' as const, shape, numel: shape.reduce((a, b) => a * b, 1),
    load: () => { throw new Error('shape-only stand-in'); },
  }]));
}

/** The official GPT key layout for `layers` blocks of width `dim`. */
function gpt(layers: number, dim: number, ffn: number, drop: string[] = []): Map<string, StoredTensor> {
  const s: Record<string, number[]> = {
    'cls_embedding.embedding_table.weight': [1001, dim], 'tok_embeddings.weight': [16384, dim],
    'norm.weight': [dim], 'output.weight': [16384, dim],
  };
  for (let i = 0; i < layers; i++) {
    const p = `layers.${i}.`;
    Object.assign(s, {
      [`${p}attention.wqkv.weight`]: [3 * dim, dim], [`${p}attention.wo.weight`]: [dim, dim],
      [`${p}feed_forward.w1.weight`]: [ffn, dim], [`${p}feed_forward.w3.weight`]: [ffn, dim], [`${p}feed_forward.w2.weight`]: [dim, ffn],
      [`${p}attention_norm.weight`]: [dim], [`${p}ffn_norm.weight`]: [dim],
    });
  }
  for (const k of drop) delete s[k];
  return fake(s);
}

const args = (name: string): Map<string, unknown> => new Map([['args', new PickleObject('argparse.Namespace', new Map([['gpt_model', name]]))]]);

describe('LlamaGen head count', () => {
  it.each([
    ['GPT-B', 12, 768, 2048, 12], ['GPT-L', 24, 1024, 2816, 16], ['GPT-XL', 36, 1280, 3584, 20],
    ['GPT-XXL', 48, 1536, 4096, 24], ['GPT-3B', 24, 3200, 8704, 32],
  ])('%s: the head_dim rule (64; 100 at dim 3200) gives the official count, and args.gpt_model agrees', (name, layers, dim, ffn, heads) => {
    const t = gpt(layers, dim, ffn);
    expect(gptConfig(t, 'x.pt')).toMatchObject({ layers, dim, heads, ffnHidden: ffn, classes: 1000, vocabulary: 16384, headsSource: 'head-dim rule' });
    expect(gptConfig(t, 'x.pt', { extras: args(name) })).toMatchObject({ heads, headsSource: 'args' });
  });

  it('args naming another official model is a format error; an explicit count wins over everything', () => {
    const t = gpt(12, 768, 2048);
    expect(() => gptConfig(t, 'c2i_B_256.pt', { extras: args('GPT-L') })).toThrow(/c2i_B_256\.pt: args\.gpt_model says GPT-L \(24 layers, dim 1024\), the weights have 12 layers of dim 768/);
    expect(gptConfig(t, 'x.pt', { extras: args('GPT-L'), heads: 6 })).toMatchObject({ heads: 6, headDim: 128, headsSource: 'override' });
  });

  it('grouped-query checkpoints: n_kv_head from wqkv\'s rows; rows that fit no n_kv_head, or layers that disagree, are named', () => {
    const withQkv = (rows: number[], dim = 768): Map<string, StoredTensor> => {
      const t = gpt(rows.length, dim, 2048);
      rows.forEach((r, i) => { t.get(`layers.${i}.attention.wqkv.weight`)!.shape = [r, dim]; });
      return t;
    };
    // 12 heads of 64: n_kv_head 4 -> (12 + 2·4)·64 = 1280 rows; 1 -> 896.
    expect(gptConfig(withQkv([1280, 1280]), 'gqa.pt')).toMatchObject({ heads: 12, kvHeads: 4, headDim: 64 });
    expect(gptConfig(withQkv([896, 896]), 'mqa.pt')).toMatchObject({ heads: 12, kvHeads: 1 });
    expect(gptConfig(gpt(2, 768, 2048), 'b.pt')).toMatchObject({ heads: 12, kvHeads: 12 });
    const code = (f: () => unknown): string | undefined => { try { f(); } catch (e) { return (e as { code?: string }).code; } return undefined; };
    expect(() => gptConfig(withQkv([800, 800]), 'odd.pt')).toThrow(/odd\.pt: layers\.0\.attention\.wqkv\.weight has 800 rows/);
    expect(code(() => gptConfig(withQkv([800, 800]), 'odd.pt'))).toBe('ERR_FORMAT');
    expect(() => gptConfig(withQkv([1280, 1152]), 'mixed.pt')).toThrow(/mixed\.pt: layers\.1\.attention\.wqkv\.weight/);  // 4 then 3 kv heads
    expect(() => gptConfig(withQkv([1408, 1408]), 'five.pt')).toThrow(/five\.pt: layers\.0\.attention\.wqkv\.weight has 1408 rows/);  // 5 kv heads do not divide 12
  });

  it('a width the rule cannot split asks for the count; a missing or misshapen key is named', () => {
    expect(() => gptConfig(gpt(2, 96, 256), 'odd.pt')).toThrow(/odd\.pt: tok_embeddings\.weight has dim 96, not a multiple of head_dim 64: give the head count explicitly/);
    expect(gptConfig(gpt(2, 96, 256), 'odd.pt', { heads: 3 }).headDim).toBe(32);
    expect(() => gptConfig(gpt(2, 768, 2048, ['layers.1.feed_forward.w3.weight']), 'cut.pt')).toThrow(/cut\.pt: layers\.1\.feed_forward\.w3\.weight is missing/);
    try { gptConfig(gpt(2, 768, 2048, ['output.weight']), 'cut.pt'); } catch (e) { expect(e).toMatchObject({ code: 'ERR_FORMAT' }); }
  });
});

describe('LlamaGen bad inputs', () => {
  it('classes, sampling settings, token ids and grids are checked with ERR_INVALID_ARGUMENT', async () => {
    const model = await loadGpt();
    const vq = loadVq();
    const bad = { code: 'ERR_INVALID_ARGUMENT' };
    await expect(generateAr(model, { classes: [10], grid: GRID })).rejects.toMatchObject(bad);
    await expect(generateAr(model, { classes: [-2], grid: GRID })).rejects.toMatchObject(bad);
    await expect(generateAr(model, { classes: [], grid: GRID })).rejects.toMatchObject(bad);
    await expect(generateAr(model, { classes: [1], grid: GRID, topK: 1.5 })).rejects.toThrow(/top-k must be/);
    await expect(generateAr(model, { classes: [1], grid: GRID, temperature: -0.5 })).rejects.toThrow(/temperature must be a finite number >= 0/);
    await expect(generateAr(model, { classes: [1], grid: GRID, temperature: Number.POSITIVE_INFINITY })).rejects.toThrow(/temperature must be/);
    await expect(generateAr(model, { classes: [1], grid: 0 })).rejects.toThrow(/grid must be a positive integer/);
    expect(() => model.tokenEmbeddings(Int32Array.of(64))).toThrow(/token id 64 is outside 0\.\.63/);
    await expect(vq.decodeCodes(Int32Array.of(1, 2, 3), 1, 2)).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    model.dispose();
  });

  it('temperature 0 divides by 1e-5 as the official sampler: the greedy ids here', async () => {
    const model = await loadGpt();
    const opts = { classes: [2, 5], grid: GRID, cfg: 2, topK: 0, seed: 4 };
    const cold = await generateAr(model, { ...opts, temperature: 0 });
    const greedy = await generateAr(model, { ...opts, topK: 1 });
    expect(cold.tokens).toEqual(greedy.tokens);
    model.dispose();
  });

  it('one seed gives one result; image b of a batch equals seed + b alone', async () => {
    const model = await loadGpt();
    const opts = { grid: GRID, cfg: 3, topK: 0, temperature: 1.5 };
    const a = await generateAr(model, { ...opts, classes: [4, 4], seed: 11 });
    const b = await generateAr(model, { ...opts, classes: [4, 4], seed: 11 });
    expect(b.tokens).toEqual(a.tokens);
    expect(a.tokens[1]).not.toEqual(a.tokens[0]);
    expect((await generateAr(model, { ...opts, classes: [4], seed: 12 })).tokens[0]).toEqual(a.tokens[1]);
    model.dispose();
  });
});
