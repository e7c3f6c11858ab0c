// 3DGS rendering and its backward over the native CPU rasterizer
// (native/include/tessera/splat.h has the exact semantics).
//
// render(scene, cameras, options) returns, per camera, rgb [H,W,3] (with the
// background composited: C + T·bg), alpha [H,W] = 1 − T_final, depth [H,W] =
// Σ w·z / Σ w (expected view-space z of the blended Gaussians, w = α·T; 0
// where nothing was blended) and contributors [H,W] (int32: Gaussians blended
// into each pixel), plus stats counting invalid/culled/visible Gaussians.
// Invalid Gaussians (NaN/Inf values, zero quaternion, covariance overflowing
// float32) are skipped and counted, never an error.
import { fail } from '../errors.js';
import type { GaussianScene } from '../io/gaussian-scene.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { checkCamera, type PinholeCamera } from './camera.js';

export type SplatMode = 'classic' | 'antialiased';

export interface RenderOptions {
  /** Default: 'antialiased' when the scene says so (scene.antialiased), else 'classic'. */
  mode?: SplatMode;
  /** SH degree to evaluate, 0..3, at most the scene's; default min(scene.shDegree, 3). */
  shDegree?: number;
  /** Linear RGB behind the Gaussians; default black. */
  background?: readonly [number, number, number];
  /** Near plane in view-space z (default 0.2, as the reference). */
  near?: number;
}

export interface SplatStats {
  gaussians: number;
  /** Skipped: NaN/Inf parameters, zero quaternion or overflowing covariance. Counted once per call. */
  invalid: number;
  /** Per camera, summed: behind the near plane. */
  culledNear: number;
  /** Per camera, summed: footprint outside the image. */
  culledOutside: number;
  visible: number;
  /** (tile, Gaussian) pairs. */
  intersections: number;
  /** CPU rasterizer only: wall and process CPU ms per stage (prepare, project, bin, blend, blendBackward, projectBackward), summed over calls. */
  stages?: Record<string, { wallMs: number; cpuMs: number }>;
}

export interface RenderedView {
  width: number;
  height: number;
  rgb: Tensor;          // [H, W, 3] float32
  alpha: Tensor;        // [H, W] float32
  depth: Tensor;        // [H, W] float32
  contributors: Tensor; // [H, W] int32
}

/**
 * Caller-owned output arrays for one camera (overwritten): render's `into`
 * option, e.g. reused across frames so that their pages are not fresh every
 * call (a fresh page costs a fault and a clear on first touch).
 */
export interface RenderTargets {
  rgb: Float32Array;          // H·W·3
  alpha: Float32Array;        // H·W
  depth: Float32Array;        // H·W
  contributors: Int32Array;   // H·W
}

export interface RenderResult {
  views: RenderedView[];
  stats: SplatStats;
}

/** Per-camera upstream gradients (dL/d of each output), flat row-major. */
export interface ViewGradients {
  rgb: Float32Array;    // H·W·3
  alpha?: Float32Array; // H·W
  depth?: Float32Array; // H·W
}

/** dL/d of the scene's raw parameters, same layouts as GaussianScene. */
export interface SceneGradients {
  means: Float32Array;
  logScales: Float32Array;
  rotations: Float32Array;
  opacityLogits: Float32Array;
  sh: Float32Array;
  stats: SplatStats;
}

interface SplatAddon {
  splatRender(args: Record<string, unknown>): Promise<SplatStats>;
  splatBackward(args: Record<string, unknown>): Promise<SplatStats>;
}
const addon = (): SplatAddon => native() as unknown as SplatAddon;

