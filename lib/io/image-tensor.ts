// Images ↔ Tensors through sharp (PNG, JPEG, WebP, and what libvips reads).
//   'hwc-u8':  uint8 [H, W, C], the bytes as stored (sRGB, no gamma change)
//   'chw-f32': float32 [C, H, W], byte/255 mapped to [0, 1] or [-1, 1]
// Writing quantises floats as round(v·255) after mapping back to [0, 1] and
// clamping; the format follows the file extension (or `format`).
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, extname } from 'node:path';

import sharp, { type FormatEnum, type OutputInfo } from 'sharp';

import { TesseraError } from '../errors.js';
import { Tensor } from '../tensor.js';

export type ImageLayout = 'hwc-u8' | 'chw-f32';
export type ImageRange = '0,1' | '-1,1';

export interface ReadImageOptions {
  layout?: ImageLayout;       // default 'chw-f32'
  range?: ImageRange;         // float range, default '0,1'
  /** 3: RGB (alpha dropped, grey expanded); 4: RGBA; 'keep': as stored. Default 3. */
  channels?: 3 | 4 | 'keep';
}

export interface ImageTensor {
  tensor: Tensor;
  width: number;
  height: number;
  channels: number;
  /** Channels in the file before any conversion (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA). */
  sourceChannels: number;
}

export async function readImageTensor(input: string | Uint8Array, opts: ReadImageOptions = {}): Promise<ImageTensor> {
  const name = typeof input === 'string' ? input : '<buffer>';
  const want = opts.channels ?? 3;
  if (typeof input === 'string' && !existsSync(input)) throw new TesseraError('ERR_IO', `cannot read image ${input}: no such file`);
  let data: Buffer, info: OutputInfo, sourceChannels: number;
  try {
    const img = sharp(input, { failOn: 'error', limitInputPixels: 1 << 28 });
    sourceChannels = (await img.metadata()).channels ?? 0;
    let p = img.toColourspace(sourceChannels <= 2 && want === 'keep' ? 'b-w' : 'srgb');
    if (want === 3) p = p.removeAlpha();
    if (want === 4) p = p.ensureAlpha();
    ({ data, info } = await p.raw().toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new TesseraError('ERR_FORMAT', `cannot read image ${name}: ${(e as Error).message}`);
  }
  const { width: W, height: H, channels: C } = info;
  const layout = opts.layout ?? 'chw-f32';
  if (layout === 'hwc-u8') {
    return { tensor: Tensor.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(), [H, W, C], 'uint8'), width: W, height: H, channels: C, sourceChannels };
  }
  const signed = (opts.range ?? '0,1') === '-1,1';
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; ++c)
    for (let p = 0; p < H * W; ++p) {
      const v = data[p * C + c]! / 255;
      out[c * H * W + p] = signed ? v * 2 - 1 : v;
    }
  return { tensor: Tensor.from(out, [C, H, W]), width: W, height: H, channels: C, sourceChannels };
}

export interface WriteImageOptions {
  layout?: ImageLayout; // default: 'hwc-u8' for uint8 tensors, 'chw-f32' for float32
  range?: ImageRange;   // for float tensors, default '0,1'
  format?: 'png' | 'jpeg' | 'webp';
  quality?: number;     // JPEG/WebP quality 1..100
}

export async function writeImageTensor(path: string, t: Tensor, opts: WriteImageOptions = {}): Promise<void> {
  const layout = opts.layout ?? (t.dtype === 'uint8' ? 'hwc-u8' : 'chw-f32');
  if (t.shape.length !== 3) throw new TesseraError('ERR_SHAPE', `an image tensor has 3 dimensions, got [${t.shape.join(', ')}]`);
  let H: number, W: number, C: number, bytes: Uint8Array;
  if (layout === 'hwc-u8') {
    if (t.dtype !== 'uint8') throw new TesseraError('ERR_DTYPE', `'hwc-u8' images are uint8 tensors, got ${t.dtype}`);
    [H, W, C] = t.shape as [number, number, number];
    bytes = t.data as Uint8Array;
  } else {
    if (t.dtype !== 'float32') throw new TesseraError('ERR_DTYPE', `'chw-f32' images are float32 tensors, got ${t.dtype}`);
    [C, H, W] = t.shape as [number, number, number];
    const d = t.data as Float32Array, signed = (opts.range ?? '0,1') === '-1,1';
    bytes = new Uint8Array(C * H * W);
    for (let c = 0; c < C; ++c)
      for (let p = 0; p < H * W; ++p) {
        const v = signed ? (d[c * H * W + p]! + 1) / 2 : d[c * H * W + p]!;
        bytes[p * C + c] = Math.min(255, Math.max(0, Math.round(v * 255)));
      }
  }
  if (![1, 2, 3, 4].includes(C)) throw new TesseraError('ERR_SHAPE', `images have 1 to 4 channels, got ${C}`);
  mkdirSync(dirname(path), { recursive: true });
  try {
    let img = sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { raw: { width: W, height: H, channels: C as 1 | 2 | 3 | 4 } });
    const ext = extname(path).slice(1).toLowerCase();
    const format = opts.format ?? (ext === 'jpg' ? 'jpeg' : ext);
    if (opts.quality !== undefined || opts.format) img = img.toFormat(format as keyof FormatEnum, opts.quality !== undefined ? { quality: opts.quality } : {});
    await img.toFile(path);
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(e as Error).message}`);
  }
}
