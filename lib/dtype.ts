// Dtypes, their TypedArray carriers, and host conversions to the 16-bit
// float formats (round to nearest even, like the native dtype_convert.h).
import { fail } from './errors.js';

export type DType = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'uint8' | 'bool';
export type TypedArrayOf<T extends DType> =
  T extends 'float32' ? Float32Array :
  T extends 'float16' | 'bfloat16' ? Uint16Array :
  T extends 'int32' ? Int32Array :
  T extends 'int64' ? BigInt64Array :
  Uint8Array;
export type TensorData = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32', 'int64', 'uint8', 'bool'];

export function dtypeSize(dtype: DType): number {
  switch (dtype) {
    case 'float32': case 'int32': return 4;
    case 'float16': case 'bfloat16': return 2;
    case 'int64': return 8;
    case 'uint8': case 'bool': return 1;
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16';
}

export function checkDType(dtype: unknown): DType {
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype))
    fail('ERR_DTYPE', `unknown dtype ${String(dtype)}; use one of ${DTYPES.join(', ')}`);
  return dtype as DType;
}

/** The dtype a TypedArray carries by default (Uint16Array is ambiguous: bfloat16). */
export function dtypeOfArray(data: TensorData): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint16Array) return 'bfloat16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint8Array) return 'uint8';
  return fail('ERR_DTYPE', 'data must be a Float32Array, Uint16Array, Int32Array, BigInt64Array or Uint8Array');
}

export function arrayMatchesDType(data: TensorData, dtype: DType): boolean {
  switch (dtype) {
    case 'float32': return data instanceof Float32Array;
    case 'float16': case 'bfloat16': return data instanceof Uint16Array;
    case 'int32': return data instanceof Int32Array;
    case 'int64': return data instanceof BigInt64Array;
    case 'uint8': case 'bool': return data instanceof Uint8Array;
  }
}

export function arrayOver(buffer: ArrayBuffer, dtype: DType, length: number): TensorData {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, 0, length);
    case 'float16': case 'bfloat16': return new Uint16Array(buffer, 0, length);
    case 'int32': return new Int32Array(buffer, 0, length);
    case 'int64': return new BigInt64Array(buffer, 0, length);
    case 'uint8': case 'bool': return new Uint8Array(buffer, 0, length);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToBFloat16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bfloat16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function floatToFloat16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {  // half subnormal: value = round(|x| / 2^-24)
    const m = Math.abs(f32[0]!) * 16777216;
    let r = Math.floor(m);
    const rem = m - r;
    if (rem > 0.5 || (rem === 0.5 && (r & 1))) r += 1;
    return sign | r;
  }
  const r = abs + 0xfff + ((abs >>> 13) & 1) - (112 << 23);
  return sign | (r >>> 13);
}

export function float16ToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** Rounds float32 values into a 16-bit float array of the given format. */
export function encodeHalf(values: ArrayLike<number>, dtype: 'bfloat16' | 'float16'): Uint16Array {
  const out = new Uint16Array(values.length);
  const enc = dtype === 'bfloat16' ? floatToBFloat16 : floatToFloat16;
  for (let i = 0; i < values.length; i++) out[i] = enc(values[i]!);
  return out;
}

export function decodeHalf(bits: Uint16Array, dtype: 'bfloat16' | 'float16'): Float32Array {
  const out = new Float32Array(bits.length);
  const dec = dtype === 'bfloat16' ? bfloat16ToFloat : float16ToFloat;
  for (let i = 0; i < bits.length; i++) out[i] = dec(bits[i]!);
  return out;
}