function sceneArgs(scene: GaussianScene, opts: RenderOptions): Record<string, unknown> {
  const n = scene.count;
  const K = (scene.shDegree + 1) ** 2;
  const check = (a: Float32Array, len: number, what: string) => {
    if (!(a instanceof Float32Array) || a.length !== len)
      fail('ERR_SHAPE', `scene.${what} must be a Float32Array of ${len} values for ${n} Gaussians`);
  };
  check(scene.means, 3 * n, 'means');
  check(scene.logScales, 3 * n, 'logScales');
  check(scene.rotations, 4 * n, 'rotations');
  check(scene.opacityLogits, n, 'opacityLogits');
  check(scene.sh, 3 * K * n, 'sh');
  const shDegree = opts.shDegree ?? Math.min(scene.shDegree, 3);
  if (!Number.isInteger(shDegree) || shDegree < 0 || shDegree > Math.min(scene.shDegree, 3))
    fail('ERR_INVALID_ARGUMENT', `shDegree must be an integer in 0..${Math.min(scene.shDegree, 3)}`);
  const mode = opts.mode ?? (scene.antialiased ? 'antialiased' : 'classic');
  if (mode !== 'classic' && mode !== 'antialiased') fail('ERR_INVALID_ARGUMENT', `mode must be 'classic' or 'antialiased'`);
  return {
    means: Tensor.from(scene.means, [n, 3]).native(),
    logScales: Tensor.from(scene.logScales, [n, 3]).native(),
    rotations: Tensor.from(scene.rotations, [n, 4]).native(),
    opacityLogits: Tensor.from(scene.opacityLogits, [n]).native(),
    sh: Tensor.from(scene.sh, [n, K, 3]).native(),
    shDegree,
    mode: mode === 'antialiased' ? 1 : 0,
    background: opts.background ? [...opts.background] : undefined,
    near: opts.near,
  };
}

function nativeCamera(c: PinholeCamera) {
  return { fx: c.fx, fy: c.fy, cx: c.cx, cy: c.cy, width: c.width, height: c.height, view: Array.from(c.worldToCamera) };
}

