// Fitting a 3DGS scene to posed images: Adam over the native forward and
// backward (one view per step, as 3DGS trains), an L1 photometric loss, and
// the densify / prune / opacity-reset schedule of 3DGS in a simple form.
//
// Learning rates (3DGS defaults, arguments.py of the reference training code):
//   means       1.6e-4·extent decaying exponentially to 1.6e-6·extent over
//               `steps` (lr(t) = exp((1−u)·ln a + u·ln b), u = t/steps)
//   log-scales  5e-3      quaternions 1e-3     opacity logits 5e-2
//   SH DC       2.5e-3    SH rest      2.5e-3 / 20
// extent = 1.1 × the largest distance of a camera centre from their mean
// (the reference's getNerfppNorm radius).
//
// Loss: mean |render − target| over H·W·3 (no D-SSIM term: its backward would
// dominate the CPU step at these sizes; on small synthetic scenes L1 alone
// reaches the targets).
//
// Densification statistic: 3DGS averages ‖dL/dμ2D‖ (NDC units) over the views
// that see a Gaussian. The native backward returns dL/dμ3D only, so the 2D
// gradient is recovered from it: in camera space u = fx·x/z + cx, so the part
// of dL/dx_cam carried by the 2D mean is fx/z·dL/du, giving
// dL/du ≈ z/fx·dL/dx_cam (and likewise for v); the covariance's dependence on
// the mean is ignored. NDC scales pixels by 2/W, so dL/dndc_x = W/2·dL/du.
// A Gaussian "sees" a view when its mean gradient is non-zero.
import { fail } from '../errors.js';
import type { GaussianScene } from '../io/gaussian-scene.js';
import { SH_C0 } from '../io/gaussian-scene.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { checkCamera, type PinholeCamera } from './camera.js';
import { SplatParams } from './fit-params.js';
import { SeededRandom } from './random.js';

export interface PosedImage {
  camera: PinholeCamera;
  /** Target colours, [H, W, 3] row-major, linear in [0, 1]. */
  rgb: Float32Array;
}

export interface LearningRates {
  meansInit: number; meansFinal: number; logScales: number; rotations: number; opacity: number; shDc: number;
  /** Multiplier of shDc for SH degrees >= 1. */
  shRestScale: number;
}

export interface DensifyOptions {
  from: number; until: number; every: number;
  /** Mean view-space positional gradient norm (NDC units) that triggers densification; 3DGS: 2e-4. */
  gradThreshold: number;
  /** Clone when max scale <= percentDense·extent, else split; 3DGS: 0.01. */
  percentDense: number;
  minOpacity: number;
  /** Opacity reset period (0: never); 3DGS: 3000. World-size pruning (> 0.1·extent) starts after the first. */
  opacityResetEvery: number;
  maxGaussians: number;
}

export interface FitProgress { step: number; loss: number; gaussians: number; psnr?: number }

export interface FitOptions {
  steps?: number;
  seed?: number;
  /** Final SH degree (0..3); the active degree rises by one every `shUpEvery` steps (3DGS: 1000). */
  shDegree?: number;
  shUpEvery?: number;
  /** Random start: this many Gaussians uniform in `initBox` (default: a cube of half-side 0.4·radius about the cameras' mean). */
  initialGaussians?: number;
  initBox?: { min: [number, number, number]; max: [number, number, number] };
  /** Start from this scene instead (its SH degree must match shDegree). */
  init?: GaussianScene;
  background?: [number, number, number];
  lr?: Partial<LearningRates>;
  densify?: Partial<DensifyOptions>;
  /** Held-out views: their mean PSNR is reported every `evalEvery` steps. */
  evalViews?: readonly PosedImage[];
  evalEvery?: number;
  onProgress?: (p: FitProgress) => void;
}

export const DEFAULT_LR: LearningRates = {
  meansInit: 1.6e-4, meansFinal: 1.6e-6, logScales: 5e-3, rotations: 1e-3, opacity: 5e-2, shDc: 2.5e-3, shRestScale: 1 / 20,
};

