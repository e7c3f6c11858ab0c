// Green-list watermarking on the tiny random-weight fixture models (gpt.pt,
// vq.pt: NOT a trained model, so the pixel round trip decode → encode is far
// from the identity; the embedded trained model comes later). Grid 16 (256
// tokens, 32x32 pixels with the fixture's downsampling 2), top-k 0, cfg 1.5,
// δ 2, γ 0.25, pool 16, α 1e-3.
// Specified here:
//  - the construction (green list size ⌊γV⌋, determinism, the bias);
//  - the z-test threshold (Bonferroni over the pool);
//  - on the sampled tokens themselves, every watermarked image is detected
//    and no unwatermarked one is (the sampler really applies the bias; the
//    textbook z, which ignores repeated tokens, is printed for comparison);
//  - measured and printed, with loose bounds: false positives on
//    unwatermarked images and detection after PNG, JPEG re-encoding (sharp,
//    quality 90 and 75) and resizing (to half size and back, bicubic), each
//    through the real re-tokenisation.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

import { generateAr } from '../lib/models/llamagen/generate.js';
import { toUnitRange } from '../lib/models/llamagen/vq.js';
import { toRgb8 } from '../lib/io/image.js';
import { greenList, poolIndex, resolveWatermark, watermarkBias } from '../lib/watermark/greenlist.js';
import { detectImage } from '../lib/watermark/detect.js';
import { detectTokens, normalTail, zThreshold } from '../lib/watermark/ztest.js';
import { loadGpt, loadVq } from './llamagen-fixtures.js';

const WM = resolveWatermark({ key: 'tessera-test-key', gamma: 0.25, delta: 2, pool: 16 });
const GRID = 16, IMAGES = 16;
/** Lower bounds on token-level detection (measured: see the printed rates). */
const TOKEN_DETECTION: Record<number, number> = { 2: 0.25, 4: 0.75 };
const SAMPLING = { grid: GRID, cfg: 1.5, topK: 0, temperature: 1 };

describe('watermark construction and z-test', () => {
  it('green lists: ⌊γV⌋ ids, deterministic per (key, list), different across lists and keys; bias δ on green only', () => {
    const a = greenList(WM, 3, 64), b = greenList(WM, 3, 64), c = greenList(WM, 4, 64);
    const other = greenList(resolveWatermark({ key: 'another key' }), 3, 64);
    expect(a.reduce((s, x) => s + x, 0)).toBe(16);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(other).not.toEqual(a);
    const idx = poolIndex(WM, 7);
    expect(idx).toBeGreaterThanOrEqual(0);
    expect(idx).toBeLessThan(16);
    const [bias] = watermarkBias(WM, 64, 7, 1);
    expect(Array.from(bias!)).toEqual(Array.from(greenList(WM, idx, 64), (g) => g * 2));
  });

  it('threshold: 16 · (1 − Φ(z*)) = 1e-3, z* ≈ 3.836; textbook z, and the exact null moments given the token counts', () => {
    expect(normalTail(1.959964)).toBeCloseTo(0.025, 6);
    const t = zThreshold(1e-3, 16);
    expect(t).toBeCloseTo(3.836, 3);
    expect(16 * normalTail(t)).toBeCloseTo(1e-3, 8);
    const green = greenList(WM, 0, 64);
    const ids = Array.from({ length: 100 }, (_, i) => (i < 40 ? green.indexOf(1) : green.indexOf(0)));
    const d = detectTokens(ids, 64, { ...WM, pool: 1 });
    expect(d.green).toBe(40);
    expect(d.zIndependent).toBeCloseTo((40 - 25) / Math.sqrt(100 * 0.25 * 0.75), 10);
    // Two ids repeated 40 and 60 times: G is 0, 40, 60 or 100 by the list, Var = m(V−m)/(V(V−1))·Σ(h − T/V)².
    const spread = 40 ** 2 + 60 ** 2 - 100 ** 2 / 64;
    expect(d.z).toBeCloseTo((40 - 25) / Math.sqrt(((16 * 48) / (64 * 63)) * spread), 10);
    // Distinct tokens, T ≪ V: the exact null is the textbook one up to the finite-population factor.
    const distinct = Array.from({ length: 4096 }, (_, i) => i);
    const big = detectTokens(distinct.slice(0, 64), 4096, { ...WM, pool: 1 });
    expect(big.z / big.zIndependent).toBeCloseTo(Math.sqrt(4095 / 4032), 6);
  });
});

