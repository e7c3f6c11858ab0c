// Images ↔ Tensors through sharp: layouts, ranges, formats and bad files.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { readImageTensor, writeImageTensor } from '../lib/io/image-tensor.js';
import { Tensor } from '../lib/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-img-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function gradient(W: number, H: number): Uint8Array {
  const b = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) {
    const p = (y * W + x) * 3;
    b[p] = (x * 255) / (W - 1); b[p + 1] = (y * 255) / (H - 1); b[p + 2] = ((x + y) * 255) / (W + H - 2);
  }
  return b;
}

describe('images', () => {
  it('PNG and WebP (lossless) round-trip bytes exactly in HWC uint8', async () => {
    const bytes = gradient(37, 23);
    for (const ext of ['png', 'webp']) {
      const path = join(dir, `g.${ext}`);
      await writeImageTensor(path, Tensor.from(bytes, [23, 37, 3], 'uint8'), ext === 'webp' ? { format: 'webp', quality: 100 } : {});
      const back = await readImageTensor(path, { layout: 'hwc-u8' });
      expect(back.tensor.shape).toEqual([23, 37, 3]);
      if (ext === 'png') expect(Array.from(back.tensor.data as Uint8Array)).toEqual(Array.from(bytes));
      else {
        // WebP at quality 100 is near-lossless, not exact: bound the error.
        const d = back.tensor.data as Uint8Array;
        let worst = 0;
        for (let i = 0; i < d.length; ++i) worst = Math.max(worst, Math.abs(d[i]! - bytes[i]!));
        expect(worst).toBeLessThanOrEqual(8);
      }
    }
  });

  it('CHW float in [0,1] and [-1,1] maps bytes exactly and back', async () => {
    const bytes = gradient(16, 9);
    const path = join(dir, 'f.png');
    await writeImageTensor(path, Tensor.from(bytes, [9, 16, 3], 'uint8'));
    const a = await readImageTensor(path, { layout: 'chw-f32' });
    const b = await readImageTensor(path, { layout: 'chw-f32', range: '-1,1' });
    expect(a.tensor.shape).toEqual([3, 9, 16]);
    const fa = a.tensor.data as Float32Array, fb = b.tensor.data as Float32Array;
    for (let c = 0; c < 3; ++c) for (let p = 0; p < 144; ++p) {
      expect(fa[c * 144 + p]).toBeCloseTo(bytes[p * 3 + c]! / 255, 6);
      expect(fb[c * 144 + p]).toBeCloseTo((bytes[p * 3 + c]! / 255) * 2 - 1, 6);
    }
    const out = join(dir, 'f2.png');
    await writeImageTensor(out, b.tensor, { range: '-1,1' });
    const again = await readImageTensor(out, { layout: 'hwc-u8' });
    expect(Array.from(again.tensor.data as Uint8Array)).toEqual(Array.from(bytes));
  });

  it('JPEG keeps the image within its quantisation', async () => {
    const bytes = gradient(64, 48);
    const path = join(dir, 'j.jpg');
    await writeImageTensor(path, Tensor.from(bytes, [48, 64, 3], 'uint8'), { quality: 95 });
    const back = await readImageTensor(path, { layout: 'hwc-u8' });
    const d = back.tensor.data as Uint8Array;
    let se = 0;
    for (let i = 0; i < d.length; ++i) se += (d[i]! - bytes[i]!) ** 2;
    const psnr = 10 * Math.log10((255 * 255) / (se / d.length));
    expect(psnr).toBeGreaterThan(30);
  });

  it('reports alpha and grey sources, and converts channels on request', async () => {
    const rgba = new Uint8Array(4 * 4 * 4).map((_, i) => (i * 37) % 256);
    const path = join(dir, 'a.png');
    await writeImageTensor(path, Tensor.from(rgba, [4, 4, 4], 'uint8'));
    const kept = await readImageTensor(path, { layout: 'hwc-u8', channels: 'keep' });
    expect(kept.channels).toBe(4);
    expect(Array.from(kept.tensor.data as Uint8Array)).toEqual(Array.from(rgba));
    const rgb = await readImageTensor(path, { layout: 'hwc-u8' });
    expect(rgb.channels).toBe(3);
    expect(rgb.sourceChannels).toBe(4);
  });

  it('bad files and tensors fail with codes', async () => {
    const junk = join(dir, 'junk.png');
    writeFileSync(junk, 'not an image');
    await expect(readImageTensor(junk)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
    await expect(readImageTensor(join(dir, 'missing.png'))).rejects.toMatchObject({ code: 'ERR_IO' });
    await expect(writeImageTensor(join(dir, 'x.png'), Tensor.from(new Float32Array(4), [2, 2]))).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(writeImageTensor(join(dir, 'x.png'), Tensor.from(new Int32Array(12), [2, 2, 3]))).rejects.toMatchObject({ code: 'ERR_DTYPE' });
  });
});
