// Debugging outputs of an octree (spec/octree.md §6): the non-empty nodes of
// one depth as voxel cubes (only the faces not shared with another non-empty
// node), and as points (cell centres xyz + 0.5, with the depth-D normals and
// features) for PLY.
import { fail } from '../errors.js';
import { writePly, type PlyWriteElement } from '../io/ply.js';
import type { Mesh } from './mesh.js';
import type { Octree } from './octree.js';

function checkDepthSample(octree: Octree, depth: number, sample: number): void {
  if (!Number.isInteger(depth) || depth < 0 || depth > octree.depth)
    fail('ERR_INVALID_ARGUMENT', `depth must be 0..${octree.depth}, got ${depth}`);
  if (!Number.isInteger(sample) || sample < 0 || sample >= octree.batchSize)
    fail('ERR_INVALID_ARGUMENT', `sample must be 0..${octree.batchSize - 1}, got ${sample}`);
}

/** Cell coordinates [n, 3] and signal ranks of the non-empty nodes of one sample at `depth`. */
function occupied(octree: Octree, depth: number, sample: number): { xyz: Int32Array; rank: Int32Array } {
  const xyz = octree.xyz(depth, true), ids = octree.batchIds(depth, true);
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === sample) n++;
  const out = new Int32Array(n * 3), rank = new Int32Array(n);
  for (let i = 0, j = 0; i < ids.length; i++) {
    if (ids[i] !== sample) continue;
    out[3 * j] = xyz[3 * i]!; out[3 * j + 1] = xyz[3 * i + 1]!; out[3 * j + 2] = xyz[3 * i + 2]!;
    rank[j++] = i;
  }
  return { xyz: out, rank };
}

/**
 * The non-empty nodes of `depth` as axis-aligned cubes in [-1, 1]^3: only
 * exposed faces (no neighbour at the same depth), 4 vertices per face with
 * the face's normal (flat shading), two counter-clockwise triangles each.
 */
export function voxelMesh(octree: Octree, depth: number = octree.depth, sample = 0): Mesh {
  checkDepthSample(octree, depth, sample);
  const { xyz } = occupied(octree, depth, sample);
  const S = 1 << depth, M = S + 2;  // packed key with a one-cell margin
  const key = (x: number, y: number, z: number) => (x + 1) + M * ((y + 1) + M * (z + 1));
  const filled = new Set<number>();
  for (let i = 0; i < xyz.length; i += 3) filled.add(key(xyz[i]!, xyz[i + 1]!, xyz[i + 2]!));
  const pos: number[] = [], nrm: number[] = [], idx: number[] = [];
  const h = 2 / S;
  for (let i = 0; i < xyz.length; i += 3) {
    const c = [xyz[i]!, xyz[i + 1]!, xyz[i + 2]!];
    for (let a = 0; a < 3; a++) {
      const u = (a + 1) % 3, v = (a + 2) % 3;  // e_u × e_v = e_a
      for (let s = 0; s < 2; s++) {
        const nb = [...c]; nb[a]! += s ? 1 : -1;
        if (filled.has(key(nb[0]!, nb[1]!, nb[2]!))) continue;
        const quad = s ? [[0, 0], [1, 0], [1, 1], [0, 1]] : [[0, 0], [0, 1], [1, 1], [1, 0]];
        const base = pos.length / 3;
        for (const [du, dv] of quad) {
          const p = [...c]; p[a]! += s; p[u]! += du!; p[v]! += dv!;
          pos.push(p[0]! * h - 1, p[1]! * h - 1, p[2]! * h - 1);
          const n = [0, 0, 0]; n[a] = s ? 1 : -1;
          nrm.push(...n);
        }
        idx.push(base, base + 1, base + 2, base, base + 2, base + 3);
      }
    }
  }
  return { positions: Float32Array.from(pos), normals: Float32Array.from(nrm), indices: Uint32Array.from(idx) };
}

export interface OctreePoints {
  /** [n, 3] cell centres in [-1, 1]^3. */
  positions: Float32Array;
  /** [n, 3] depth-D normals (only at depth D when the octree carries them). */
  normals?: Float32Array;
  /** [n, C] depth-D features. */
  features?: Float32Array;
  featureChannels: number;
}

/** Centres (xyz + 0.5) of the non-empty nodes of `depth`, with the depth-D signals at depth D. */
export function octreePoints(octree: Octree, depth: number = octree.depth, sample = 0): OctreePoints {
  checkDepthSample(octree, depth, sample);
  const { xyz, rank } = occupied(octree, depth, sample);
  const n = rank.length, h = 2 / (1 << depth);
  const positions = new Float32Array(n * 3);
  for (let i = 0; i < n * 3; i++) positions[i] = (xyz[i]! + 0.5) * h - 1;
  const out: OctreePoints = { positions, featureChannels: 0 };
  if (depth === octree.depth) {
    if (octree.normals) {
      const src = octree.normals;
      out.normals = new Float32Array(n * 3);
      for (let i = 0; i < n; i++) out.normals.set(src.subarray(3 * rank[i]!, 3 * rank[i]! + 3), 3 * i);
    }
    const C = octree.featureChannels;
    if (octree.features && C > 0) {
      out.features = new Float32Array(n * C);
      for (let i = 0; i < n; i++) out.features.set(octree.features.subarray(C * rank[i]!, C * rank[i]! + C), C * i);
      out.featureChannels = C;
    }
  }
  return out;
}

/** Binary PLY of octreePoints: float x, y, z [, nx, ny, nz] [, feature_0..C-1]. */
export function octreePointsToPly(p: OctreePoints): Uint8Array {
  const n = p.positions.length / 3;
  const col = (src: Float32Array, stride: number, k: number) => {
    const c = new Float32Array(n);
    for (let i = 0; i < n; i++) c[i] = src[stride * i + k]!;
    return c;
  };
  const el: PlyWriteElement = { name: 'vertex', count: n, columns: [] };
  ['x', 'y', 'z'].forEach((name, k) => el.columns.push({ name, type: 'float32', data: col(p.positions, 3, k) }));
  if (p.normals) ['nx', 'ny', 'nz'].forEach((name, k) => el.columns.push({ name, type: 'float32', data: col(p.normals!, 3, k) }));
  if (p.features) for (let k = 0; k < p.featureChannels; k++) el.columns.push({ name: `feature_${k}`, type: 'float32', data: col(p.features, p.featureChannels, k) });
  return writePly([el], ['octree cell centres (tessera)']);
}
