// Reading images as float RGB [H, W, 3] for the fitting code (a thin view on
// readImageTensor in image-tensor.ts).
import { readImageTensor } from './image-tensor.js';

export interface RgbImage {
  width: number;
  height: number;
  /** [H, W, 3] row-major, sRGB byte values / 255 (no gamma change), in [0, 1]. */
  rgb: Float32Array;
}

/** Reads an image file; alpha is dropped, grey becomes RGB. */
export async function readImage(path: string): Promise<RgbImage> {
  const { tensor, width, height } = await readImageTensor(path, { layout: 'hwc-u8', channels: 3 });
  const bytes = tensor.data as Uint8Array;
  const rgb = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; ++i) rgb[i] = bytes[i]! / 255;
  return { width, height, rgb };
}
