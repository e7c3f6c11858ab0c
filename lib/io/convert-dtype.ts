// Dtype conversion of loaded checkpoint tensors (round to nearest even, NaN
// kept), matching PyTorch's .to(torch.bfloat16). Scalar conversions live in
// lib/dtype.ts.
import { bfloat16ToFloat, float16ToFloat, floatToBFloat16 } from '../dtype.js';
import type { HostArray } from './stored-tensor.js';

export { bfloat16ToFloat as bf16BitsToF32, floatToBFloat16 as f32ToBf16Bits };

/** Converts a floating tensor to bfloat16 (other dtypes are returned as they are). */
export function toBf16(a: HostArray): HostArray {
  if (a.dtype === 'bfloat16' || !['float32', 'float64', 'float16'].includes(a.dtype)) return a;
  const n = a.data.length;
  const out = new Uint16Array(n);
  const src = a.data as Float32Array | Float64Array | Uint16Array;
  for (let i = 0; i < n; ++i) {
    // float64 is rounded to float32 first; PyTorch rounds f64 → bf16 directly,
    // which differs only when the f32 rounding lands exactly on a bf16 tie.
    const v = a.dtype === 'float16' ? float16ToFloat(src[i]!) : src[i]!;
    out[i] = floatToBFloat16(v);
  }
  return { dtype: 'bfloat16', shape: a.shape, data: out };
}
