// `tessera render <scene> --camera <cam.json> --out <img.png>`: renders a 3DGS
// scene (.ply, .splat, .spz) from a camera file on the CPU rasterizer, with
// optional depth and alpha images, or an orbit of N frames around the scene.
import { mkdirSync } from 'node:fs';
import { dirname, extname } from 'node:path';

import sharp from 'sharp';

import { TesseraError } from '../errors.js';
import type { GaussianScene } from '../io/gaussian-scene.js';
import { readScene } from '../io/scene-file.js';
import { readCameraFile } from '../splat/camera-file.js';
import { lookAt, type PinholeCamera } from '../splat/camera.js';
import { render, type RenderedView } from '../splat/render.js';
import { parseArgs, type Command } from './args.js';

const DEFAULT_DEPTH_SCALE = 1000;

function intFlag(v: string | true | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || !Number.isInteger(n) || n < min) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer >= ${min}, got ${String(v)}`);
  return n;
}

function pathFlag(v: string | true | undefined, name: string): string | undefined {
  if (v === true) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} needs a path`);
  if (v !== undefined && extname(v).toLowerCase() !== '.png') throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must name a .png file, got ${v}`);
  return v;
}

async function writePng(path: string, pixels: Uint8Array | Uint16Array, width: number, height: number, channels: 1 | 3): Promise<void> {
  try {
    mkdirSync(dirname(path), { recursive: true });
    // A Uint16Array makes sharp read 16-bit samples; grey16 keeps them 16-bit in
    // the PNG, b-w keeps one 8-bit channel (sharp would widen it to RGB).
    const img = sharp(pixels, { raw: { width, height, channels } });
    await (channels === 3 ? img : img.toColourspace(pixels instanceof Uint16Array ? 'grey16' : 'b-w')).png().toFile(path);
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(e as Error).message}`);
  }
}

/** rgb [H,W,3] in [0,1] → 8-bit, rounded as lib/io/image.ts does (·255 + 0.5, clamp, truncate). */
function quantise8(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Math.min(255, Math.max(0, Math.floor(v[i]! * 255 + 0.5)));
  return out;
}

/** Depth z (view-space, scene units) → round(z·scale), saturating at 65535; 0 = nothing blended. */
export function quantiseDepth(depth: Float32Array, scale: number): { pixels: Uint16Array; min: number; max: number; saturated: number } {
  const pixels = new Uint16Array(depth.length);
  let min = Infinity, max = 0, saturated = 0;
  for (let i = 0; i < depth.length; i++) {
    const z = depth[i]!;
    if (!(z > 0)) continue;
    min = Math.min(min, z);
    max = Math.max(max, z);
    const q = Math.round(z * scale);
    if (q > 65535) saturated++;
    pixels[i] = Math.min(65535, Math.max(1, q));
  }
  return { pixels, min: Number.isFinite(min) ? min : 0, max, saturated };
}

/** Per-axis median of the valid means: the orbit's centre (robust to the floaters fitted scenes carry). */
export function sceneCentre(s: GaussianScene): [number, number, number] {
  const c: [number, number, number] = [0, 0, 0];
  for (let k = 0; k < 3; k++) {
    const v: number[] = [];
    for (let i = 0; i < s.count; i++) if (Number.isFinite(s.means[3 * i + k]!)) v.push(s.means[3 * i + k]!);
    if (v.length === 0) continue;
    const a = Float64Array.from(v).sort();
    c[k] = a[a.length >> 1]!;
  }
  return c;
}

/**
 * N cameras with the given camera's intrinsics on the circle that camera's
 * centre sweeps when rotated about the axis through `centre` along the
 * camera's up direction (−y row of its rotation); frame k is rotated by
 * 2πk/N (right-handed about up) and looks at the centre with the same up.
 */
