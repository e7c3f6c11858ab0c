// A synthetic scene for fitting tests and examples: random Gaussians in a
// ball, seen by cameras spread evenly over a sphere around it.
import { emptyScene, SH_C0, type GaussianScene } from '../io/gaussian-scene.js';
import { lookAt, type PinholeCamera } from './camera.js';
import type { PosedImage } from './fit.js';
import { SeededRandom } from './random.js';
import { render } from './render.js';

export interface SyntheticSceneOptions {
  count?: number;
  /** Radius of the ball holding the means (default 1). */
  radius?: number;
  shDegree?: number;
  seed?: number;
}

/**
 * Random Gaussians: means uniform in a ball, axis scales log-uniform in
 * [0.04, 0.2]·radius, random rotations, opacities in [0.5, 0.95], colours
 * uniform in [0, 1] with small view-dependent SH terms (|c| <= 0.1).
 */
export function syntheticScene(o: SyntheticSceneOptions = {}): GaussianScene {
  const n = o.count ?? 300, r = o.radius ?? 1, deg = o.shDegree ?? 0;
  const rng = new SeededRandom(o.seed ?? 1);
  const s = emptyScene(n, deg);
  const K = (deg + 1) ** 2;
  for (let i = 0; i < n; i++) {
    let x: number, y: number, z: number;
    do { x = rng.range(-1, 1); y = rng.range(-1, 1); z = rng.range(-1, 1); } while (x * x + y * y + z * z > 1);
    s.means.set([x * r, y * r, z * r], 3 * i);
    for (let k = 0; k < 3; k++) s.logScales[3 * i + k] = Math.log(r * rng.range(0.04, 0.2));
    const q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    const qn = Math.hypot(...q);
    s.rotations.set(q.map((v) => v / qn), 4 * i);
    const a = rng.range(0.5, 0.95);
    s.opacityLogits[i] = Math.log(a / (1 - a));
    for (let c = 0; c < 3; c++) s.sh[3 * K * i + c] = (rng.uniform() - 0.5) / SH_C0;
    for (let k = 1; k < K; k++) for (let c = 0; c < 3; c++) s.sh[3 * (K * i + k) + c] = rng.range(-0.1, 0.1);
  }
  return s;
}

/**
 * `count` cameras looking at the origin from distance `distance`, spread by a
 * Fibonacci lattice over latitudes within ±60° (away from the poles, where
 * the default up vector would be parallel to the view direction).
 */
export function orbitCameras(count: number, distance: number, size: number, fovY = Math.PI / 3): PinholeCamera[] {
  const golden = Math.PI * (3 - Math.sqrt(5));
  const cams: PinholeCamera[] = [];
  for (let i = 0; i < count; i++) {
    const h = Math.sin((Math.PI / 3) * (count === 1 ? 0 : (2 * i) / (count - 1) - 1));  // height on the unit sphere
    const ring = Math.sqrt(1 - h * h), phi = i * golden;
    // −y is up (RDF world), so the camera height goes along −y.
    const eye: [number, number, number] = [distance * ring * Math.cos(phi), -distance * h, distance * ring * Math.sin(phi)];
    cams.push(lookAt(eye, [0, 0, 0], { width: size, height: size, fovY }));
  }
  return cams;
}

/** Renders the scene from each camera into posed training images. */
export async function renderViews(scene: GaussianScene, cameras: readonly PinholeCamera[],
  background: [number, number, number] = [0, 0, 0]): Promise<PosedImage[]> {
  const { views } = await render(scene, cameras, { background });
  return views.map((v, i) => ({ camera: cameras[i]!, rgb: (v.rgb.data as Float32Array).slice() }));
}
