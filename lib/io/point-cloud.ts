// Ordinary point clouds in PLY (ascii or binary), with optional normals and colours.
import { TesseraError } from '../errors.js';
import { findElement, writePly, type PlyFile, type PlyWriteElement } from './ply.js';

export interface PointCloud {
  count: number;
  positions: Float32Array;  // [N, 3]
  normals?: Float32Array;   // [N, 3]
  colors?: Uint8Array;      // [N, 3] RGB 0..255
}

export function pointCloudFromPly(ply: PlyFile, what: string): PointCloud {
  const v = findElement(ply, 'vertex');
  if (!v) throw new TesseraError('ERR_FORMAT', `${what}: PLY has no vertex element`);
  for (const a of ['x', 'y', 'z']) if (!v.columns.has(a)) throw new TesseraError('ERR_FORMAT', `${what}: vertex element lacks ${a}`);
  const N = v.count;
  const interleave = (names: string[]): Float32Array => {
    const out = new Float32Array(N * 3);
    names.forEach((n, a) => { const c = v.columns.get(n)!; for (let i = 0; i < N; ++i) out[3 * i + a] = c[i]!; });
    return out;
  };
  const pc: PointCloud = { count: N, positions: interleave(['x', 'y', 'z']) };
  if (['nx', 'ny', 'nz'].every((n) => v.columns.has(n))) pc.normals = interleave(['nx', 'ny', 'nz']);
  const rgb = ['red', 'green', 'blue'];
  if (rgb.every((n) => v.columns.has(n))) {
    const floaty = rgb.some((n) => v.columns.get(n) instanceof Float32Array || v.columns.get(n) instanceof Float64Array);
    pc.colors = new Uint8Array(N * 3);
    rgb.forEach((n, a) => {
      const c = v.columns.get(n)!;
      for (let i = 0; i < N; ++i) pc.colors![3 * i + a] = Math.min(255, Math.max(0, Math.round(floaty ? c[i]! * 255 : c[i]!)));
    });
  }
  return pc;
}

export function pointCloudToPly(pc: PointCloud): Uint8Array {
  const N = pc.count;
  if (pc.positions.length !== 3 * N) throw new TesseraError('ERR_SHAPE', `point cloud positions hold ${pc.positions.length} values for ${N} points`);
  const pick = (src: ArrayLike<number>, a: number): Float32Array => {
    const out = new Float32Array(N);
    for (let i = 0; i < N; ++i) out[i] = src[3 * i + a]!;
    return out;
  };
  const el: PlyWriteElement = { name: 'vertex', count: N, columns: [] };
  ['x', 'y', 'z'].forEach((n, a) => el.columns.push({ name: n, type: 'float32', data: pick(pc.positions, a) }));
  if (pc.normals) ['nx', 'ny', 'nz'].forEach((n, a) => el.columns.push({ name: n, type: 'float32', data: pick(pc.normals!, a) }));
  if (pc.colors) ['red', 'green', 'blue'].forEach((n, a) => {
    const c = new Uint8Array(N);
    for (let i = 0; i < N; ++i) c[i] = pc.colors![3 * i + a]!;
    el.columns.push({ name: n, type: 'uint8', data: c });
  });
  return writePly([el]);
}