interface SplatAddon {
  splatRender(args: Record<string, unknown>): Promise<unknown>;
  splatBackward(args: Record<string, unknown>): Promise<unknown>;
}

function cameraArg(c: PinholeCamera) {
  return { fx: c.fx, fy: c.fy, cx: c.cx, cy: c.cy, width: c.width, height: c.height, view: Array.from(c.worldToCamera) };
}

function cameraCentre(c: PinholeCamera): [number, number, number] {
  const V = c.worldToCamera;
  // centre = −Rᵀ t
  return [0, 1, 2].map((k) => -(V[k]! * V[3]! + V[4 + k]! * V[7]! + V[8 + k]! * V[11]!)) as [number, number, number];
}

/** 3DGS's scene extent: 1.1 × max distance of a camera centre from the centres' mean. */
export function sceneExtent(cameras: readonly PinholeCamera[]): { centre: [number, number, number]; radius: number } {
  const cs = cameras.map(cameraCentre);
  const centre = [0, 1, 2].map((k) => cs.reduce((a, c) => a + c[k]!, 0) / cs.length) as [number, number, number];
  const far = Math.max(...cs.map((c) => Math.hypot(c[0] - centre[0], c[1] - centre[1], c[2] - centre[2])));
  return { centre, radius: 1.1 * far };
}

/** Mean PSNR (dB, peak 1) of renders against targets. */
export function psnr(a: Float32Array, b: Float32Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i]! - b[i]!; se += d * d; }
  return 10 * Math.log10(a.length / Math.max(se, 1e-30));
}

/**
 * Renders and differentiates one view at a time into buffers kept between
 * steps (one rgb and one gradient image per image size).
 */
class ViewRaster {
  #images = new Map<string, { rgb: Float32Array; grad: Float32Array }>();
  #addon = native() as unknown as SplatAddon;
  constructor(private readonly background: [number, number, number]) {}

  buffers(c: PinholeCamera) {
    const key = `${c.width}x${c.height}`;
    let b = this.#images.get(key);
    if (!b) { b = { rgb: new Float32Array(c.width * c.height * 3), grad: new Float32Array(c.width * c.height * 3) }; this.#images.set(key, b); }
    return b;
  }

  #scene(p: SplatParams, degree: number) {
    const n = p.count;
    return {
      means: Tensor.from(p.means.values(), [n, 3]).native(), logScales: Tensor.from(p.logScales.values(), [n, 3]).native(),
      rotations: Tensor.from(p.rotations.values(), [n, 4]).native(), opacityLogits: Tensor.from(p.opacity.values(), [n]).native(),
      sh: Tensor.from(p.sh.values(), [n, p.K, 3]).native(), shDegree: degree, mode: 0, background: this.background,
    };
  }

  async render(p: SplatParams, degree: number, c: PinholeCamera): Promise<Float32Array> {
    const { rgb } = this.buffers(c);
    await this.#addon.splatRender({ ...this.#scene(p, degree), cameras: [cameraArg(c)], rgb: Tensor.from(rgb, [1, c.height, c.width, 3]).native() });
    return rgb;
  }

  /** Writes dL/dparams into each group's gradient buffer, given dL/drgb in buffers(c).grad. */
  async backward(p: SplatParams, degree: number, c: PinholeCamera): Promise<void> {
    const { grad } = this.buffers(c);
    const n = p.count;
    await this.#addon.splatBackward({
      ...this.#scene(p, degree), cameras: [cameraArg(c)], gradRgb: Tensor.from(grad, [1, c.height, c.width, 3]).native(),
      gradMeans: Tensor.from(p.means.grads(), [n, 3]).native(), gradLogScales: Tensor.from(p.logScales.grads(), [n, 3]).native(),
      gradRotations: Tensor.from(p.rotations.grads(), [n, 4]).native(),
      gradOpacityLogits: Tensor.from(p.opacity.grads(), [n]).native(), gradSh: Tensor.from(p.sh.grads(), [n, p.K, 3]).native(),
    });
  }
}

