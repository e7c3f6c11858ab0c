// Float32 tensors from checkpoint entries: float32 data stays a zero-copy view
// of the mapped file; float16/bfloat16/float64 files are widened once.
import { decodeHalf } from '../../dtype.js';
import { TesseraError } from '../../errors.js';
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
