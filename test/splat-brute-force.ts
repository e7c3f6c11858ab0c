// A float64 brute-force 3DGS renderer for the tests: no tiles, no global
// sort. Every pixel gathers the Gaussians whose footprint covers it, sorts
// them by (view z, index) and blends them with the reference rules
// (shared/spec/gaussian-splatting.md §1). Written from the spec, sharing no
// code with the native rasterizer or lib/splat.
//
// One deliberate choice: the footprint. The reference (and the fast path)
// blends a Gaussian into every pixel of the 16×16 tiles its 3σ square
// touches; past 3σ a Gaussian can still have α up to 0.99·e^(−4.5) ≈ 0.011 >
// 1/255, so "all Gaussians at every pixel" would differ from the reference
// by design at the rims. The footprint here is therefore the reference's:
// pixel (i, j) sees a Gaussian iff tile (⌊i/16⌋, ⌊j/16⌋) lies in its tile
// rectangle. `footprint: 'all'` drops the rule (for measuring that gap).
import type { GaussianScene } from '../lib/io/gaussian-scene.js';
import type { PinholeCamera } from '../lib/splat/camera.js';

const SH_C0 = 0.28209479177387814, SH_C1 = 0.4886025119029199;
const SH_C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396];
const SH_C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
  1.445305721320277, -0.5900435899266435];
const NEAR = 0.2, DILATION = 0.3, MIN_COMP2 = 0.000025, TILE = 16;

export interface BruteOptions {
  mode: 'classic' | 'antialiased';
  shDegree: number;
  background: readonly [number, number, number];
  footprint?: 'tiles' | 'all';
}

export interface BruteImage { rgb: Float64Array; alpha: Float64Array; depth: Float64Array; contributors: Int32Array }

interface Splat2D { i: number; mx: number; my: number; A: number; B: number; C: number; o: number; rgb: number[]; z: number; rect: number[] }

function shBasis(deg: number, x: number, y: number, z: number): number[] {
  const Y = [SH_C0];
  if (deg >= 1) Y.push(-SH_C1 * y, SH_C1 * z, -SH_C1 * x);
  const xx = x * x, yy = y * y, zz = z * z;
  if (deg >= 2) Y.push(SH_C2[0]! * x * y, SH_C2[1]! * y * z, SH_C2[2]! * (2 * zz - xx - yy), SH_C2[3]! * x * z, SH_C2[4]! * (xx - yy));
  if (deg >= 3) {
    Y.push(SH_C3[0]! * y * (3 * xx - yy), SH_C3[1]! * x * y * z, SH_C3[2]! * y * (4 * zz - xx - yy),
      SH_C3[3]! * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4]! * x * (4 * zz - xx - yy), SH_C3[5]! * z * (xx - yy),
      SH_C3[6]! * x * (xx - 3 * yy));
  }
  return Y;
}