/** L1 loss mean|r − t| and its gradient sign(r − t)/numel into `grad`. */
function l1(render: Float32Array, target: Float32Array, grad: Float32Array): number {
  const n = render.length, inv = 1 / n;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = render[i]! - target[i]!;
    sum += Math.abs(d);
    grad[i] = d > 0 ? inv : d < 0 ? -inv : 0;
  }
  return sum * inv;
}

// Accumulates the view-space positional gradient norm (see the header).
function accumulateViewGradients(p: SplatParams, c: PinholeCamera): void {
  const V = c.worldToCamera, g = p.means.grad, m = p.means.value;
  for (let i = 0; i < p.count; i++) {
    const gx = g[3 * i]!, gy = g[3 * i + 1]!, gz = g[3 * i + 2]!;
    if (gx === 0 && gy === 0 && gz === 0) continue;
    const z = V[8]! * m[3 * i]! + V[9]! * m[3 * i + 1]! + V[10]! * m[3 * i + 2]! + V[11]!;
    const cx = V[0]! * gx + V[1]! * gy + V[2]! * gz, cy = V[4]! * gx + V[5]! * gy + V[6]! * gz;
    const du = (cx * z) / c.fx, dv = (cy * z) / c.fy;
    p.gradAccum[i] = p.gradAccum[i]! + Math.hypot((du * c.width) / 2, (dv * c.height) / 2);
    p.gradCount[i] = p.gradCount[i]! + 1;
  }
}

function randomStart(p: SplatParams, count: number, box: { min: number[]; max: number[] }, rng: SeededRandom): void {
  const extent = Math.max(box.max[0]! - box.min[0]!, box.max[1]! - box.min[1]!, box.max[2]! - box.min[2]!);
  // Spacing of `count` points in the box: 3DGS starts each scale at the RMS
  // distance to the 3 nearest points; for uniform points that is about this.
  const ls = Math.log((0.6 * extent) / Math.cbrt(count));
  const sh = new Float32Array(3 * p.K);
  for (let i = 0; i < count; i++) {
    const mean = [0, 1, 2].map((k) => rng.range(box.min[k]!, box.max[k]!));
    for (let c = 0; c < 3; c++) sh[c] = (rng.uniform() - 0.5) / SH_C0;  // colour uniform in [0, 1)
    p.push(mean, [ls, ls, ls], [1, 0, 0, 0], Math.log(0.1 / 0.9), sh);  // opacity 0.1 as 3DGS
  }
}

export interface FitResult {
  scene: GaussianScene;
  history: FitProgress[];
}

