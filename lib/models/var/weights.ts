// Float32 tensors from checkpoint entries: float32 data stays a zero-copy view
// of the mapped file; float16/bfloat16/float64 files are widened once.
import { decodeHalf } from '../../dtype.js';
import { TesseraError } from '../../errors.js';
import { native, type NativePackedWeight, type NativeTensor } from '../../native.js';
import { PackedWeight } from '../../ops/gemm.js';
import type { StoredTensor } from '../../io/stored-tensor.js';
import { Tensor } from '../../tensor.js';
import type { Tensors } from './config.js';

export class WeightReader {
  /** Widened (non-float32) tensors, converted once. */
  readonly #widened = new Map<string, Float32Array>();

  constructor(readonly tensors: Tensors, readonly file: string) {}

  has(key: string): boolean { return this.tensors.has(key); }

  /** `key` as a float32 CPU tensor (its stored shape, or `shape` if given: same element count). */
  f32(key: string, shape?: readonly number[]): Tensor {
    const t = this.tensors.get(key);
    if (!t) throw new TesseraError('ERR_FORMAT', `${this.file}: ${key} is missing`);
    let data = this.#widened.get(key);
    if (!data) {
      data = toFloat32(t, this.file);
      if (t.dtype !== 'float32') this.#widened.set(key, data);
    }
    return Tensor.from(data, shape ?? t.shape);
  }

  /** The raw float32 values of `key`. */
  values(key: string): Float32Array {
    return this.f32(key).data as Float32Array;
  }
}

function toFloat32(t: StoredTensor, file: string): Float32Array {
  const a = t.load();
  switch (a.dtype) {
    case 'float32': return a.data as Float32Array;
    case 'float16': case 'bfloat16': return decodeHalf(a.data as Uint16Array, a.dtype);
    case 'float64': return Float32Array.from(a.data as Float64Array);
    default: throw new TesseraError('ERR_FORMAT', `${file}: ${t.name} is ${a.dtype}, expected a float tensor`);
  }
}

/**
 * packWeight() for a weight [N, K] that is from now on used only through the
 * packed copy: the native side then drops the source's file-backed pages from
 * this process (releaseSource: only pages that are present and file-backed, so
 * a weight that was copied or widened onto the heap is left alone), so the
 * packed copy replaces the mapped weight in memory instead of doubling it.
 */
export async function packFromMapping(t: Tensor, compute: 'float32' | 'bfloat16'): Promise<PackedWeight> {
  const [n, k] = t.shape as [number, number];
  const pack = native().packWeight as (w: NativeTensor, c: string, releaseSource: boolean) => Promise<NativePackedWeight>;
  const handle = await t.track(() => pack(t.native(), compute, true));
  return new PackedWeight(handle, n, k, compute, t.device);
}
