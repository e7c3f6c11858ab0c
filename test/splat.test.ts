// 3DGS render and backward through the addon against fixtures made by the
// independent float64 reference (scripts/reference/splat_reference.py).
// Tolerances: the forward blends a few dozen fp32 terms per pixel, so
// ‖out−ref‖/‖ref‖ <= 1e-5; gradients are compared with float64 central
// differences on a smooth scene (every α far from the 1/255 and 0.99
// cut-offs), where fp32 accumulation over ~400 pixels stays below 1e-3.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { splat, TesseraError } from '../lib/index.js';
import type { GaussianScene } from '../lib/io/gaussian-scene.js';

const DIR = join(__dirname, 'fixtures', 'splat');

function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
function f64(b64: string): Float64Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
function i32(b64: string): Int32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
function relError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) { num += (got[i]! - ref[i]!) ** 2; den += ref[i]! ** 2; }
  return Math.sqrt(num / den);
}

interface FixtureScene { degree: number; means: string; logScales: string; rotations: string; opacityLogits: string; sh: string }
interface FixtureCamera { fx: number; fy: number; cx: number; cy: number; width: number; height: number; view: number[] }

function scene(s: FixtureScene, asF64 = false): GaussianScene {
  const dec = asF64 ? (x: string) => Float32Array.from(f64(x)) : f32;
  const opacityLogits = dec(s.opacityLogits);
  return {
    count: opacityLogits.length, shDegree: s.degree, antialiased: false, means: dec(s.means), logScales: dec(s.logScales),
    rotations: dec(s.rotations), opacityLogits, sh: dec(s.sh),
  };
}
const camera = (c: FixtureCamera): splat.PinholeCamera => ({ ...c, worldToCamera: c.view });

