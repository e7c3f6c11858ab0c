// NAR next-neighbour decoding (spec section 5) against the independent
// float64 PyTorch reference (llamagen_reference.nar_forward / decode_nar;
// fixtures gpt_nar.pt and expected_nar.safetensors from
// scripts/reference/make_llamagen_nar_fixtures.py). Logits within 1e-4
// relative to the largest magnitude; greedy tokens identical (every greedy
// choice of the fixture has a margin > 2e-3).
import { describe, expect, it } from 'vitest';

import { generateNar } from '../lib/decoding/nar.js';
import { gptConfig } from '../lib/models/llamagen/config.js';
import { LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import { GRID, loadGpt, maxRelError, N, openFixture } from './llamagen-fixtures.js';
import { narTeacherForced } from './nar-teacher-forcing.js';

const LABELS = [3, 7];
const ROWS = [...LABELS, -1, -1];

function nar(name: string): { shape: readonly number[]; data: Float32Array | Int32Array } {
  const t = openFixture('expected_nar.safetensors').tensors.get(name);
  if (!t) throw new Error(`fixture ${name} is missing`);
  return { shape: t.shape, data: t.load().data as Float32Array | Int32Array };
}

async function loadNar(): Promise<LlamaGenGpt> {
  const c = openFixture('gpt_nar.pt');
  return LlamaGenGpt.load(c.tensors, 'gpt_nar.pt', { extras: c.extras });
}

describe('NAR checkpoints', () => {
  it('reads the vertical head: layers.{n_layer} is not a trunk layer', () => {
    const c = openFixture('gpt_nar.pt');
    expect(gptConfig(c.tensors, 'gpt_nar.pt', { extras: c.extras })).toMatchObject({ layers: 2, dim: 128, vocabulary: 64, verticalHead: true });
    const plain = openFixture('gpt.pt');
    expect(gptConfig(plain.tensors, 'gpt.pt', { extras: plain.extras }).verticalHead).toBeUndefined();
  });
});

describe('NAR diagonal decoding vs the reference', () => {
  it('both heads match the reference on every slot, fed one anti-diagonal per pass (logits within 1e-4)', async () => {
    const model = await loadNar();
    const ids = nar('nar_tf_ids').data;
    const { right, down, length } = await narTeacherForced(model, ROWS, ids, 2, GRID);
    expect(length).toBe(1 + N);
    expect(maxRelError(right, nar('nar_right').data)).toBeLessThan(1e-4);
    expect(maxRelError(down, nar('nar_down').data)).toBeLessThan(1e-4);
    model.dispose();
  });

  it('greedy decoding (top-k 1, CFG 2.0) gives the reference tokens in 2G - 1 passes', async () => {
    const model = await loadNar();
    const progress: number[] = [];
    const out = await generateNar(model, { classes: LABELS, grid: GRID, cfg: 2.0, topK: 1, onProgress: (d) => progress.push(d) });
    const want = nar('nar_greedy').data;
    expect(out.tokens).toEqual([Array.from(want.subarray(0, N)), Array.from(want.subarray(N))]);
    expect(out.stats.forwardPasses).toBe(2 * GRID - 1);
    expect(out.stats.tokens).toBe(N);
    expect(progress[progress.length - 1]).toBe(N);
    // A batch equals its images run one by one.
    const one = await generateNar(model, { classes: [LABELS[1]!], grid: GRID, cfg: 2.0, topK: 1 });
    expect(one.tokens[0]).toEqual(out.tokens[1]);
    model.dispose();
  });

  it('sampled decoding is seeded and stays in the vocabulary', async () => {
    const model = await loadNar();
    const a = await generateNar(model, { classes: [1], grid: GRID, seed: 5 });
    const b = await generateNar(model, { classes: [1], grid: GRID, seed: 5 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens[0]!.every((t) => t >= 0 && t < 64)).toBe(true);
    model.dispose();
  });

  it('refuses a checkpoint without the vertical head with ERR_INVALID_ARGUMENT', async () => {
    const model = await loadGpt();
    await expect(generateNar(model, { classes: [1], grid: GRID })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    model.dispose();
  });
});