describe('watermark on the tiny random fixture model (measured)', () => {
  it.each([2, 4])('δ %i: detection on tokens, and through the pixels after PNG, JPEG and resizing', async (delta) => {
    const WM = resolveWatermark({ key: 'tessera-test-key', gamma: 0.25, delta, pool: 16 });
    const [model, vq] = [await loadGpt(), loadVq()];
    const V = model.config.vocabulary;
    const rate = (xs: boolean[]): number => xs.filter(Boolean).length / xs.length;
    const attacks: Record<string, (png: Buffer) => Promise<Buffer>> = {
      png: async (png) => png,
      jpeg90: (png) => sharp(png).jpeg({ quality: 90 }).toBuffer(),
      jpeg75: (png) => sharp(png).jpeg({ quality: 75 }).toBuffer(),
      resize: async (png) => sharp(await sharp(png).resize(16, 16, { kernel: 'cubic' }).png().toBuffer()).resize(32, 32, { kernel: 'cubic' }).png().toBuffer(),
    };
    const found: Record<string, { wm: boolean[]; clean: boolean[]; z: number[] }> = {};
    const tokenHits = { wm: [] as boolean[], clean: [] as boolean[], naive: [] as boolean[] };
    let agree = 0;
    for (let i = 0; i < IMAGES; i++) {
      for (const marked of [true, false]) {
        const seed = 100 + i;
        const out = await generateAr(model, {
          ...SAMPLING, classes: [i % 10], seed, logitBias: marked ? watermarkBias(WM, V, seed, 1) : undefined,
        });
        const tokens = out.tokens[0]!;
        const dt = detectTokens(tokens, V, WM);
        (marked ? tokenHits.wm : tokenHits.clean).push(dt.watermarked);
        if (!marked) tokenHits.naive.push(dt.zIndependent > dt.threshold);
        const img = toUnitRange(await vq.decodeCodes(Int32Array.from(tokens), 1, GRID));
        const png = await sharp(toRgb8(img, 0), { raw: { width: 2 * GRID, height: 2 * GRID, channels: 3 } }).png().toBuffer();
        img.dispose();
        for (const [name, attack] of Object.entries(attacks)) {
          const d = await detectImage(vq, await attack(png), { watermark: WM });
          const f = (found[name] ??= { wm: [], clean: [], z: [] });
          (marked ? f.wm : f.clean).push(d.watermarked);
          if (marked) f.z.push(d.z);
          if (name === 'png' && marked) agree += d.ids.reduce((s, t, j) => s + (t === tokens[j] ? 1 : 0), 0) / tokens.length;
        }
      }
    }
    console.log(`δ ${delta} token level: detection ${rate(tokenHits.wm)}, false positives ${rate(tokenHits.clean)} (textbook z: ${rate(tokenHits.naive)}; ${IMAGES} images each)`);
    console.log(`PNG round trip token agreement (random VQ): ${(agree / IMAGES).toFixed(3)}`);
    for (const [name, f] of Object.entries(found))
      console.log(`${name}: detection ${rate(f.wm)}, false positives ${rate(f.clean)}, mean z ${(f.z.reduce((a, b) => a + b, 0) / f.z.length).toFixed(2)}`);
    expect(rate(tokenHits.wm)).toBeGreaterThanOrEqual(TOKEN_DETECTION[delta]!);
    expect(rate(tokenHits.clean)).toBe(0);
    // The pooled test's false-alarm rate is 1e-3 per image in theory; the bound here is loose because
    // re-tokenised random-VQ tokens are not independent draws (repeated codes inflate the variance).
    for (const f of Object.values(found)) expect(rate(f.clean)).toBeLessThanOrEqual(0.25);
    model.dispose();
  }, 300_000);
});