describe('splat.render matches the float64 reference', () => {
  const cases = JSON.parse(readFileSync(join(DIR, 'forward.json'), 'utf8')) as {
    mode: splat.SplatMode; background: [number, number, number]; scene: FixtureScene; cameras: FixtureCamera[];
    views: { rgb: string; alpha: string; depth: string; contributors: string }[];
  }[];
  for (const c of cases) {
    const cams = c.cameras.map(camera);
    it(`${c.mode}, SH degree ${c.scene.degree}, ${cams[0]!.width}x${cams[0]!.height}, ${cams.length} cameras`, async () => {
      const s = scene(c.scene);
      const { views, stats } = await splat.render(s, cams, { mode: c.mode, background: c.background });
      expect(stats.gaussians).toBe(s.count);
      expect(stats.invalid).toBe(0);
      views.forEach((v, i) => {
        const ref = c.views[i]!;
        expect(relError(v.rgb.data as Float32Array, f32(ref.rgb))).toBeLessThan(1e-5);
        expect(relError(v.alpha.data as Float32Array, f32(ref.alpha))).toBeLessThan(1e-5);
        expect(relError(v.depth.data as Float32Array, f32(ref.depth))).toBeLessThan(1e-5);
        // Exact except where an α lies within fp32 rounding of 1/255.
        const cnt = v.contributors.data as Int32Array, refCnt = i32(ref.contributors);
        let differ = 0;
        for (let j = 0; j < cnt.length; j++) differ += cnt[j] !== refCnt[j] ? 1 : 0;
        expect(differ).toBeLessThanOrEqual(Math.ceil(cnt.length / 500));
      });
    });
  }

  it('cameras of different sizes are rendered in one call, in order', async () => {
    const c = cases[0]!;
    const small = splat.lookAt([0, 0, -3], [0, 0, 0], { width: 20, height: 10 });
    const cams = [camera(c.cameras[0]!), small, camera(c.cameras[1]!)];
    const { views } = await splat.render(scene(c.scene), cams, { mode: c.mode, background: c.background });
    expect(views.map((v) => [v.width, v.height])).toEqual([[37, 23], [20, 10], [37, 23]]);
    expect(relError(views[2]!.rgb.data as Float32Array, f32(c.views[1]!.rgb))).toBeLessThan(1e-5);
  });

  it('into: the same images written into caller-owned arrays, reused across calls', async () => {
    const c = cases[0]!;
    const s = scene(c.scene), small = splat.lookAt([0, 0, -3], [0, 0, 0], { width: 20, height: 10 });
    const cams = [camera(c.cameras[0]!), small, camera(c.cameras[1]!)];
    const { views: want } = await splat.render(s, cams, { mode: c.mode, background: c.background });
    const into = cams.map((k) => {
      const P = k.width * k.height;
      return { rgb: new Float32Array(3 * P).fill(7), alpha: new Float32Array(P).fill(7), depth: new Float32Array(P).fill(7), contributors: new Int32Array(P).fill(7) };
    });
    for (let round = 0; round < 2; round++) {
      const { views, stats } = await splat.render(s, cams, { mode: c.mode, background: c.background, into });
      expect(stats.invalid).toBe(0);
      views.forEach((v, i) => {
        expect(v.rgb.data).toBe(into[i]!.rgb);
        expect(v.contributors.data).toBe(into[i]!.contributors);
        expect([v.width, v.height]).toEqual([want[i]!.width, want[i]!.height]);
        expect(into[i]!.rgb).toEqual(want[i]!.rgb.data);
        expect(into[i]!.alpha).toEqual(want[i]!.alpha.data);
        expect(into[i]!.depth).toEqual(want[i]!.depth.data);
        expect(into[i]!.contributors).toEqual(want[i]!.contributors.data);
      });
    }
    const P = cams[0]!.width * cams[0]!.height;
    const short = { ...into[0]!, alpha: new Float32Array(P - 1) };
    await expect(splat.render(s, cams[0]!, { into: [short] })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    const wrongType = { ...into[0]!, contributors: new Float32Array(P) } as unknown as splat.RenderTargets;
    await expect(splat.render(s, cams[0]!, { into: [wrongType] })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(splat.render(s, cams, { into: [into[0]!] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('splat.renderBackward matches finite differences of the reference', () => {
  const fx = JSON.parse(readFileSync(join(DIR, 'gradients.json'), 'utf8')) as {
    background: [number, number, number]; scene: FixtureScene; cameras: FixtureCamera[];
    gradRgb: string; gradAlpha: string; gradDepth: string; grads: Record<string, Record<string, string>>;
  };
  for (const mode of ['classic', 'antialiased'] as const) {
    it(mode, async () => {
      const s = scene(fx.scene);
      const grads = [{ rgb: f32(fx.gradRgb), alpha: f32(fx.gradAlpha), depth: f32(fx.gradDepth) }];
      const g = await splat.renderBackward(s, fx.cameras.map(camera), grads, { mode, background: fx.background });
      const ref = fx.grads[mode]!;
      expect(relError(g.means, f64(ref.means!))).toBeLessThan(1e-3);
      expect(relError(g.logScales, f64(ref.log_scales!))).toBeLessThan(1e-3);
      expect(relError(g.rotations, f64(ref.rotations!))).toBeLessThan(1e-3);
      expect(relError(g.opacityLogits, f64(ref.logits!))).toBeLessThan(1e-3);
      expect(relError(g.sh, f64(ref.sh!))).toBeLessThan(1e-3);
    });
  }
});

describe('splat argument handling', () => {
  const base = (): GaussianScene => ({
    count: 3, shDegree: 0, antialiased: false, means: new Float32Array([0, 0, 0, 0.2, 0, 0, NaN, 0, 0]),
    logScales: new Float32Array(9).fill(-2), rotations: new Float32Array([1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
    opacityLogits: new Float32Array(3).fill(1), sh: new Float32Array(9).fill(0.5),
  });
  const cam = splat.lookAt([0, 0, -3], [0, 0, 0], { width: 16, height: 12 });

  it('counts invalid Gaussians (NaN mean, zero quaternion) instead of failing', async () => {
    const { stats, views } = await splat.render(base(), cam);
    expect(stats.invalid).toBe(2);
    expect(stats.visible).toBe(1);
    for (const v of views[0]!.rgb.data as Float32Array) expect(Number.isFinite(v)).toBe(true);
  });

  it('rejects a non-rigid view matrix with ERR_INVALID_ARGUMENT', async () => {
    const bad = { ...cam, worldToCamera: Array.from(cam.worldToCamera).map((v, i) => (i === 0 ? 3 : v)) };
    await expect(splat.render(base(), bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(splat.render(base(), bad)).rejects.toBeInstanceOf(TesseraError);
  });

  it('rejects an SH degree above the scene\'s', async () => {
    await expect(splat.render(base(), cam, { shDegree: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
