// Float conversions for checkpoint conversion (round to nearest even, NaN kept),
// matching PyTorch's .to(torch.bfloat16) / .to(torch.float16).
import type { HostArray } from './stored-tensor.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Converts a floating tensor to bfloat16 (other dtypes are returned as they are). */
export function toBf16(a: HostArray): HostArray {
  if (a.dtype === 'bfloat16' || !['float32', 'float64', 'float16'].includes(a.dtype)) return a;
  const n = a.data.length;
  const out = new Uint16Array(n);
  const src = a.data as Float32Array | Float64Array | Uint16Array;
  for (let i = 0; i < n; ++i) {
    // float64 → float32 first: PyTorch rounds f64 → bf16 directly, which can
    // differ from double rounding only on exact f32 ties (astronomically rare).
    const v = a.dtype === 'float16' ? f16BitsToF32(src[i]!) : src[i]!;
    out[i] = f32ToBf16Bits(v);
  }
  return { dtype: 'bfloat16', shape: a.shape, data: out };
}
