// A tensor stored in a checkpoint file, loaded only when asked for.
import { TesseraError } from '../errors.js';

export type StoredDtype = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const STORED_DTYPE_BYTES: Record<StoredDtype, number> = {
  float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

export type StoredArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** Host data of a loaded tensor: float16/bfloat16 as raw Uint16Array bits, bool as Uint8Array. */
export interface HostArray {
  dtype: StoredDtype;
  shape: number[];
  data: StoredArray;
}

export interface StoredTensor {
  readonly name: string;
  readonly dtype: StoredDtype;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Reads the tensor's bytes as a dense row-major array. */
  load(): HostArray;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function arrayFor(dtype: StoredDtype, bytes: Uint8Array): StoredArray {
  // `bytes` must be aligned to the element size.
  const b = bytes.buffer as ArrayBuffer;
  const o = bytes.byteOffset;
  const n = bytes.byteLength / STORED_DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'float64': return new Float64Array(b, o, n);
    case 'float32': return new Float32Array(b, o, n);
    case 'float16': case 'bfloat16': case 'int16': return dtype === 'int16' ? new Int16Array(b, o, n) : new Uint16Array(b, o, n);
    case 'int64': return new BigInt64Array(b, o, n);
    case 'int32': return new Int32Array(b, o, n);
    case 'int8': return new Int8Array(b, o, n);
    case 'uint8': case 'bool': return new Uint8Array(b, o, n);
  }
}

/**
 * The bytes [at, at + length) of `src` as an array of `dtype`: a view into the
 * source when it is in memory and the offset suits the element size (zero
 * copy), otherwise an aligned copy.
 */
export function loadArray(src: { view?(o: number, n: number): Uint8Array; readInto(o: number, d: Uint8Array): void }, at: number, length: number, dtype: StoredDtype): StoredArray {
  if (src.view) {
    const v = src.view(at, length);
    if (v.byteOffset % STORED_DTYPE_BYTES[dtype] === 0) return arrayFor(dtype, v);
  }
  const out = new Uint8Array(length);
  src.readInto(at, out);
  return arrayFor(dtype, out);
}

export function checkShape(what: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TesseraError('ERR_FORMAT', `${what}: shape is not a list`);
  const out: number[] = [];
  for (const s of shape) {
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) throw new TesseraError('ERR_FORMAT', `${what}: bad dimension ${String(s)}`);
    out.push(s);
  }
  if (numelOf(out) > Number.MAX_SAFE_INTEGER / 8) throw new TesseraError('ERR_FORMAT', `${what}: shape ${JSON.stringify(out)} is too large`);
  return out;
}
