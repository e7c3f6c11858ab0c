// The embedded tiny VAR (models/tiny-var, issue 8): it loads, generation with
// a fixed seed is deterministic, the classifier trained on the real shapes
// (scripts/train/train_classifier.py, run here through lib/ops) recognises
// the class asked for, and `tessera generate` with no model flags writes the
// labelled grid. The full measurement (1,000 samples) is
// scripts/train/eval_samples.mjs; this is the CI-sized version of it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { classify, embeddedModel, generateEmbedded, resolveClass } from '../lib/models/embedded.js';
import { loadVar } from '../lib/models/var/load.js';

const model = embeddedModel();
// eval_samples.mjs measures 90.8% on 1,000 samples of the 64x64 model
// (models/tiny-var/README.md; hexagons are still often drawn as circles); this
// seed gives 27 of 30 (two hexagons read as circles, one vertical-bars sample
// as a star). The seed is fixed, so the count is exact; the bound catches a
// model or sampler that stops producing the asked-for shapes.
const MIN_RIGHT_OF_30 = 27;
const work = mkdtempSync(join(tmpdir(), 'tessera-embedded-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('embedded tiny VAR', () => {
  it('loads from both shipped formats with the trained architecture', async () => {
    expect(model.classes).toHaveLength(10);
    for (const ext of ['pth', 'safetensors']) {
      const pipe = await loadVar(join(model.dir, `vae.${ext}`), join(model.dir, `var.${ext}`));
      expect(pipe.model.config.schedule).toEqual([1, 2, 3, 4, 6, 8]);
      // 64x64 images: 8x8 latents, three downsamples (the 32x32 VQVAE grown by a level).
      expect(pipe.vae.config.downsample * 8).toBe(model.imageSize);
      expect(pipe.model.config.classes).toBe(10);
      pipe.close();
    }
  });

  it('takes --class as an id or a name', () => {
    expect(resolveClass('3', model.classes)).toBe(3);
    expect(resolveClass('Star', model.classes)).toBe(model.classes.indexOf('star'));
    expect(resolveClass('horizontal-bars', model.classes)).toBe(model.classes.indexOf('horizontal bars'));
    expect(() => resolveClass('banana', model.classes)).toThrow(/not one of/);
    expect(() => resolveClass('10', model.classes)).toThrow(/not one of/);
  });

  it('samples of every class are recognised by the classifier, deterministically', async () => {
    const run = { classes: model.classes.map((_, c) => c), perRow: 3, seed: 1000 };
    const a = await generateEmbedded(model, run);
    const b = await generateEmbedded(model, run);
    expect(a.shape).toEqual([30, 3, model.imageSize, model.imageSize]);
    // Same seed, same pixels: sampling draws from seed + image index only.
    expect(Buffer.from((a.data as Float32Array).buffer).equals(Buffer.from((b.data as Float32Array).buffer))).toBe(true);
    const predicted = await classify(model.classifier, a);
    const right = predicted.filter((p, i) => p === Math.floor(i / run.perRow)).length;
    expect(right).toBeGreaterThanOrEqual(MIN_RIGHT_OF_30);
    a.dispose();
    b.dispose();
  });

  it('`tessera generate` with no model flags writes one labelled row per class', async () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
    const out = join(work, 'grid.png');
    const r = spawnSync(process.execPath, [cli, 'generate', '--batch', '4', '--seed', '7', '--out', out], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const meta = await sharp(out).metadata();
    // Rows of 128-px cells (64 px at 2x) with 4-px gaps; the label column is
    // the longest name ("horizontal bars", 15 glyphs of 12 px) plus margins.
    expect(model.imageSize).toBe(64);
    expect(meta.height).toBe(10 * (128 + 4) + 4);
    expect(meta.width).toBe(15 * 12 + 8 + 4 * (128 + 4));
    const one = join(work, 'star.png');
    const s = spawnSync(process.execPath, [cli, 'generate', '--class', 'star', '--batch', '2', '--out', one], { encoding: 'utf8' });
    expect(s.status).toBe(0);
    expect((await sharp(one).metadata()).height).toBe(128 + 8);
  });
});
