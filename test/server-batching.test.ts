// Batching identity: requests stepped together through one transformer call
// per scale (VAR) or per token (LlamaGen) give exactly what each gives alone
// with the same seed. Exact equality, no tolerance: the stacked ops are
// row-wise, so any difference would be a scheduling bug.
import { describe, expect, it } from 'vitest';

import { generate } from '../lib/models/var/generate.js';
import { VarTransformer } from '../lib/models/var/transformer.js';
import { Vqvae } from '../lib/models/var/vqvae.js';
import { runVarCohort } from '../lib/server/var-cohort.js';
import { openFixture } from './var-fixtures.js';

const never = new AbortController().signal;
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('VAR cohort', () => {
  it('three requests with different classes, settings and counts equal their solo runs', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const reqs = [
      { classes: [3], cfg: 2, topK: 0, topP: 0, temperature: 2, seed: 5 },
      { classes: [1, 7], cfg: 1.5, topK: 50, topP: 0.9, seed: 9 },
      { classes: [-1], cfg: 0, topK: 0, topP: 0, temperature: 1.5, seed: 1, moreSmooth: true },
    ];
    const steps: number[] = [];
    const together = await runVarCohort(vae, model, reqs.map((options) => ({ options, signal: never })), (n) => steps.push(n));
    expect(steps).toEqual(new Array(model.config.schedule.length).fill(4));
    for (let i = 0; i < reqs.length; i++) {
      const alone = await generate(vae, model, reqs[i]!);
      const r = together[i]!;
      if (!r.ok) throw r.error;
      expect(r.value.tokens).toEqual(alone.tokens);
      expect(bytes(r.value.images.data as Float32Array)).toEqual(bytes(alone.images.data as Float32Array));
    }
    model.dispose();
  });

  it('a request cancelled mid-way is dropped at the next scale; the others still equal their solo runs', async () => {
    const vae = Vqvae.load(openFixture('vae.pth').tensors, 'vae.pth');
    const model = await VarTransformer.load(openFixture('var.pth').tensors, 'var.pth');
    const ac = new AbortController();
    const reqs = [{ classes: [2], seed: 3, topK: 0, topP: 0 }, { classes: [4, 4], seed: 8, topK: 0, topP: 0 }, { classes: [6], seed: 4, topK: 0, topP: 0 }];
    const steps: number[] = [];
    const res = await runVarCohort(vae, model, reqs.map((options, i) => ({
      options, signal: i === 1 ? ac.signal : never, onScale: i === 1 ? (si: number) => { if (si === 1) ac.abort(new Error('gone')); } : undefined,
    })), (n) => steps.push(n));
    expect(steps.slice(0, 3)).toEqual([4, 4, 2]);
    expect(res[1]).toMatchObject({ ok: false });
    for (const i of [0, 2]) {
      const alone = await generate(vae, model, reqs[i]!);
      const r = res[i]!;
      if (!r.ok) throw r.error;
      expect(r.value.tokens).toEqual(alone.tokens);
      expect(Array.from(r.value.images.data)).toEqual(Array.from(alone.images.data));
    }
    model.dispose();
  });
});
