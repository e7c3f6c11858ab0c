// Image bytes in and out of HTTP bodies (PNG out, any sharp format in). The
// quantisation is lib/io/image.ts's, so a served PNG is byte-identical to
// the one `tessera generate` writes.
import sharp from 'sharp';

import { TesseraError } from '../errors.js';
import { toRgb8 } from '../io/image.js';
import { Tensor } from '../tensor.js';

/** Image b of x [B, 3, H, W] in [0, 1] as PNG; `maxSide` shrinks it (previews). */
export async function pngOf(x: Tensor, b: number, maxSide?: number): Promise<Buffer> {
  const [, , H, W] = x.shape as [number, number, number, number];
  let img = sharp(toRgb8(x, b), { raw: { width: W, height: H, channels: 3 } });
  if (maxSide !== undefined && Math.max(W, H) > maxSide) img = img.resize({ width: maxSide, height: maxSide, fit: 'inside', kernel: 'nearest' });
  return img.png().toBuffer();
}

/** A rendered view rgb [H, W, 3] (linear, composited) as PNG, quantised like toRgb8. */
export function pngOfHwc(rgb: Float32Array, width: number, height: number): Promise<Buffer> {
  const bytes = Buffer.alloc(rgb.length);
  for (let i = 0; i < rgb.length; i++) bytes[i] = Math.min(255, Math.max(0, Math.floor(rgb[i]! * 255 + 0.5)));
  return sharp(bytes, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Encoded image bytes as [1, 3, H, W] in [0, 1] (byte / 255); alpha is refused, as `tessera edit` does. */
export async function decodeRgb(bytes: Buffer, expect?: { width: number; height: number; refuse(width: number, height: number): string }): Promise<Tensor> {
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    if (expect) {
      // The header first: a small compressed body can hold a huge image (8 MiB of PNG decodes
      // to gigabytes), so the size is checked before any pixel is decoded.
      const { width, height } = await sharp(bytes).metadata();
      if (width !== undefined && height !== undefined && (width !== expect.width || height !== expect.height))
        throw new TesseraError('ERR_SHAPE', expect.refuse(width, height));
    }
    raw = await sharp(bytes, expect ? { limitInputPixels: expect.width * expect.height } : {}).raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw new TesseraError('ERR_FORMAT', `image is not a readable PNG/JPEG/WebP: ${(e as Error).message}`);
  }
  const { width: W, height: H, channels } = raw.info;
  if (channels !== 3) throw new TesseraError('ERR_SHAPE', `image has ${channels} channels; edit needs RGB (3 channels, no alpha)`);
  const x = new Float32Array(3 * H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) x[c * H * W + p] = raw.data[p * 3 + c]! / 255;
  return Tensor.from(x, [1, 3, H, W]);
}