export function orbitAround(cam: PinholeCamera, centre: readonly number[], n: number): PinholeCamera[] {
  const V = cam.worldToCamera;
  const row = (r: number) => [V[4 * r]!, V[4 * r + 1]!, V[4 * r + 2]!];
  const up = row(1).map((v) => -v);
  const eye = [0, 1, 2].map((k) => -(V[k]! * V[3]! + V[4 + k]! * V[7]! + V[8 + k]! * V[11]!));
  const rel = eye.map((v, k) => v - centre[k]!);
  const h = rel[0]! * up[0]! + rel[1]! * up[1]! + rel[2]! * up[2]!;
  const a = rel.map((v, k) => v - h * up[k]!);  // in-plane offset; its rotation gives the circle
  const b = [up[1]! * a[2]! - up[2]! * a[1]!, up[2]! * a[0]! - up[0]! * a[2]!, up[0]! * a[1]! - up[1]! * a[0]!];
  if (!(Math.hypot(a[0]!, a[1]!, a[2]!) > 1e-9))
    throw new TesseraError('ERR_INVALID_ARGUMENT', '--orbit: the camera sits on the orbit axis through the scene centre (no circle to follow)');
  const cams: PinholeCamera[] = [];
  for (let k = 0; k < n; k++) {
    const t = (2 * Math.PI * k) / n;
    const e = [0, 1, 2].map((j) => centre[j]! + h * up[j]! + Math.cos(t) * a[j]! + Math.sin(t) * b[j]!) as [number, number, number];
    const view = lookAt(e, centre as [number, number, number], { width: cam.width, height: cam.height, up: up as [number, number, number] }).worldToCamera;
    cams.push({ ...cam, worldToCamera: view });
  }
  return cams;
}

/** `out.png` → `out-0007.png` for orbit frame 7. */
export function framePath(path: string, k: number): string {
  const ext = extname(path);
  return `${path.slice(0, path.length - ext.length)}-${String(k).padStart(4, '0')}${ext}`;
}