/** Fits a 3DGS scene (raw parameters, SH up to options.shDegree) to posed images. */
export async function fitScene(views: readonly PosedImage[], options: FitOptions = {}): Promise<FitResult> {
  if (views.length === 0) fail('ERR_INVALID_ARGUMENT', 'fitScene needs at least one posed image');
  views.forEach((v, i) => {
    checkCamera(v.camera, i);
    if (!(v.rgb instanceof Float32Array) || v.rgb.length !== v.camera.width * v.camera.height * 3)
      fail('ERR_SHAPE', `view ${i}: rgb must be a Float32Array of ${v.camera.width}x${v.camera.height}x3 values`);
  });
  const steps = options.steps ?? 7000;
  const shDegree = options.shDegree ?? 0;
  if (!Number.isInteger(shDegree) || shDegree < 0 || shDegree > 3) fail('ERR_INVALID_ARGUMENT', 'shDegree must be 0..3');
  if (!Number.isInteger(steps) || steps < 1) fail('ERR_INVALID_ARGUMENT', 'steps must be a positive integer');
  const lr = { ...DEFAULT_LR, ...options.lr };
  const dens: DensifyOptions = {
    from: 500, until: Math.floor(steps / 2), every: 100, gradThreshold: 2e-4, percentDense: 0.01, minOpacity: 0.005,
    opacityResetEvery: 3000, maxGaussians: 1_000_000, ...options.densify,
  };
  const { centre, radius: extent } = sceneExtent(views.map((v) => v.camera));
  const rng = new SeededRandom(options.seed ?? 0);
  const start = options.init;
  const params = new SplatParams(shDegree, Math.max(1024, 2 * (start?.count ?? options.initialGaussians ?? 1000)), lr.shRestScale);
  if (start) {
    if (start.shDegree !== shDegree) fail('ERR_INVALID_ARGUMENT', `init scene has SH degree ${start.shDegree}, options.shDegree is ${shDegree}`);
    for (let i = 0; i < start.count; i++)
      params.push(start.means.subarray(3 * i), start.logScales.subarray(3 * i), start.rotations.subarray(4 * i),
        start.opacityLogits[i]!, start.sh, 3 * params.K * i);
  } else {
    const h = (0.4 * extent) / 1.1;
    const box = options.initBox ?? { min: [centre[0] - h, centre[1] - h, centre[2] - h], max: [centre[0] + h, centre[1] + h, centre[2] + h] };
    randomStart(params, options.initialGaussians ?? 1000, box, rng);
  }
  const raster = new ViewRaster(options.background ?? [0, 0, 0]);
  const history: FitProgress[] = [];
  let order = rng.permutation(views.length), at = 0, lossSum = 0, lossCount = 0;
  const shUpEvery = options.shUpEvery ?? 1000;
  for (let t = 1; t <= steps; t++) {
    const degree = Math.min(shDegree, Math.floor((t - 1) / shUpEvery));
    if (at === views.length) { order = rng.permutation(views.length); at = 0; }
    const view = views[order[at++]!]!;
    const out = await raster.render(params, degree, view.camera);
    lossSum += l1(out, view.rgb, raster.buffers(view.camera).grad);
    lossCount++;
    await raster.backward(params, degree, view.camera);
    if (t <= dens.until) accumulateViewGradients(params, view.camera);
    const u = Math.min(1, t / steps);
    const meansLr = extent * Math.exp((1 - u) * Math.log(lr.meansInit) + u * Math.log(lr.meansFinal));
    params.means.step(meansLr, t);
    params.logScales.step(lr.logScales, t);
    params.rotations.step(lr.rotations, t);
    params.opacity.step(lr.opacity, t);
    params.sh.step(lr.shDc, t);
    if (t >= dens.from && t <= dens.until && t % dens.every === 0) {
      params.densify(dens.gradThreshold, dens.percentDense * extent, dens.maxGaussians, rng);
      const afterReset = dens.opacityResetEvery > 0 && t > dens.opacityResetEvery;
      params.prune(dens.minOpacity, afterReset ? 0.1 * extent : Infinity);
      params.clearStats();
    }
    if (dens.opacityResetEvery > 0 && t <= dens.until && t % dens.opacityResetEvery === 0) params.resetOpacity(0.01);
    const evalNow = options.evalViews && options.evalEvery && (t % options.evalEvery === 0 || t === steps);
    if (evalNow || (options.onProgress && t === steps)) {
      const entry: FitProgress = { step: t, loss: lossSum / lossCount, gaussians: params.count };
      if (evalNow) entry.psnr = await meanPsnr(params, degree, options.evalViews!, raster);
      lossSum = 0; lossCount = 0;
      history.push(entry);
      options.onProgress?.(entry);
    }
  }
  return { scene: copyScene(params.scene()), history };
}

async function meanPsnr(p: SplatParams, degree: number, views: readonly PosedImage[], raster: ViewRaster): Promise<number> {
  let sum = 0;
  for (const v of views) sum += psnr(await raster.render(p, degree, v.camera), v.rgb);
  return sum / views.length;
}

function copyScene(s: GaussianScene): GaussianScene {
  return {
    ...s, means: s.means.slice(), logScales: s.logScales.slice(), rotations: s.rotations.slice(),
    opacityLogits: s.opacityLogits.slice(), sh: s.sh.slice(),
  };
}
