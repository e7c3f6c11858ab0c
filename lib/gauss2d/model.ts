// An image as N 2D Gaussians in GaussianImage's parameterisation (Zhang et
// al., ECCV 2024; spec §3 and native/include/tessera/gauss2d.h): per
// Gaussian the raw mean xy (mapped by ½·size·(tanh + 1)), the raw Cholesky
// factor (l11, l21, l22) before the (0.5, 0, 0.5) offset, and an RGB colour;
// opacity is fixed at 1 and the image is their accumulated sum.
import { fail } from '../errors.js';

export interface Gauss2dModel {
  /** Size of the image the Gaussians were fitted to (scale 1). */
  width: number;
  height: number;
  count: number;
  xy: Float32Array;       // [N, 2]
  cholesky: Float32Array; // [N, 3]
  color: Float32Array;    // [N, 3]
}

export function checkModel(m: Gauss2dModel, what = 'model'): void {
  if (!m || typeof m !== 'object') fail('ERR_INVALID_ARGUMENT', `${what} must be a Gauss2dModel`);
  if (!Number.isInteger(m.width) || !Number.isInteger(m.height) || m.width < 1 || m.height < 1 || m.width > 65536 || m.height > 65536)
    fail('ERR_INVALID_ARGUMENT', `${what}: width and height must be integers in 1..65536`);
  if (!Number.isInteger(m.count) || m.count < 0) fail('ERR_INVALID_ARGUMENT', `${what}: count must be a non-negative integer`);
  const arr = (a: Float32Array, cols: number, name: string) => {
    if (!(a instanceof Float32Array) || a.length !== cols * m.count)
      fail('ERR_SHAPE', `${what}.${name} must be a Float32Array of ${m.count}x${cols} values`);
  };
  arr(m.xy, 2, 'xy');
  arr(m.cholesky, 3, 'cholesky');
  arr(m.color, 3, 'color');
}