/** Projects Gaussian i (spec §1 steps 1-9); null when skipped, culled or off-screen. */
function project(s: GaussianScene, i: number, cam: PinholeCamera, o: BruteOptions): Splat2D | null {
  const V = Array.from(cam.worldToCamera);
  const m = [0, 1, 2].map((k) => s.means[3 * i + k]!);
  const q = [0, 1, 2, 3].map((k) => s.rotations[4 * i + k]!);
  const ls = [0, 1, 2].map((k) => s.logScales[3 * i + k]!);
  const qq = q.reduce((a, v) => a + v * v, 0);
  if (![...m, ...q, ...ls, s.opacityLogits[i]!].every(Number.isFinite) || !(qq > 1e-24)) return null;
  const [w, x, y, z] = q.map((v) => v / Math.sqrt(qq)) as [number, number, number, number];
  const R = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]];
  const sc = ls.map(Math.exp);
  // Σ = R·S²·Rᵀ
  const S = [0, 1, 2].map((r) => [0, 1, 2].map((c) => R[r]![0]! * R[c]![0]! * sc[0]! ** 2 + R[r]![1]! * R[c]![1]! * sc[1]! ** 2 + R[r]![2]! * R[c]![2]! * sc[2]! ** 2));
  const Wr = [0, 1, 2].map((r) => [V[4 * r]!, V[4 * r + 1]!, V[4 * r + 2]!]);
  const p = [0, 1, 2].map((r) => Wr[r]![0]! * m[0]! + Wr[r]![1]! * m[1]! + Wr[r]![2]! * m[2]! + V[4 * r + 3]!);
  const [px, py, pz] = p as [number, number, number];
  if (!(pz > NEAR)) return null;
  // Guard band 1.3×half-FOV, asymmetric around the principal point (gsplat form).
  const tanX = cam.width / (2 * cam.fx), tanY = cam.height / (2 * cam.fy);
  const ux = Math.min(Math.max(px / pz, -(cam.cx / cam.fx + 0.3 * tanX)), (cam.width - cam.cx) / cam.fx + 0.3 * tanX);
  const uy = Math.min(Math.max(py / pz, -(cam.cy / cam.fy + 0.3 * tanY)), (cam.height - cam.cy) / cam.fy + 0.3 * tanY);
  const J = [[cam.fx / pz, 0, -cam.fx * ux / pz], [0, cam.fy / pz, -cam.fy * uy / pz]];
  const T = [0, 1].map((r) => [0, 1, 2].map((c) => J[r]![0]! * Wr[0]![c]! + J[r]![1]! * Wr[1]![c]! + J[r]![2]! * Wr[2]![c]!));
  const cov2 = (r: number, c: number) => {
    let v = 0;
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) v += T[r]![a]! * S[a]![b]! * T[c]![b]!;
    return v;
  };
  const a0 = cov2(0, 0), b0 = cov2(0, 1), c0 = cov2(1, 1);
  const a = a0 + DILATION, b = b0, c = c0 + DILATION, det = a * c - b * b;
  if (!(det > 0)) return null;
  let op = 1 / (1 + Math.exp(-s.opacityLogits[i]!));
  if (o.mode === 'antialiased') op *= Math.sqrt(Math.max(MIN_COMP2, (a0 * c0 - b0 * b0) / det));
  const mx = cam.fx * px / pz + cam.cx, my = cam.fy * py / pz + cam.cy;
  const mid = (a + c) / 2, radius = Math.ceil(3 * Math.sqrt(mid + Math.sqrt(Math.max(0.1, mid * mid - det))));
  const tilesX = Math.ceil(cam.width / TILE), tilesY = Math.ceil(cam.height / TILE);
  const clampT = (v: number, lim: number) => Math.min(Math.max(Math.floor(v / TILE), 0), lim);
  const rect = [clampT(mx - 0.5 - radius, tilesX), clampT(mx - 0.5 + radius + TILE - 1, tilesX),
    clampT(my - 0.5 - radius, tilesY), clampT(my - 0.5 + radius + TILE - 1, tilesY)];
  if (rect[0]! >= rect[1]! || rect[2]! >= rect[3]!) return null;
  // Colour: SH at the direction from the camera centre, +0.5, clamped at 0.
  const campos = [0, 1, 2].map((k) => -(Wr[0]![k]! * V[3]! + Wr[1]![k]! * V[7]! + Wr[2]![k]! * V[11]!));
  const d = m.map((v, k) => v - campos[k]!), dl = Math.hypot(d[0]!, d[1]!, d[2]!);
  const Y = shBasis(o.shDegree, d[0]! / dl, d[1]! / dl, d[2]! / dl);
  const K = (s.shDegree + 1) ** 2;
  const rgb = [0, 1, 2].map((ch) => Math.max(0, 0.5 + Y.reduce((acc, y, k) => acc + y * s.sh[3 * (K * i + k) + ch]!, 0)));
  return { i, mx, my, A: c / det, B: -b / det, C: a / det, o: op, rgb, z: pz, rect };
}

export function bruteForceRender(s: GaussianScene, cam: PinholeCamera, o: BruteOptions): BruteImage {
  const { width: W, height: H } = cam;
  const splats: Splat2D[] = [];
  for (let i = 0; i < s.count; i++) {
    const g = project(s, i, cam, o);
    if (g) splats.push(g);
  }
  const rgb = new Float64Array(3 * W * H), alpha = new Float64Array(W * H), depth = new Float64Array(W * H);
  const contributors = new Int32Array(W * H);
  for (let j = 0; j < H; j++) {
    for (let i = 0; i < W; i++) {
      const tx = Math.floor(i / TILE), ty = Math.floor(j / TILE);
      const list = splats.filter((g) => o.footprint === 'all' || (tx >= g.rect[0]! && tx < g.rect[1]! && ty >= g.rect[2]! && ty < g.rect[3]!));
      list.sort((p, q) => p.z - q.z || p.i - q.i);
      let T = 1, N = 0, n = 0;
      const C = [0, 0, 0];
      for (const g of list) {
        const dx = g.mx - (i + 0.5), dy = g.my - (j + 0.5);
        const power = -0.5 * (g.A * dx * dx + g.C * dy * dy) - g.B * dx * dy;
        if (power > 0) continue;
        const a = Math.min(0.99, g.o * Math.exp(power));
        if (a < 1 / 255) continue;
        const Tn = T * (1 - a);
        if (Tn < 1e-4) break;
        for (let c = 0; c < 3; c++) C[c] += g.rgb[c]! * a * T;
        N += g.z * a * T;
        T = Tn;
        n++;
      }
      const p = j * W + i;
      for (let c = 0; c < 3; c++) rgb[3 * p + c] = C[c]! + T * o.background[c]!;
      alpha[p] = 1 - T;
      depth[p] = alpha[p]! > 0 ? N / alpha[p]! : 0;
      contributors[p] = n;
    }
  }
  return { rgb, alpha, depth, contributors };
}

/** PSNR in dB of `got` against `ref` for a signal of peak `peak`. */
export function psnr(got: ArrayLike<number>, ref: ArrayLike<number>, peak = 1): number {
  let se = 0;
  for (let k = 0; k < ref.length; k++) se += (got[k]! - ref[k]!) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((peak * peak * ref.length) / se);
}