// Cameras of one size go to the native rasterizer together.
function groupBySize(cameras: readonly PinholeCamera[]): number[][] {
  const groups = new Map<string, number[]>();
  cameras.forEach((c, i) => {
    checkCamera(c, i);
    const key = `${c.width}x${c.height}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(i);
  });
  return [...groups.values()];
}

function addStats(into: SplatStats, s: SplatStats, first: boolean): void {
  into.gaussians = s.gaussians;
  into.invalid = s.invalid;  // camera-independent
  if (first) { into.culledNear = 0; into.culledOutside = 0; into.visible = 0; into.intersections = 0; }
  into.culledNear += s.culledNear;
  into.culledOutside += s.culledOutside;
  into.visible += s.visible;
  into.intersections += s.intersections;
  if (s.stages) {
    if (first || !into.stages) into.stages = {};
    for (const [k, t] of Object.entries(s.stages)) {
      const d = (into.stages[k] ??= { wallMs: 0, cpuMs: 0 });
      d.wallMs += t.wallMs;
      d.cpuMs += t.cpuMs;
    }
  }
}

function toCameras(cameras: PinholeCamera | readonly PinholeCamera[]): readonly PinholeCamera[] {
  const list = Array.isArray(cameras) ? cameras : [cameras as PinholeCamera];
  if (list.length === 0) fail('ERR_INVALID_ARGUMENT', 'render needs at least one camera');
  return list;
}

/**
 * Renders the scene from each camera (off the event loop). With opts.into
 * (one RenderTargets per camera) the images are written into those arrays
 * and the returned views are over them; each camera is then its own native
 * call (the camera-independent per-Gaussian values are recomputed per
 * camera), since the arrays of several cameras are not one block.
 */
export async function render(scene: GaussianScene, cameras: PinholeCamera | readonly PinholeCamera[],
  opts: RenderOptions & { into?: readonly RenderTargets[] } = {}): Promise<RenderResult> {
  const cams = toCameras(cameras);
  const base = sceneArgs(scene, opts);
  const views = new Array<RenderedView>(cams.length);
  const stats = {} as SplatStats;
  const into = opts.into;
  if (into) {
    if (!Array.isArray(into) || into.length !== cams.length)
      fail('ERR_INVALID_ARGUMENT', `into must hold one RenderTargets per camera (${cams.length})`);
    cams.forEach((c, i) => {
      checkCamera(c, i);
      const t = into[i]!, P = c.width * c.height;
      const want = [['rgb', Float32Array, 3 * P], ['alpha', Float32Array, P], ['depth', Float32Array, P],
        ['contributors', Int32Array, P]] as const;
      for (const [k, type, len] of want) {
        const a = (t as unknown as Record<string, unknown> | undefined)?.[k];
        if (!(a instanceof type) || a.length !== len)
          fail('ERR_SHAPE', `into[${i}].${k} must be ${type === Int32Array ? 'an Int32Array' : 'a Float32Array'} of ${len} values (${c.height}x${c.width}${k === 'rgb' ? 'x3' : ''})`);
      }
    });
    let first = true;
    for (let i = 0; i < cams.length; i++) {
      const c = cams[i]!, t = into[i]!, W = c.width, H = c.height;
      const s = await addon().splatRender({
        ...base, cameras: [nativeCamera(c)],
        rgb: Tensor.from(t.rgb, [1, H, W, 3]).native(), alpha: Tensor.from(t.alpha, [1, H, W]).native(),
        depth: Tensor.from(t.depth, [1, H, W]).native(), contributors: Tensor.from(t.contributors, [1, H, W], 'int32').native(),
      });
      addStats(stats, s, first);
      first = false;
      views[i] = {
        width: W, height: H, rgb: Tensor.from(t.rgb, [H, W, 3]), alpha: Tensor.from(t.alpha, [H, W]),
        depth: Tensor.from(t.depth, [H, W]), contributors: Tensor.from(t.contributors, [H, W], 'int32'),
      };
    }
    return { views, stats };
  }
  let first = true;
  for (const group of groupBySize(cams)) {
    const { width: W, height: H } = cams[group[0]!]!;
    const C = group.length, P = W * H;
    const rgb = Tensor.empty([C, H, W, 3]), alpha = Tensor.empty([C, H, W]);
    const depth = Tensor.empty([C, H, W]), contributors = Tensor.empty([C, H, W], 'int32');
    const s = await addon().splatRender({
      ...base, cameras: group.map((i) => nativeCamera(cams[i]!)),
      rgb: rgb.native(), alpha: alpha.native(), depth: depth.native(), contributors: contributors.native(),
    });
    addStats(stats, s, first);
    first = false;
    // Per-camera views share the group's pooled storage (kept alive by the views).
    group.forEach((i, c) => {
      views[i] = {
        width: W, height: H,
        rgb: Tensor.from((rgb.data as Float32Array).subarray(3 * P * c, 3 * P * (c + 1)), [H, W, 3]),
        alpha: Tensor.from((alpha.data as Float32Array).subarray(P * c, P * (c + 1)), [H, W]),
        depth: Tensor.from((depth.data as Float32Array).subarray(P * c, P * (c + 1)), [H, W]),
        contributors: Tensor.from((contributors.data as Int32Array).subarray(P * c, P * (c + 1)), [H, W], 'int32'),
      };
    });
  }
  return { views, stats };
}

/**
 * Gradients of a loss L with respect to the scene's raw parameters, given
 * dL/d(rgb, alpha, depth) of each camera's render with the same options.
 * Deterministic: the same inputs give the same bits for any thread count.
 */
export async function renderBackward(scene: GaussianScene, cameras: PinholeCamera | readonly PinholeCamera[],
  grads: readonly ViewGradients[], opts: RenderOptions & { into?: Omit<SceneGradients, 'stats'> } = {}): Promise<SceneGradients> {
  const cams = toCameras(cameras);
  if (grads.length !== cams.length) fail('ERR_INVALID_ARGUMENT', `need one ViewGradients per camera (${cams.length}), got ${grads.length}`);
  const base = sceneArgs(scene, opts);
  const n = scene.count, K = (scene.shDegree + 1) ** 2;
  // opts.into: caller-owned output arrays (overwritten), e.g. reused across
  // steps so that their pages are not fresh every call.
  const into = opts.into;
  if (into) {
    const want = { means: 3 * n, logScales: 3 * n, rotations: 4 * n, opacityLogits: n, sh: 3 * K * n };
    for (const [k, len] of Object.entries(want)) {
      const a = into[k as keyof typeof want];
      if (!(a instanceof Float32Array) || a.length !== len) fail('ERR_SHAPE', `into.${k} must be a Float32Array of ${len} values`);
    }
  }
  const out = into ? { ...into, stats: {} as SplatStats } : {
    means: new Float32Array(3 * n), logScales: new Float32Array(3 * n), rotations: new Float32Array(4 * n),
    opacityLogits: new Float32Array(n), sh: new Float32Array(3 * K * n), stats: {} as SplatStats,
  };
  const groups = groupBySize(cams);
  if (into && groups.length > 1) for (const k of ['means', 'logScales', 'rotations', 'opacityLogits', 'sh'] as const) out[k].fill(0);
  let first = true;
  for (const group of groups) {
    const { width: W, height: H } = cams[group[0]!]!;
    const C = group.length, P = W * H;
    const gather = (pick: (g: ViewGradients) => Float32Array | undefined, ch: number, what: string) => {
      if (group.every((i) => pick(grads[i]!) === undefined)) return undefined;
      const check = (i: number, g: Float32Array) => {
        if (!(g instanceof Float32Array) || g.length !== ch * P)
          fail('ERR_SHAPE', `grads[${i}].${what} must be a Float32Array of ${ch * P} values (${H}x${W}${ch === 3 ? 'x3' : ''})`);
      };
      const shape = ch === 3 ? [C, H, W, 3] : [C, H, W];
      if (C === 1) {  // one camera: the caller's array itself (read only), no copy
        check(group[0]!, pick(grads[group[0]!]!)!);
        return Tensor.from(pick(grads[group[0]!]!)!, shape);
      }
      const t = Tensor.zeros(shape);
      group.forEach((i, c) => {
        const g = pick(grads[i]!);
        if (g === undefined) return;
        check(i, g);
        (t.data as Float32Array).set(g, ch * P * c);
      });
      return t;
    };
    const gRgb = gather((g) => g.rgb, 3, 'rgb');
    if (!gRgb) fail('ERR_INVALID_ARGUMENT', 'every camera needs an rgb gradient');
    const gAlpha = gather((g) => g.alpha, 1, 'alpha'), gDepth = gather((g) => g.depth, 1, 'depth');
    // A single group writes straight into the result; several are summed.
    const direct = groups.length === 1;
    const dst = direct ? out : {
      means: new Float32Array(3 * n), logScales: new Float32Array(3 * n), rotations: new Float32Array(4 * n),
      opacityLogits: new Float32Array(n), sh: new Float32Array(3 * K * n),
    };
    const s = await addon().splatBackward({
      ...base, cameras: group.map((i) => nativeCamera(cams[i]!)),
      gradRgb: gRgb.native(), gradAlpha: gAlpha?.native(), gradDepth: gDepth?.native(),
      gradMeans: Tensor.from(dst.means, [n, 3]).native(), gradLogScales: Tensor.from(dst.logScales, [n, 3]).native(),
      gradRotations: Tensor.from(dst.rotations, [n, 4]).native(),
      gradOpacityLogits: Tensor.from(dst.opacityLogits, [n]).native(), gradSh: Tensor.from(dst.sh, [n, K, 3]).native(),
    });
    for (const t of [gRgb, gAlpha, gDepth]) t?.dispose();
    addStats(out.stats, s, first);
    first = false;
    if (!direct) {
      for (const key of ['means', 'logScales', 'rotations', 'opacityLogits', 'sh'] as const) {
        const a = out[key], b = dst[key];
        for (let j = 0; j < a.length; ++j) a[j] = a[j]! + b[j]!;
      }
    }
  }
  return out;
}
