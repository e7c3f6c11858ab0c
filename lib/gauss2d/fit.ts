// Fitting an image with N 2D Gaussians (GaussianImage): Adam on the raw
// parameters over the native accumulated-sum forward and backward, L2 loss
// (mean squared error, as GaussianImage trains), seeded initialisation.
//
// Start (differs from GaussianImage's, which begins every Gaussian at ~1 px
// and trains 50k steps): means uniform over the image; L = σ0·I with
// σ0 = ½·sqrt(W·H/N) (so the N footprints tile the image), i.e. raw
// (σ0 − 0.5, 0, σ0 − 0.5) with ±10% jitter; colours the target's at the mean
// divided by the expected overlap N·2πσ0²/(W·H) (= π/2), so the first render
// is already about the right brightness.
//
// Learning rates (Adam, decayed exponentially to 1/10 over the run): xy
// (atanh space) 5e-3·256/max(W, H) so means move a similar number of pixels
// per step at any size; Cholesky 5e-2 (pixels); colour 1e-2 (tuned for
// runs of a few hundred to a few thousand steps on CPU).
import { fail } from '../errors.js';
import { AdamRows } from '../splat/adam.js';
import { SeededRandom } from '../splat/random.js';
import { psnr } from '../splat/fit.js';
import type { RgbImage } from '../io/image-read.js';
import type { Gauss2dModel } from './model.js';
import { renderGauss2d, renderGauss2dBackward } from './render.js';

export interface FitImageOptions {
  gaussians?: number;
  steps?: number;
  seed?: number;
  lr?: { xy?: number; cholesky?: number; color?: number };
  /** Final learning rate as a fraction of the initial one (default 0.1). */
  lrFinalFraction?: number;
  /** onProgress every this many steps (default 100) and at the end. */
  logEvery?: number;
  onProgress?: (p: { step: number; psnr: number }) => void;
}

export interface FitImageResult {
  model: Gauss2dModel;
  /** PSNR (dB) of the final scale-1 render against the image. */
  psnr: number;
}

export async function fitImage(image: RgbImage, o: FitImageOptions = {}): Promise<FitImageResult> {
  const { width: W, height: H, rgb: target } = image;
  if (!Number.isInteger(W) || !Number.isInteger(H) || W < 1 || H < 1 || !(target instanceof Float32Array) || target.length !== W * H * 3)
    fail('ERR_SHAPE', 'image must be {width, height, rgb: Float32Array of width·height·3}');
  const N = o.gaussians ?? 20000, steps = o.steps ?? 2000;
  if (!Number.isInteger(N) || N < 1 || N >= 2 ** 31) fail('ERR_INVALID_ARGUMENT', `gaussians must be a positive integer, got ${N}`);
  if (!Number.isInteger(steps) || steps < 0) fail('ERR_INVALID_ARGUMENT', `steps must be a non-negative integer, got ${steps}`);
  const rng = new SeededRandom(o.seed ?? 0);
  const xy = new AdamRows(2, N), ch = new AdamRows(3, N), co = new AdamRows(3, N);
  const sigma0 = Math.max(0.5, 0.5 * Math.sqrt((W * H) / N));
  const overlap = Math.max(1, (N * 2 * Math.PI * sigma0 * sigma0) / (W * H));
  for (let i = 0; i < N; i++) {
    const u = rng.range(0.001, 0.999), v = rng.range(0.001, 0.999);
    xy.push([Math.atanh(2 * u - 1), Math.atanh(2 * v - 1)]);
    ch.push([sigma0 * rng.range(0.9, 1.1) - 0.5, 0, sigma0 * rng.range(0.9, 1.1) - 0.5]);
    const p = Math.min(H - 1, Math.floor(v * H)) * W + Math.min(W - 1, Math.floor(u * W));
    co.push([target[3 * p]! / overlap, target[3 * p + 1]! / overlap, target[3 * p + 2]! / overlap]);
  }
  const model: Gauss2dModel = { width: W, height: H, count: N, xy: xy.values(), cholesky: ch.values(), color: co.values() };
  const grads = { xy: xy.grads(), cholesky: ch.grads(), color: co.grads() };
  const out = new Float32Array(W * H * 3), gradRgb = new Float32Array(W * H * 3);
  const lrXy = o.lr?.xy ?? (5e-3 * 256) / Math.max(W, H), lrCh = o.lr?.cholesky ?? 5e-2, lrCo = o.lr?.color ?? 1e-2;
  const fin = o.lrFinalFraction ?? 0.1, logEvery = o.logEvery ?? 100;
  const inv = 2 / target.length;
  for (let t = 1; t <= steps; t++) {
    await renderGauss2d(model, {}, out);
    for (let i = 0; i < out.length; i++) gradRgb[i] = (out[i]! - target[i]!) * inv;  // d mean((r−t)²)
    await renderGauss2dBackward(model, gradRgb, {}, grads);
    const decay = fin ** (t / steps);
    xy.step(lrXy * decay, t);
    ch.step(lrCh * decay, t);
    co.step(lrCo * decay, t);
    if (o.onProgress && (t % logEvery === 0 || t === steps)) o.onProgress({ step: t, psnr: psnr(out, target) });
  }
  await renderGauss2d(model, {}, out);
  return { model: { ...model, xy: model.xy.slice(), cholesky: model.cholesky.slice(), color: model.color.slice() }, psnr: psnr(out, target) };
}
