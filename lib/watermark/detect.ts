// Watermark detection from pixels (spec section 6): the image is brought to a
// multiple of the tokenizer's downsampling (sharp, bicubic; any alpha
// dropped), mapped to [-1, 1], re-tokenised by the VQ encoder and quantiser,
// and the token grid goes through the pooled z-test. Re-tokenising does not
// return the generated tokens exactly (the decoder is not the encoder's
// inverse; spec caveat after Meta's WMAR), so detection power depends on the
// tokenizer's round trip: measure it before trusting a threshold.
import { TesseraError } from '../errors.js';
import { readImageTensor } from '../io/image-tensor.js';
import type { LlamaGenVq } from '../models/llamagen/vq.js';
import { resize } from '../ops/resize.js';
import type { Tensor } from '../tensor.js';
import type { ResolvedWatermark } from './greenlist.js';
import { detectTokens, DETECT_ALPHA, type Detection } from './ztest.js';

/** RGB pixels of a file or encoded buffer as [1, 3, H, W] in [-1, 1], resized (bicubic) to `size` or to the nearest multiple of `multiple`. */
export async function readForTokenizer(input: string | Buffer, multiple: number, size?: number): Promise<Tensor> {
  const { tensor, width, height } = await readImageTensor(input, { range: '-1,1' });
  const fit = (n: number): number => Math.max(multiple, Math.round(n / multiple) * multiple);
  const [W, H] = size !== undefined ? [size, size] : [fit(width), fit(height)];
  if (W % multiple !== 0 || H % multiple !== 0) {
    tensor.dispose();
    throw new TesseraError('ERR_INVALID_ARGUMENT', `image size ${W} must be a multiple of the tokenizer's downsampling ${multiple}`);
  }
  const x = tensor.reshape([1, 3, height, width]);
  if (W === width && H === height) return x;
  const out = await resize({ x, size: [H, W], mode: 'bicubic' });
  tensor.dispose();
  return out;
}

/** Re-tokenises an image (raster order) with the VQ encoder and quantiser. */
export async function retokenize(vq: LlamaGenVq, img: Tensor): Promise<Int32Array> {
  const z = await vq.encode(img);
  const ids = await vq.quantize(z);
  z.dispose();
  const out = Int32Array.from(ids.data as Int32Array);
  ids.dispose();
  return out;
}

export interface DetectImageOptions {
  watermark: ResolvedWatermark;
  /** Resize to size × size before tokenising (default: the nearest multiple of the downsampling). */
  imageSize?: number;
  alpha?: number;
}

export async function detectImage(vq: LlamaGenVq, input: string | Buffer, o: DetectImageOptions): Promise<Detection & { ids: Int32Array }> {
  const img = await readForTokenizer(input, vq.config.downsample, o.imageSize);
  const ids = await retokenize(vq, img);
  img.dispose();
  return { ...detectTokens(ids, vq.config.vocabulary, o.watermark, o.alpha ?? DETECT_ALPHA), ids };
}
