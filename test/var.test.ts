// VAR against the independent float64 PyTorch reference
// (scripts/reference/var_reference.py; fixtures from make_var_fixtures.py).
// Tolerances: float32 end to end vs float64, relative to the largest
// magnitude, 1e-4 (the bar; measured errors are ~1e-6). Token ids must
// be identical: the fixture generator only accepts weights whose every VQ and
// greedy choice has a margin > 2e-3, far above float32 error.
import { describe, expect, it } from 'vitest';

import { generate } from '../lib/models/var/generate.js';
import { disposeConditioning, VarCache, VarTransformer } from '../lib/models/var/transformer.js';
import { Vqvae } from '../lib/models/var/vqvae.js';
import { begin, fixtureMeta, maxRelError, openFixture, ref, SCHEDULE, sliceTokens, TOKENS } from './var-fixtures.js';

const meta = fixtureMeta();
const open = openFixture;

describe.each([['var.pth', ''], ['var_shared.pth', 'shared_']])('VAR transformer %s vs the reference', (file, prefix) => {
  it('per-scale logits under teacher forcing (raw cond/uncond rows and CFG-guided) within 1e-4', async () => {
    const model = await VarTransformer.load(open(file).tensors, file);
    const labels = Array.from(ref(`${prefix}tf_labels`).data);
    const inputs = ref(`${prefix}tf_inputs`), raw = ref(`${prefix}tf_logits`), guided = ref(`${prefix}tf_guided`);
    const cfg = Number(meta[`${prefix}tf_cfg`]);
    const B = labels.length, V = model.config.vocabulary;
    const cond = await model.condition(labels);
    const cache = new VarCache(model.config, 2 * B);
    for (let si = 0; si < SCHEDULE.length; si++) {
      const n = SCHEDULE[si]! ** 2, at = begin(si);
      const x = si === 0 ? model.startTokens(cond) : await model.scaleInput(si, sliceTokens(inputs, at - 1, at - 1 + n));
      const logits = (await model.forwardScale(x, cond, cache)).data as Float32Array;
      const want = sliceTokens(raw, at, at + n).data as Float32Array;
      expect(maxRelError(logits, want), `scale ${si} raw`).toBeLessThan(1e-4);
      // (1+t)·cond − t·uncond with t = cfg·si/(SN−1) (spec section 3).
      const t = cfg * si / (SCHEDULE.length - 1);
      const g = logits.subarray(0, B * n * V).map((c, i) => (1 + t) * c - t * logits[B * n * V + i]!);
      expect(maxRelError(g, sliceTokens(guided, at, at + n).data), `scale ${si} guided`).toBeLessThan(1e-4);
    }
    expect(cache.length).toBe(TOKENS);
    cache.dispose();
    disposeConditioning(cond);
    model.dispose();
  });
});

describe.each([['var.pth', ''], ['var_shared.pth', 'shared_']])('VAR generation %s', (file, prefix) => {
  it('greedy (top-k 1) with the CFG ramp: identical token ids, image within 1e-4 of the reference', async () => {
    const vae = Vqvae.load(open('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(open(file).tensors, file);
    const labels = Array.from(ref(`${prefix}greedy_labels`).data);
    const out = await generate(vae, model, { classes: labels, cfg: Number(meta[`${prefix}greedy_cfg`]), topK: 1, topP: 0 });
    const want = ref(`${prefix}greedy_ids`);
    labels.forEach((_, b) => expect(out.tokens[b]!.flat(), `image ${b}`).toEqual(Array.from(want.data.subarray(b * TOKENS, (b + 1) * TOKENS))));
    const img = ref(`${prefix}greedy_image`).data.map((v) => (v + 1) / 2);  // the reference keeps [-1, 1]
    expect(maxRelError(out.images.data as Float32Array, img)).toBeLessThan(1e-4);
    model.dispose();
  });
});

describe('VAR sampling determinism', () => {
  it('one seed gives one result on every run; image b of a batch draws from seed + b', async () => {
    const vae = Vqvae.load(open('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(open('var.pth').tensors, 'var.pth');
    const opts = { cfg: 3, topK: 0, topP: 0, temperature: 2 };  // plain multinomial over a flattened distribution
    const a = await generate(vae, model, { ...opts, classes: [4, 4], seed: 11 });
    const b = await generate(vae, model, { ...opts, classes: [4, 4], seed: 11 });
    expect(b.tokens).toEqual(a.tokens);
    expect(Array.from(b.images.data)).toEqual(Array.from(a.images.data));
    expect(a.tokens[1]).not.toEqual(a.tokens[0]);
    const single = await generate(vae, model, { ...opts, classes: [4], seed: 12 });
    expect(single.tokens[0]).toEqual(a.tokens[1]);
    model.dispose();
  });

  it('refuses out-of-range classes and sampling settings with a named reason', async () => {
    const vae = Vqvae.load(open('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(open('var.pth').tensors, 'var.pth');
    await expect(generate(vae, model, { classes: [10] })).rejects.toThrow(/class 10 is not a class id of this model \(0\.\.9/);
    await expect(generate(vae, model, { classes: [1], cfg: -1 })).rejects.toThrow(/cfg must be/);
    await expect(generate(vae, model, { classes: [1], topK: 1.5 })).rejects.toThrow(/top-k must be/);
    await expect(generate(vae, model, { classes: [1], topP: 1.2 })).rejects.toThrow(/top-p must be/);
    model.dispose();
  });
});
