// Small row-wise helpers on CPU float32 data that no native op covers: the
// AdaLN chunk splits touch O(rows·C) values per block, next to the
// O(rows·n·C²) GEMMs around them.
import { Tensor } from '../../tensor.js';

/** x·sigmoid(x), elementwise. */
export function silu(x: Float32Array): Float32Array {
  return Float32Array.from(x, (v) => v / (1 + Math.exp(-v)));
}

/**
 * Splits t [R, k·C] into k contiguous [R, C] tensors (chunk j = columns
 * [jC, (j+1)C)); `offset` [k·C], if given, is added to every row first
 * (the shared-AdaLN ada_gss).
 */
export function splitColumns(t: Tensor, k: number, offset?: Float32Array): Tensor[] {
  const [R, KC] = t.shape as [number, number];
  const C = KC / k;
  const src = t.data as Float32Array;
  return Array.from({ length: k }, (_, j) => {
    const out = Tensor.empty([R, C]);
    const d = out.data as Float32Array;
    if (!offset) {
      for (let r = 0; r < R; r++) d.set(src.subarray(r * KC + j * C, r * KC + (j + 1) * C), r * C);
      return out;
    }
    for (let r = 0; r < R; r++)
      for (let c = 0; c < C; c++) d[r * C + c] = src[r * KC + j * C + c]! + offset[j * C + c]!;
    return out;
  });
}
