// Reading images through sharp (PNG, JPEG, WebP, ...) as float RGB.
import sharp, { type OutputInfo } from 'sharp';

import { TesseraError } from '../errors.js';

export interface RgbImage {
  width: number;
  height: number;
  /** [H, W, 3] row-major, sRGB byte values / 255 (no gamma change), in [0, 1]. */
  rgb: Float32Array;
}

/** Reads an image file; alpha is dropped (composited over nothing), grey becomes RGB. */
export async function readImage(path: string): Promise<RgbImage> {
  let data: Buffer, info: OutputInfo;
  try {
    ({ data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot read image ${path}: ${(e as Error).message}`);
  }
  const { width, height, channels } = info;
  const rgb = new Float32Array(width * height * 3);
  for (let p = 0; p < width * height; p++)
    for (let c = 0; c < 3; c++) rgb[3 * p + c] = data[p * channels + Math.min(c, channels - 1)]! / 255;
  return { width, height, rgb };
}
