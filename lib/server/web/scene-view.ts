// Where to look at a scene from: GET /v1/scenes lists each scene with a
// centre and radius, so a client (the web page's orbit view) can frame a
// scene it knows nothing about. Robust to stray Gaussians: the box spans the
// 2nd to 98th percentile of the means on each axis.
import type { GaussianScene } from '../../io/gaussian-scene.js';

export interface SceneView {
  id: string;
  gaussians: number;
  /** Centre of the percentile box, world units (RDF: −y is up). */
  center: [number, number, number];
  /** Half the box's diagonal. */
  radius: number;
}

export function sceneView(id: string, scene: GaussianScene): SceneView {
  const n = scene.count;
  if (n === 0) return { id, gaussians: 0, center: [0, 0, 0], radius: 1 };
  const center: [number, number, number] = [0, 0, 0];
  let diag = 0;
  const axis = new Float32Array(n);
  for (let k = 0; k < 3; k++) {
    for (let i = 0; i < n; i++) axis[i] = scene.means[3 * i + k]!;
    axis.sort();
    const lo = axis[Math.floor(0.02 * (n - 1))]!, hi = axis[Math.ceil(0.98 * (n - 1))]!;
    center[k] = Number.isFinite(lo + hi) ? (lo + hi) / 2 : 0;
    diag += Number.isFinite(hi - lo) ? (hi - lo) ** 2 : 0;
  }
  return { id, gaussians: n, center, radius: Math.max(1e-3, Math.sqrt(diag) / 2) };
}
