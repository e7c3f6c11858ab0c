// Rendering 2D image Gaussians at any scale, and the backward, over the
// native CPU renderer (semantics: native/include/tessera/gauss2d.h).
//
// Output size at scale s: (round(s·W), round(s·H)), at least 1×1. The model
// is a continuous image in coordinates where image pixel j sits at j (as
// GaussianImage's rasterizer samples it); output pixel j' samples it at
// (j' + 0.5)/s − 0.5, so the footprint of every Gaussian grows with s in
// output pixels (GSASR's scale-aware rendering) and scale 1 is exactly
// GaussianImage's render of the same parameters (and the fitting render).
import { fail } from '../errors.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { checkModel, type Gauss2dModel } from './model.js';

export interface Gauss2dStats { gaussians: number; invalid: number; visible: number; intersections: number }

export interface Gauss2dRenderOptions {
  /** Uniform scale factor (default 1); ignored when width/height are given. */
  scale?: number;
  width?: number;
  height?: number;
  /** Clamp to [0, 1] as GaussianImage does (default true). */
  clamp?: boolean;
}

export interface Gauss2dRendered {
  width: number;
  height: number;
  /** [H, W, 3] row-major. */
  rgb: Float32Array;
  stats: Gauss2dStats;
}

interface Gauss2dAddon {
  gauss2dRender(args: Record<string, unknown>): Promise<Gauss2dStats>;
  gauss2dBackward(args: Record<string, unknown>): Promise<Gauss2dStats>;
}
const addon = (): Gauss2dAddon => native() as unknown as Gauss2dAddon;

/** Output size for a render option set. */
export function outputSize(m: Gauss2dModel, o: Gauss2dRenderOptions = {}): { width: number; height: number } {
  if (o.width !== undefined || o.height !== undefined) {
    const w = o.width ?? Math.round((m.width * o.height!) / m.height), h = o.height ?? Math.round((m.height * o.width!) / m.width);
    if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w > 65536 || h > 65536)
      fail('ERR_INVALID_ARGUMENT', `output size must be integers in 1..65536, got ${w}x${h}`);
    return { width: w, height: h };
  }
  const s = o.scale ?? 1;
  if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0) fail('ERR_INVALID_ARGUMENT', `scale must be a positive number, got ${s}`);
  const width = Math.max(1, Math.round(s * m.width)), height = Math.max(1, Math.round(s * m.height));
  if (width > 65536 || height > 65536) fail('ERR_INVALID_ARGUMENT', `scale ${s} gives ${width}x${height}, above 65536 per side`);
  return { width, height };
}

/** The native argument object for a model (zero-copy views). */
export function modelArgs(m: Gauss2dModel): Record<string, unknown> {
  return {
    xy: Tensor.from(m.xy, [m.count, 2]).native(), cholesky: Tensor.from(m.cholesky, [m.count, 3]).native(),
    color: Tensor.from(m.color, [m.count, 3]).native(), width: m.width, height: m.height,
  };
}

/** Renders the model (off the event loop); `out` (H·W·3 floats) is reused when given. */
export async function renderGauss2d(m: Gauss2dModel, o: Gauss2dRenderOptions = {}, out?: Float32Array): Promise<Gauss2dRendered> {
  checkModel(m);
  const { width, height } = outputSize(m, o);
  const rgb = out ?? new Float32Array(width * height * 3);
  if (rgb.length !== width * height * 3) fail('ERR_SHAPE', `out must hold ${width}x${height}x3 floats`);
  const stats = await addon().gauss2dRender({ ...modelArgs(m), rgb: Tensor.from(rgb, [height, width, 3]).native(), clamp: o.clamp ?? true });
  return { width, height, rgb, stats };
}

export interface Gauss2dGradients { xy: Float32Array; cholesky: Float32Array; color: Float32Array }

/**
 * dL/d(xy, cholesky, color) given dL/drgb ([H,W,3]) of a render with the same
 * options, written into `into` when given (arrays of the model's sizes).
 */
export async function renderGauss2dBackward(m: Gauss2dModel, gradRgb: Float32Array, o: Gauss2dRenderOptions = {},
  into?: Gauss2dGradients): Promise<Gauss2dGradients> {
  checkModel(m);
  const { width, height } = outputSize(m, o);
  if (!(gradRgb instanceof Float32Array) || gradRgb.length !== width * height * 3)
    fail('ERR_SHAPE', `gradRgb must be a Float32Array of ${width}x${height}x3 values`);
  const g = into ?? { xy: new Float32Array(2 * m.count), cholesky: new Float32Array(3 * m.count), color: new Float32Array(3 * m.count) };
  await addon().gauss2dBackward({
    ...modelArgs(m), gradRgb: Tensor.from(gradRgb, [height, width, 3]).native(), clamp: o.clamp ?? true,
    gradXy: Tensor.from(g.xy, [m.count, 2]).native(), gradCholesky: Tensor.from(g.cholesky, [m.count, 3]).native(),
    gradColor: Tensor.from(g.color, [m.count, 3]).native(),
  });
  return g;
}