export const renderCommand: Command = {
  name: 'render',
  summary: 'render a 3DGS scene (.ply, .splat, .spz) from a camera file to PNG (rgb, depth, alpha)',
  usage: `Usage: tessera render <scene.ply|.splat|.spz> --camera <cam.json> --out <img.png> [--camera-index i]
                      [--antialiased] [--sh-degree d] [--depth <depth.png>] [--depth-scale s]
                      [--alpha <alpha.png>] [--orbit N]

The camera file holds one camera {"width","height","fx","fy","cx","cy",
"viewMatrix":[16 numbers, row-major, world-to-camera, x right, y down,
z forward],"background":[r,g,b]}, an array of them, or the cameras.json of
the 3DGS training code. Pixel (i, j) is sampled at its centre (i+0.5, j+0.5),
u = fx·x/z + cx.

Outputs (all PNG):
  --out      8-bit RGB: colour + T·background, round(255·v) clamped to [0, 255].
  --depth    16-bit grey: expected view-space depth Σ(α·T·z)/Σ(α·T) times the
             depth scale (default 1000: millimetres for a scene in metres, the
             TUM/ScanNet/Open3D convention), rounded, saturating at 65535;
             0 = no Gaussian blended there. The depth range and the scale are
             printed on stderr.
  --alpha    8-bit grey: coverage 1 − T_final, round(255·alpha).

Options:
  --camera-index i  which camera of an array (default 0)
  --antialiased     antialiased mode (opacity compensation, Mip-Splatting style);
                    default: the mode the scene file records, else classic
  --sh-degree d     evaluate SH bands up to d (0..3); default the scene's (at most 3);
                    a d above the scene's degree renders with the scene's
  --depth-scale s   depth PNG units per scene unit (default ${DEFAULT_DEPTH_SCALE})
  --orbit N         N frames on the circle around the scene centre (per-axis median
                    of the means) through the camera's centre, about the camera's up
                    axis, each looking at the centre; frame k is <out>-kkkk.png
                    (and likewise for --depth and --alpha), k = 0..N-1
  --help            show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['camera', 'camera-index', 'sh-degree', 'out', 'depth', 'alpha', 'orbit', 'depth-scale']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const [scenePath, extra] = args.positional;
    const camPath = args.flags.get('camera');
    const out = pathFlag(args.flags.get('out'), 'out');
    if (!scenePath || extra !== undefined || typeof camPath !== 'string' || out === undefined) { console.error(this.usage); return 2; }
    const depthOut = pathFlag(args.flags.get('depth'), 'depth'), alphaOut = pathFlag(args.flags.get('alpha'), 'alpha');
    const index = intFlag(args.flags.get('camera-index'), 'camera-index', 0) ?? 0;
    const shFlag = intFlag(args.flags.get('sh-degree'), 'sh-degree', 0);
    if (shFlag !== undefined && shFlag > 3) throw new TesseraError('ERR_INVALID_ARGUMENT', `--sh-degree must be 0..3, got ${shFlag}`);
    const orbit = intFlag(args.flags.get('orbit'), 'orbit', 1);
    const ds = args.flags.get('depth-scale');
    const depthScale = ds === undefined ? DEFAULT_DEPTH_SCALE : Number(ds);
    if (!(depthScale > 0) || !Number.isFinite(depthScale)) throw new TesseraError('ERR_INVALID_ARGUMENT', `--depth-scale must be a positive number, got ${String(ds)}`);

    const cams = readCameraFile(camPath);
    if (index >= cams.length) throw new TesseraError('ERR_INVALID_ARGUMENT', `--camera-index ${index}: ${camPath} holds ${cams.length} camera(s)`);
    const data = readScene(scenePath);
    if (data.kind !== 'gaussians') throw new TesseraError('ERR_FORMAT', `${scenePath} is a point cloud, not a Gaussian scene`);
    const scene = data.scene;
    if (scene.count === 0) throw new TesseraError('ERR_FORMAT', `${scenePath} holds no Gaussians`);
    const shDegree = Math.min(shFlag ?? 3, scene.shDegree, 3);
    const { camera, background = [0, 0, 0] } = cams[index]!;
    const views = orbit === undefined ? [camera] : orbitAround(camera, sceneCentre(scene), orbit);
    const paths = (p: string | undefined, k: number) => (p === undefined ? undefined : orbit === undefined ? p : framePath(p, k));

    const t0 = performance.now();
    const mode = args.flags.has('antialiased') ? 'antialiased' : undefined;
    // One camera per call: an orbit's frames are written as they come, memory
    // stays one frame, and every frame renders into the same output arrays
    // (writeView is done with them before the next frame).
    let frames = 0;
    const P = camera.width * camera.height;
    const into = [{ rgb: new Float32Array(3 * P), alpha: new Float32Array(P), depth: new Float32Array(P), contributors: new Int32Array(P) }];
    for (const [k, cam] of views.entries()) {
      const { views: [v], stats } = await render(scene, cam, { mode, shDegree, background, into });
      await writeView(v!, paths(out, k)!, paths(depthOut, k), paths(alphaOut, k), depthScale);
      if (stats.invalid > 0 && k === 0) console.error(`tessera render: skipped ${stats.invalid} invalid Gaussians (NaN/Inf values or zero quaternions)`);
      frames++;
    }
    const ms = performance.now() - t0;
    console.log(`rendered ${scene.count} Gaussians (SH ${shDegree}, ${mode ?? (scene.antialiased ? 'antialiased' : 'classic')}) ` +
      `${frames} frame(s) at ${camera.width}x${camera.height} in ${ms.toFixed(0)} ms -> ${orbit === undefined ? out : framePath(out, 0) + ' ...'}`);
    return 0;
  },
};

async function writeView(v: RenderedView, out: string, depthOut: string | undefined, alphaOut: string | undefined, depthScale: number): Promise<void> {
  await writePng(out, quantise8(v.rgb.data as Float32Array), v.width, v.height, 3);
  if (depthOut !== undefined) {
    const d = quantiseDepth(v.depth.data as Float32Array, depthScale);
    await writePng(depthOut, d.pixels, v.width, v.height, 1);
    console.error(`tessera render: ${depthOut}: depth × ${depthScale}, range ${d.min.toPrecision(4)}..${d.max.toPrecision(4)} scene units` +
      (d.saturated ? `, ${d.saturated} pixels saturated at 65535 (use a smaller --depth-scale)` : ''));
  }
  if (alphaOut !== undefined) await writePng(alphaOut, quantise8(v.alpha.data as Float32Array), v.width, v.height, 1);
}
