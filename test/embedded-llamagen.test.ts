// The embedded tiny LlamaGen (models/tiny-llamagen, issue 8 part 3): it loads
// from both shipped formats with the trained architecture, a fixed-seed batch
// is recognised by the shapes classifier, speculative Jacobi decoding with
// top-k 1 returns exactly the greedy tokens on this trained model, and
// `tessera generate --tokenizer --weights` runs it. The full measurements
// (500 samples; ar/sjd/lantern passes, acceptance and accuracy over 200
// images; watermark rates) are scripts/train/eval_samples.mjs and
// scripts/train/eval_decoding.mjs; this is the CI-sized version.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { openCheckpoint } from '../lib/io/checkpoint.js';
import { gptConfig, vqConfig } from '../lib/models/llamagen/config.js';
import {
  classify, decodeLlamaGenTokens, embeddedLlamaGen, generateLlamaGenImages, generateLlamaGenTokens, loadEmbeddedLlamaGen,
} from '../lib/models/embedded.js';

const model = embeddedLlamaGen();
// eval_samples.mjs measures 70.6% on 500 samples after the second GPT stage
// (56.6% after the first; models/tiny-llamagen/README.md, still under-trained).
// This batch (seed 2000) gives 20 of 30 (seeds 2100-2700: 18-24); the bound
// leaves 2 for sampling flips on another ISA and is far above chance (3 of
// 30): it catches a model, tokenizer or sampler that stops producing the
// asked-for shapes.
const MIN_RIGHT_OF_30 = 18;
const work = mkdtempSync(join(tmpdir(), 'tessera-embedded-llamagen-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('embedded tiny LlamaGen', () => {
  it('loads from both shipped formats with the trained architecture', () => {
    expect(model.classes).toHaveLength(10);
    expect(model.imageSize).toBe(32);
    expect(model.grid).toBe(8);
    for (const ext of ['pt', 'safetensors']) {
      const vq = openCheckpoint(join(model.dir, `vq.${ext}`));
      const gpt = openCheckpoint(join(model.dir, `gpt.${ext}`));
      try {
        const v = vqConfig(vq.tensors, 'vq');
        expect(v.downsample).toBe(4);  // 32 px -> 8x8 tokens
        expect(v.vocabulary).toBe(512);
        expect(v.codeDim).toBe(8);
        const g = gptConfig(gpt.tensors, 'gpt');
        expect(g.classes).toBe(10);
        expect(g.vocabulary).toBe(512);
        expect(g.headDim).toBe(64);
      } finally {
        vq.close();
        gpt.close();
      }
    }
  });

  it('a fixed-seed batch of every class is recognised by the classifier, deterministically', async () => {
    const pipe = await loadEmbeddedLlamaGen(model);
    try {
      const classes = Array.from({ length: 30 }, (_, i) => i % 10);
      const a = await generateLlamaGenImages(model, pipe, { classes, seed: 2000 });
      const b = await generateLlamaGenTokens(model, pipe, { classes, seed: 2000 });
      expect(a.images.shape).toEqual([30, 3, 32, 32]);
      expect(b.tokens).toEqual(a.tokens);
      expect(a.stats.forwardPasses).toBe(64);
      const predicted = await classify(model.classifier, a.images);
      const right = predicted.filter((p, i) => p === classes[i]).length;
      expect(right).toBeGreaterThanOrEqual(MIN_RIGHT_OF_30);
      a.images.dispose();
    } finally {
      pipe.close();
    }
  });

  it('SJD with top-k 1 returns the greedy tokens, in fewer passes', async () => {
    const pipe = await loadEmbeddedLlamaGen(model);
    try {
      for (const c of [0, 3, 5, 8]) {
        const greedy = await generateLlamaGenTokens(model, pipe, { classes: [c], seed: 7, topK: 1 });
        const sjd = await generateLlamaGenTokens(model, pipe, { classes: [c], seed: 7, topK: 1, decode: 'sjd' });
        expect(sjd.tokens).toEqual(greedy.tokens);
        expect(greedy.stats.forwardPasses).toBe(64);
        expect(sjd.stats.forwardPasses).toBeLessThan(64);
      }
      // The greedy image is one of the class's shapes too.
      const g = await generateLlamaGenTokens(model, pipe, { classes: [1], seed: 0, topK: 1 });
      const img = await decodeLlamaGenTokens(model, pipe, g.tokens);
      expect(await classify(model.classifier, img)).toEqual([1]);
      img.dispose();
    } finally {
      pipe.close();
    }
  });

  it('`tessera generate --tokenizer --weights` runs it and prints the counters', async () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
    const out = join(work, 'x.png'), tokens = join(work, 'x.json');
    const r = spawnSync(process.execPath, [cli, 'generate', '--tokenizer', model.tokenizer, '--weights', model.weights, '--class', '3',
      '--image-size', '32', '--decode', 'sjd', '--seed', '1', '--out', out, '--tokens', tokens], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/forward_passes=\d+ tokens=64 /);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([32, 32]);
    const ids = JSON.parse(readFileSync(tokens, 'utf8')) as number[][];
    expect(ids).toHaveLength(1);
    expect(ids[0]).toHaveLength(64);
  });
});
