// Images to and from files through sharp (PNG, JPEG, WebP, ...).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import sharp from 'sharp';

import { TesseraError } from '../errors.js';
import type { Tensor } from '../tensor.js';

/**
 * Image b of x [B, 3, H, W] (values in [0, 1]) as interleaved RGB bytes,
 * quantised as VAR's evaluation scripts do: mul(255) + 0.5, clamp, truncate.
 */
export function toRgb8(x: Tensor, b: number): Buffer {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4 || C !== 3) throw new TesseraError('ERR_SHAPE', `image tensor must be [B, 3, H, W], got [${x.shape.join(', ')}]`);
  if (b < 0 || b >= B) throw new TesseraError('ERR_INVALID_ARGUMENT', `image ${b} of ${B}`);
  const d = x.data as Float32Array, n = H * W, out = Buffer.alloc(3 * n);
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < n; p++) out[p * 3 + c] = Math.min(255, Math.max(0, Math.floor(d[(b * 3 + c) * n + p]! * 255 + 0.5)));
  return out;
}

/** Writes image b of x [B, 3, H, W] in [0, 1]; the format follows the file extension. */
export async function writeImage(path: string, x: Tensor, b = 0): Promise<void> {
  const [, , H, W] = x.shape as [number, number, number, number];
  mkdirSync(dirname(path), { recursive: true });
  try {
    await sharp(toRgb8(x, b), { raw: { width: W, height: H, channels: 3 } }).toFile(path);
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(e as Error).message}`);
  }
}
