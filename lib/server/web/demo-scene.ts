// The demo scene `tessera serve` renders when it is given no scene: a mosaic
// floor of flat tiles (tesserae) under a sphere, a torus and a small stack of
// cubes, all procedural Gaussians (about 3,000), so /v1/render and the web
// page's orbit view work with no file. The frame is the INRIA/COLMAP RDF
// one the renderer uses: −y is up; the floor is the plane y = FLOOR_Y.
import { emptyScene, SH_C0, type GaussianScene } from '../../io/gaussian-scene.js';
import { SeededRandom } from '../../splat/random.js';

/** The floor's height (y grows downwards) and the point orbits look at. */
export const FLOOR_Y = 0.45;
export const DEMO_TARGET: [number, number, number] = [0, 0.05, 0];

interface Splat { p: [number, number, number]; s: [number, number, number]; rgb: [number, number, number]; a: number; q?: [number, number, number, number] }

/** HSV (h in turns) to RGB in [0, 1]. */
function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number): number => {
    const k = (n + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [f(5), f(3), f(1)];
}

export function demoScene(): GaussianScene {
  const rng = new SeededRandom(7);
  const splats: Splat[] = [];
  // Mosaic floor: 28×28 tiles in [−1.4, 1.4]², rings of colour around the centre, grout between tiles.
  const N = 28, span = 2.8, tile = span / N;
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const x = -span / 2 + (i + 0.5) * tile, z = -span / 2 + (j + 0.5) * tile;
      const r = Math.hypot(x, z), ring = Math.floor(r / 0.28);
      const hue = ((ring * 0.13 + (Math.atan2(z, x) / (2 * Math.PI) + 1) * (ring % 2 ? 0.05 : 0)) % 1 + 1) % 1;
      const rgb = hsv(hue, 0.55 + 0.2 * rng.uniform(), 0.55 + 0.35 * rng.uniform());
      splats.push({ p: [x, FLOOR_Y, z], s: [tile * 0.36, 0.004, tile * 0.36], rgb, a: 0.97 });
    }
  }
  // A sphere: Fibonacci points on its surface, coloured by height.
  const sphere = { c: [-0.5, FLOOR_Y - 0.36, -0.2] as const, r: 0.34 }, nS = 900;
  for (let k = 0; k < nS; k++) {
    const y = 1 - (2 * (k + 0.5)) / nS, ring = Math.sqrt(1 - y * y), phi = k * Math.PI * (3 - Math.sqrt(5));
    const n: [number, number, number] = [ring * Math.cos(phi), y, ring * Math.sin(phi)];
    splats.push({
      p: [sphere.c[0] + sphere.r * n[0], sphere.c[1] + sphere.r * n[1], sphere.c[2] + sphere.r * n[2]],
      s: [0.035, 0.035, 0.035], rgb: hsv(0.58 + 0.08 * y, 0.7, 0.6 + 0.35 * (1 - y) / 2), a: 0.9,
    });
  }
  // A torus standing upright, facing the x axis.
  const torus = { c: [0.55, FLOOR_Y - 0.42, 0.25] as const, R: 0.3, r: 0.1 };
  for (let a = 0; a < 64; a++) {
    for (let b = 0; b < 14; b++) {
      const u = (2 * Math.PI * a) / 64, v = (2 * Math.PI * b) / 14;
      const rr = torus.R + torus.r * Math.cos(v);
      splats.push({
        p: [torus.c[0] + torus.r * Math.sin(v), torus.c[1] + rr * Math.sin(u), torus.c[2] + rr * Math.cos(u)],
        s: [0.03, 0.03, 0.03], rgb: hsv(0.1 + 0.03 * Math.cos(v), 0.8, 0.75 + 0.2 * Math.cos(v)), a: 0.9,
      });
    }
  }
  // Three cubes stacked, each face a grid of flat squares.
  const cubes = [{ c: [0.1, FLOOR_Y - 0.15, -0.75], h: 0.15, hue: 0.95 }, { c: [0.1, FLOOR_Y - 0.42, -0.75], h: 0.12, hue: 0.33 }, { c: [0.42, FLOOR_Y - 0.1, -0.6], h: 0.1, hue: 0.75 }];
  for (const cube of cubes) {
    const g = 5, step = (2 * cube.h) / g;
    for (let axis = 0; axis < 3; axis++) {
      for (const sign of [-1, 1]) {
        for (let i = 0; i < g; i++) {
          for (let j = 0; j < g; j++) {
            const p: [number, number, number] = [0, 0, 0], s: [number, number, number] = [step * 0.42, step * 0.42, step * 0.42];
            const u = (axis + 1) % 3, w = (axis + 2) % 3;
            p[axis] = cube.c[axis]! + sign * cube.h;
            p[u] = cube.c[u]! - cube.h + (i + 0.5) * step;
            p[w] = cube.c[w]! - cube.h + (j + 0.5) * step;
            s[axis] = 0.004;
            const shade = axis === 1 ? (sign < 0 ? 0.95 : 0.5) : 0.7 + 0.12 * sign;
            splats.push({ p, s, rgb: hsv(cube.hue, 0.65, shade), a: 0.98 });
          }
        }
      }
    }
  }
  const scene = emptyScene(splats.length, 0);
  splats.forEach((g, i) => {
    scene.means.set(g.p, 3 * i);
    scene.logScales.set(g.s.map(Math.log), 3 * i);
    scene.rotations.set(g.q ?? [1, 0, 0, 0], 4 * i);
    scene.opacityLogits[i] = Math.log(g.a / (1 - g.a));
    scene.sh.set(g.rgb.map((c) => (c - 0.5) / SH_C0), 3 * i);
  });
  return scene;
}
