// Zero-shot editing and more_smooth against the independent float64 PyTorch
// reference (scripts/reference/var_reference.py: generate_greedy with keep
// masks or smooth=(top_k, seed), edit_mask, scale_masks, philox_uniform;
// fixtures from make_var_fixtures.py). Greedy edits must give identical token
// ids (the generator only accepts weights whose every choice has a margin
// > 1e-3, 100x the float32 error) and images within 1e-4 relative.
import { describe, expect, it } from 'vitest';

import { TesseraError } from '../lib/errors.js';
import { edit, editMask, roundHalfEven, scaleMasks, type Box } from '../lib/models/var/edit.js';
import { generate } from '../lib/models/var/generate.js';
import { philoxUniform } from '../lib/ops/sampling.js';
import { VarTransformer } from '../lib/models/var/transformer.js';
import { Vqvae } from '../lib/models/var/vqvae.js';
import { Tensor } from '../lib/tensor.js';
import { fixtureMeta, maxRelError, openFixture, ref, SCHEDULE, TOKENS } from './var-fixtures.js';

const meta = fixtureMeta();
const EDITS = ['inpaint', 'outpaint', 'class'] as const;

async function models(): Promise<{ vae: Vqvae; model: VarTransformer }> {
  return {
    vae: Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth'),
    model: await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth'),
  };
}

/** The fixture's 8-bit RGB image [H, W, 3] as [1, 3, H, W] in [0, 1] (what a PNG reader gives). */
function sourceImage(): Tensor {
  const u8 = ref('edit_image_u8').data, H = 12, W = 12;
  const x = new Float32Array(3 * H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) x[c * H * W + p] = u8[p * 3 + c]! / 255;
  return Tensor.from(x, [1, 3, H, W]);
}

describe('edit masks (the demo\'s get_edit_mask and replace_embedding)', () => {
  it('rounds box fractions like Python (half to even)', () => {
    expect([0.5, 1.5, 2.5, 4.5, 4.4, 4.6, 3].map(roundHalfEven)).toEqual([0, 2, 2, 4, 4, 5, 3]);
  });

  it.each(EDITS)('%s: per-scale keep masks equal the reference (bilinear, > 0.5, all ones where pn² <= 3)', async (name) => {
    const { mode } = JSON.parse(meta[`edit_${name}`]!) as { mode: 'inpaint' | 'outpaint' };
    const box = Array.from(ref(`edit_${name}_box`).data) as unknown as Box;
    const masks = await scaleMasks(editMask(box, 12, 12, 6, mode), 6, SCHEDULE);
    expect(masks.flatMap((m) => Array.from(m))).toEqual(Array.from(ref(`edit_${name}_masks`).data));
  });
});

describe('zero-shot editing vs the reference (greedy, top-k 1)', () => {
  it.each(EDITS)('%s: identical tokens (source tokens where kept), image within 1e-4', async (name) => {
    const { vae, model } = await models();
    const m = JSON.parse(meta[`edit_${name}`]!) as { mode: 'inpaint' | 'outpaint'; class: number; cfg: number };
    const box = Array.from(ref(`edit_${name}_box`).data) as unknown as Box;
    const out = await edit(vae, model, { image: sourceImage(), box, mode: m.mode, classes: [m.class], cfg: m.cfg, topK: 1, topP: 0 });
    expect(out.tokens[0]!.flat()).toEqual(Array.from(ref(`edit_${name}_ids`).data));
    const keep = ref(`edit_${name}_masks`).data, src = ref('edit_src_ids').data;
    out.tokens[0]!.flat().forEach((id, t) => { if (keep[t]) expect(id).toBe(src[t]); });
    const img = ref(`edit_${name}_image`).data.map((v) => (v + 1) / 2);
    expect(maxRelError(out.images.data as Float32Array, img)).toBeLessThan(1e-4);
    expect(out.tokens[0]!.flat()).toHaveLength(TOKENS);
    model.dispose();
  });
});

describe('more_smooth (Gumbel-softmax codebook mix over the kept entries)', () => {
  it('Philox draws equal the reference\'s independent Philox4x32-10', () => {
    const c = JSON.parse(meta.philox_check!) as { seed: number; step: number; rows: number[]; u: number[] };
    c.rows.forEach((row, i) => expect(philoxUniform(c.seed, row, c.step)).toBe(c.u[i]));
  });

  // The soft mix sharpens logits by (1+ratio)/τ (up to 148x at the last
  // scale), so float32 logit error (~1e-6 relative) grows in the latent: the
  // measured image error is 1.5e-5; 1e-4 leaves a margin and still catches a
  // wrong τ, gain, kept set or noise draw (each moves the image by > 1e-2).
  it('top-k 8, seed 3: image within 1e-4 of the reference', async () => {
    const { vae, model } = await models();
    const s = JSON.parse(meta.smooth!) as { labels: number[]; cfg: number; top_k: number; seed: number };
    const out = await generate(vae, model, { classes: s.labels, cfg: s.cfg, topK: s.top_k, topP: 0, seed: s.seed, moreSmooth: true });
    const img = ref('smooth_image').data.map((v) => (v + 1) / 2);
    expect(maxRelError(out.images.data as Float32Array, img)).toBeLessThan(1e-4);
    const again = await generate(vae, model, { classes: s.labels, cfg: s.cfg, topK: s.top_k, topP: 0, seed: s.seed, moreSmooth: true });
    expect(Array.from(again.images.data)).toEqual(Array.from(out.images.data));
    model.dispose();
  });
});

describe('edit refuses bad input with a TesseraError and a code', () => {
  const cases: [string, (img: Tensor) => Record<string, unknown>, string, RegExp][] = [
    ['box outside the image', (image) => ({ image, box: [0, 0, 13, 6] }), 'ERR_INVALID_ARGUMENT', /box 0,0,13,6 must lie inside the 12x12 image/],
    ['empty box', (image) => ({ image, box: [5, 5, 5, 8] }), 'ERR_INVALID_ARGUMENT', /x0 < x1/],
    ['box covering no token', (image) => ({ image, box: [4, 4, 4.5, 4.5] }), 'ERR_INVALID_ARGUMENT', /covers no token/],
    ['wrong image size', () => ({ image: Tensor.zeros([1, 3, 16, 16]), box: [0, 0, 4, 4] }), 'ERR_SHAPE', /image is 16x16; this model edits 12x12 images/],
    ['wrong channel count', () => ({ image: Tensor.zeros([1, 4, 12, 12]), box: [0, 0, 4, 4] }), 'ERR_SHAPE', /\[B, 3, H, W\]/],
    ['unknown class', (image) => ({ image, box: [0, 0, 4, 4], classes: [10] }), 'ERR_INVALID_ARGUMENT', /class 10 is not a class id/],
    ['bad mode', (image) => ({ image, box: [0, 0, 4, 4], mode: 'erase' }), 'ERR_INVALID_ARGUMENT', /mode must be inpaint or outpaint/],
    ['top-p out of range', (image) => ({ image, box: [0, 0, 4, 4], topP: 3 }), 'ERR_INVALID_ARGUMENT', /top-p must be in \[0, 1\]/],
  ];
  it.each(cases)('%s', async (_, make, code, msg) => {
    const { vae, model } = await models();
    const err = await edit(vae, model, make(sourceImage()) as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe(code);
    expect((err as TesseraError).message).toMatch(msg);
    model.dispose();
  });
});
