// conv2d({ upsample: 2 }): the conv reads x through a nearest 2× upsample
// (VAR's Upsample2x followed by its 3×3 conv) without storing the upsampled
// map. Checked against a float64 direct convolution of the upsampled input
// written here; the route is Winograd F(4×4, 3×3), whose float32 error the
// native suite measures at ≤ 4.6e-6 (‖out − ref‖/‖ref‖), hence 2e-5.
import { describe, expect, it } from 'vitest';

import { conv2d, Tensor } from '../lib/index.js';
import { randomArray, relError } from './reference.js';

const TOL = 2e-5;

/** out[n, o, y, x] = b[o] + Σ w[o, c, i, j]·x[n, c, (y + i − 1) / 2, (x + j − 1) / 2] over the 2H×2W upsampled map. */
function refUpConv(x: Float32Array, w: Float32Array, b: Float32Array, N: number, Ci: number, H: number, W: number, Co: number): Float64Array {
  const Hu = 2 * H, Wu = 2 * W;
  const out = new Float64Array(N * Co * Hu * Wu);
  for (let n = 0; n < N; n++) for (let o = 0; o < Co; o++) for (let y = 0; y < Hu; y++) for (let xx = 0; xx < Wu; xx++) {
    let acc = b[o]!;
    for (let c = 0; c < Ci; c++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      const iy = y + i - 1, ix = xx + j - 1;
      if (iy < 0 || iy >= Hu || ix < 0 || ix >= Wu) continue;
      acc += w[((o * Ci + c) * 3 + i) * 3 + j]! * x[((n * Ci + c) * H + (iy >> 1)) * W + (ix >> 1)]!;
    }
    out[((n * Co + o) * Hu + y) * Wu + xx] = acc;
  }
  return out;
}

describe('conv2d with upsample 2', () => {
  it.each([
    [1, 5, 1, 1, 7], [1, 5, 3, 3, 7], [2, 19, 7, 5, 21], [1, 6, 33, 33, 9],
  ])('N %i, Ci %i, %ix%i, Co %i: the conv of the nearest-upsampled map', async (N, Ci, H, W, Co) => {
    const x = randomArray(N * Ci * H * W), w = randomArray(Co * Ci * 9), b = randomArray(Co);
    const out = await conv2d({ x: Tensor.from(x, [N, Ci, H, W]), weight: Tensor.from(w, [Co, Ci, 3, 3]), bias: Tensor.from(b, [Co]), padding: 1, upsample: 2 });
    expect(out.shape).toEqual([N, Co, 2 * H, 2 * W]);
    expect(relError(out.data as Float32Array, refUpConv(x, w, b, N, Ci, H, W, Co))).toBeLessThan(TOL);
  });

  it('accumulates into out (the residual form)', async () => {
    const [N, Ci, H, W, Co] = [1, 4, 6, 5, 3];
    const x = randomArray(N * Ci * H * W), w = randomArray(Co * Ci * 9), b = randomArray(Co), r = randomArray(N * Co * 4 * H * W);
    const out = Tensor.from(Float32Array.from(r), [N, Co, 2 * H, 2 * W]);
    await conv2d({ x: Tensor.from(x, [N, Ci, H, W]), weight: Tensor.from(w, [Co, Ci, 3, 3]), bias: Tensor.from(b, [Co]), padding: 1, upsample: 2, out, accumulate: true });
    const want = refUpConv(x, w, b, N, Ci, H, W, Co).map((v, i) => v + r[i]!);
    expect(relError(out.data as Float32Array, want)).toBeLessThan(TOL);
  });

  it('is refused where the fused route does not apply', async () => {
    const x = Tensor.from(randomArray(2 * 8 * 8), [1, 2, 8, 8]);
    const w5 = Tensor.from(randomArray(3 * 2 * 25), [3, 2, 5, 5]);
    await expect(conv2d({ x, weight: w5, padding: 2, upsample: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const w3 = Tensor.from(randomArray(3 * 2 * 9), [3, 2, 3, 3]);
    await expect(conv2d({ x, weight: w3, padding: 1, stride: 2, upsample: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(conv2d({ x, weight: w3, padding: 1, upsample: 3 as 2 })).rejects.toThrow(/upsample must be 1 or 2/);
  });
});
