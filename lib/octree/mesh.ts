// Sparse marching cubes on an octree (spec/octree.md §6, issue 7 part 5).
//
// Implicit function: a weighted point-to-plane signed distance built from the
// octree's depth-D signals (the mean point of each non-empty leaf, in cell
// units, and its normalised normal). At a lattice corner c of depth D
//   f(c) = Σ_i w_i · dot(c - p_i, n_i) / Σ_i w_i,   w_i = (1 - |c - p_i|²/r²)²
// over the leaves whose point lies within r cells of c (default r = 2). f is
// negative inside (normals point outwards). It is evaluated only at corners
// within r of some leaf point: nothing is dense, the work and memory scale
// with the number of leaves, not with (2^D)³.
//
// Cells: every depth-D cell whose 8 corners all carry a value. Far from the
// points (distance ~r) |f| is about the distance, so the zero set stays inside
// that region and the surface closes; `boundaryEdges` in the result counts any
// edge left open (0 for a closed surface).
//
// Case table: generated here (not copied) from one rule per cube face. A face
// whose corners change sign twice gets one segment; an ambiguous face (signs
// alternate) always separates its negative corners. The rule depends only on
// the face's own four corners, so the two cells that share a face cut it the
// same way, and the mesh is watertight. Segments are directed so that the
// negative side lies to the left of (q - p) × F (F = the face's outward
// normal); chained through the crossing edges they form closed loops whose
// right-handed normal points from negative to positive (outwards), and each
// loop is fanned into triangles. Vertices are keyed by lattice edge, so the
// cells around an edge share one vertex (welded by construction).
//
// Speed (TypeScript, one thread, this shared 2-core machine at load ~6): a
// sphere of radius 0.8 from 1M points at depth 8 (173k leaves, 518k corners,
// 395k triangles) in ~1.1 s; depth 9 (580k leaves) ~3 s; depth 10 from 2M
// points (1.8M leaves, 8.2M corners instead of the dense 1025^3 = 1.08G,
// 6.3M triangles, closed) ~15-18 s and ~1.9 GB RSS. The native twin
// (marchingCubesAsync -> native/cpu/octree/meshing.cpp, same mesh bit for
// bit) takes ~0.5 s at depth 8 and ~5-9 s at depth 10 on the same loaded
// machine: both are bound by random access into the corner hash.
import { fail } from '../errors.js';
import { native } from '../native.js';
import type { Octree } from './octree.js';

export interface Mesh {
  /** [V, 3] float32, world coordinates ([-1, 1]^3 box of the octree). */
  positions: Float32Array;
  /** [V, 3] unit normals (outward), or undefined. */
  normals?: Float32Array;
  /** [T, 3] triangle vertex indices, counter-clockwise seen from outside. */
  indices: Uint32Array;
}

export interface MarchingCubesOptions {
  /** Sample (batch id) to mesh; default 0. */
  sample?: number;
  /** Support radius of the SDF in depth-D cells (1..4); default 2. */
  radius?: number;
}

export interface MarchingCubesResult {
  mesh: Mesh;
  /** Leaves (points) used, corners evaluated, cells marched, cells that produced triangles. */
  stats: { leaves: number; corners: number; cells: number; surfaceCells: number; boundaryEdges: number };
}

// ---- the case table ----------------------------------------------------------

// Corner i of a cube: x = bit 0, y = bit 1, z = bit 2. Edge a·4 + k runs along
// axis a from the k-th corner with bit a clear (in increasing corner order).
const EDGE_FROM: number[] = [], EDGE_AXIS: number[] = [];
for (let a = 0; a < 3; a++) for (let c = 0; c < 8; c++) if (!(c & (1 << a))) { EDGE_FROM.push(c); EDGE_AXIS.push(a); }
const EDGE_TO = EDGE_FROM.map((c, e) => c | (1 << EDGE_AXIS[e]!));
function edgeOf(c0: number, c1: number): number {
  for (let e = 0; e < 12; e++) if ((EDGE_FROM[e] === c0 && EDGE_TO[e] === c1) || (EDGE_FROM[e] === c1 && EDGE_TO[e] === c0)) return e;
  throw new Error(`corners ${c0} and ${c1} share no edge`);
}
const cornerPos = (c: number): [number, number, number] => [c & 1, (c >> 1) & 1, (c >> 2) & 1];
const edgeMid = (e: number): [number, number, number] => {
  const p = cornerPos(EDGE_FROM[e]!), q = cornerPos(EDGE_TO[e]!);
  return [(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, (p[2] + q[2]) / 2];
};

/** loops[case] = closed loops of edge ids; case bit i set = corner i negative (inside). */
export const MC_LOOPS: readonly (readonly (readonly number[])[])[] = buildTable();

function buildTable(): number[][][] {
  // Faces: axis a, side s; corners in cyclic order over the other two axes.
  const faces: { corners: number[]; normal: [number, number, number] }[] = [];
  for (let a = 0; a < 3; a++) {
    const u = (a + 1) % 3, v = (a + 2) % 3;
    for (let s = 0; s < 2; s++) {
      const base = s << a;
      const corners = [base, base | (1 << u), base | (1 << u) | (1 << v), base | (1 << v)];
      const normal: [number, number, number] = [0, 0, 0];
      normal[a] = s ? 1 : -1;
      faces.push({ corners, normal });
    }
  }
  const table: number[][][] = [];
  for (let cs = 0; cs < 256; cs++) {
    const neg = (c: number) => ((cs >> c) & 1) === 1;
    const next = new Map<number, number>();
    const add = (e0: number, e1: number, inside: number, F: [number, number, number]) => {
      const p = edgeMid(e0), q = edgeMid(e1), n = cornerPos(inside);
      const d = [q[0] - p[0], q[1] - p[1], q[2] - p[2]];
      const x = [d[1]! * F[2] - d[2]! * F[1], d[2]! * F[0] - d[0]! * F[2], d[0]! * F[1] - d[1]! * F[0]];
      const side = x[0]! * (n[0] - p[0]) + x[1]! * (n[1] - p[1]) + x[2]! * (n[2] - p[2]);
      const [from, to] = side > 0 ? [e0, e1] : [e1, e0];
      if (next.has(from)) throw new Error(`case ${cs}: edge ${from} starts two segments`);
      next.set(from, to);
    };
    for (const f of faces) {
      const q = f.corners;
      const cross: number[] = [];
      for (let i = 0; i < 4; i++) if (neg(q[i]!) !== neg(q[(i + 1) % 4]!)) cross.push(i);
      if (cross.length === 2) {
        const inside = q.find(neg)!;
        add(edgeOf(q[cross[0]!]!, q[(cross[0]! + 1) % 4]!), edgeOf(q[cross[1]!]!, q[(cross[1]! + 1) % 4]!), inside, f.normal);
      } else if (cross.length === 4) {
        // Ambiguous face: cut off each negative corner on its own.
        for (let i = 0; i < 4; i++) if (neg(q[i]!)) add(edgeOf(q[(i + 3) % 4]!, q[i]!), edgeOf(q[i]!, q[(i + 1) % 4]!), q[i]!, f.normal);
      }
    }
    const loops: number[][] = [];
    const seen = new Set<number>();
    for (const start of next.keys()) {
      if (seen.has(start)) continue;
      const loop: number[] = [];
      for (let e = start; !seen.has(e); e = next.get(e)!) {
        if (!next.has(e)) throw new Error(`case ${cs}: edge ${e} ends a segment but starts none`);
        seen.add(e);
        loop.push(e);
      }
      if (loop.length < 3) throw new Error(`case ${cs}: loop of ${loop.length} edges`);
      loops.push(loop);
    }
    table.push(loops);
  }
  return table;
}

// ---- a corner hash (open addressing over packed lattice coordinates) ---------

class CornerTable {
  private keys: Float64Array;
  private slot: Int32Array;
  private mask: number;
  count = 0;
  x = new Int32Array(1024); y = new Int32Array(1024); z = new Int32Array(1024);
  sumW = new Float64Array(1024); sumWD = new Float64Array(1024);
  constructor(private readonly side: number, expected: number) {
    let cap = 1024;
    while (cap < expected * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.slot = new Int32Array(cap);
    this.mask = cap - 1;
  }
  private static hash(x: number, y: number, z: number): number {
    return (Math.imul(x, 73856093) ^ Math.imul(y, 19349663) ^ Math.imul(z, 83492791)) >>> 0;
  }
  find(x: number, y: number, z: number): number {
    const key = x + this.side * (y + this.side * z);
    for (let h = CornerTable.hash(x, y, z) & this.mask; ; h = (h + 1) & this.mask) {
      const k = this.keys[h]!;
      if (k === key) return this.slot[h]!;
      if (k === -1) return -1;
    }
  }
  insert(x: number, y: number, z: number): number {
    const key = x + this.side * (y + this.side * z);
    let h = CornerTable.hash(x, y, z) & this.mask;
    for (; ; h = (h + 1) & this.mask) {
      const k = this.keys[h]!;
      if (k === key) return this.slot[h]!;
      if (k === -1) break;
    }
    const id = this.count++;
    if (id >= this.x.length) this.growArrays();
    this.keys[h] = key; this.slot[h] = id;
    this.x[id] = x; this.y[id] = y; this.z[id] = z;
    if (this.count * 2 > this.keys.length) this.rehash();
    return id;
  }
  private growArrays(): void {
    const n = this.x.length * 2;
    const g = <T extends Int32Array | Float64Array>(a: T): T => { const b = new (a.constructor as new (n: number) => T)(n); b.set(a); return b; };
    this.x = g(this.x); this.y = g(this.y); this.z = g(this.z); this.sumW = g(this.sumW); this.sumWD = g(this.sumWD);
  }
  private rehash(): void {
    const cap = this.keys.length * 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.slot = new Int32Array(cap);
    this.mask = cap - 1;
    for (let id = 0; id < this.count; id++) {
      const x = this.x[id]!, y = this.y[id]!, z = this.z[id]!;
      let h = CornerTable.hash(x, y, z) & this.mask;
      while (this.keys[h] !== -1) h = (h + 1) & this.mask;
      this.keys[h] = x + this.side * (y + this.side * z);
      this.slot[h] = id;
    }
  }
}

// ---- evaluation and marching ---------------------------------------------------

/** Leaves of one sample at the octree's depth D: points (cell units) and normals. */
function leafSignals(octree: Octree, sample: number): { points: Float32Array; normals: Float32Array; n: number } {
  if (!octree.points || !octree.normals)
    fail('ERR_INVALID_ARGUMENT', 'meshing needs the depth-D points and normals of the octree (build it from a cloud with normals)');
  const lvl = octree.level(octree.depth);
  const b = BigInt(sample), all = octree.batchSize === 1;
  const pts: number[] = [], nrm: number[] = [];
  for (let i = 0; i < lvl.nnum; i++) {
    const r = lvl.children[i]!;
    if (r < 0 || (!all && (lvl.keys[i]! >> 48n) !== b)) continue;
    const nx = octree.normals[3 * r]!, ny = octree.normals[3 * r + 1]!, nz = octree.normals[3 * r + 2]!;
    if (!(nx * nx + ny * ny + nz * nz > 0)) continue;  // no orientation: cannot vote
    pts.push(octree.points[3 * r]!, octree.points[3 * r + 1]!, octree.points[3 * r + 2]!);
    nrm.push(nx, ny, nz);
  }
  return { points: Float32Array.from(pts), normals: Float32Array.from(nrm), n: pts.length / 3 };
}

/**
 * Marching cubes on the SDF of the octree's depth-D points and normals,
 * evaluated only near the leaves. Returns a closed, welded, outward-oriented
 * triangle mesh in the octree's [-1, 1]^3 coordinates.
 */
export function marchingCubes(octree: Octree, opts: MarchingCubesOptions = {}): MarchingCubesResult {
  const sample = opts.sample ?? 0;
  if (!Number.isInteger(sample) || sample < 0 || sample >= octree.batchSize)
    fail('ERR_INVALID_ARGUMENT', `sample must be 0..${octree.batchSize - 1}, got ${sample}`);
  const r = opts.radius ?? 2;
  if (!(r >= 1 && r <= 4)) fail('ERR_INVALID_ARGUMENT', `radius must be 1..4 cells, got ${r}`);
  const D = octree.depth, S = 1 << D;
  const leaves = leafSignals(octree, sample);
  if (leaves.n === 0) fail('ERR_INVALID_ARGUMENT', `sample ${sample} has no leaves with normals to mesh`);

  // 1. Scatter each leaf's plane into the corners within r of its point.
  const ct = new CornerTable(S + 1, leaves.n * 6);
  const r2 = r * r;
  const { points: P, normals: N } = leaves;
  for (let i = 0; i < leaves.n; i++) {
    const px = P[3 * i]!, py = P[3 * i + 1]!, pz = P[3 * i + 2]!;
    const nx = N[3 * i]!, ny = N[3 * i + 1]!, nz = N[3 * i + 2]!;
    const x0 = Math.max(0, Math.ceil(px - r)), x1 = Math.min(S, Math.floor(px + r));
    const y0 = Math.max(0, Math.ceil(py - r)), y1 = Math.min(S, Math.floor(py + r));
    const z0 = Math.max(0, Math.ceil(pz - r)), z1 = Math.min(S, Math.floor(pz + r));
    for (let z = z0; z <= z1; z++) {
      const dz = z - pz;
      for (let y = y0; y <= y1; y++) {
        const dy = y - py, dyz = dy * dy + dz * dz;
        if (dyz >= r2) continue;
        for (let x = x0; x <= x1; x++) {
          const dx = x - px, d2 = dx * dx + dyz;
          if (d2 >= r2) continue;
          const t = 1 - d2 / r2, w = t * t;
          const id = ct.insert(x, y, z);
          ct.sumW[id]! += w;
          ct.sumWD[id]! += w * (dx * nx + dy * ny + dz * nz);
        }
      }
    }
  }
  const nc = ct.count;
  const f = new Float64Array(nc);
  for (let i = 0; i < nc; i++) f[i] = ct.sumWD[i]! / ct.sumW[i]!;
  const m = march(ct, f, S);
  return { mesh: m.mesh, stats: { leaves: leaves.n, corners: nc, cells: m.cells, surfaceCells: m.surfaceCells, boundaryEdges: m.boundaryEdges } };
}

/** Marches every cell whose 8 corners are in the table (values f, negative inside). */
function march(ct: CornerTable, f: Float64Array, S: number): { mesh: Mesh; cells: number; surfaceCells: number; boundaryEdges: number } {
  const nc = ct.count;
  const edgeVertex = new Int32Array(nc * 3).fill(-1);
  let pos = new Float32Array(1 << 16), tri = new Uint32Array(1 << 16), np = 0, nt = 0;
  const scale = 2 / S, eps = 1e-3;
  const cid = new Int32Array(8);
  let cells = 0, surfaceCells = 0;
  const vertexOn = (corner0: number, axis: number): number => {
    const slot = corner0 * 3 + axis;
    let v = edgeVertex[slot]!;
    if (v >= 0) return v;
    const x = ct.x[corner0]!, y = ct.y[corner0]!, z = ct.z[corner0]!;
    const c1 = ct.find(x + (axis === 0 ? 1 : 0), y + (axis === 1 ? 1 : 0), z + (axis === 2 ? 1 : 0));
    const f0 = f[corner0]!, f1 = f[c1]!;
    const t = Math.min(1 - eps, Math.max(eps, f0 / (f0 - f1)));
    v = np / 3;
    if (np + 3 > pos.length) { const g = new Float32Array(pos.length * 2); g.set(pos); pos = g; }
    pos[np++] = (x + (axis === 0 ? t : 0)) * scale - 1;
    pos[np++] = (y + (axis === 1 ? t : 0)) * scale - 1;
    pos[np++] = (z + (axis === 2 ? t : 0)) * scale - 1;
    edgeVertex[slot] = v;
    return v;
  };
  const ev = new Int32Array(12);
  for (let c = 0; c < nc; c++) {
    const x = ct.x[c]!, y = ct.y[c]!, z = ct.z[c]!;
    if (x >= S || y >= S || z >= S) continue;
    let ok = true;
    cid[0] = c;
    for (let k = 1; k < 8 && ok; k++) {
      const id = ct.find(x + (k & 1), y + ((k >> 1) & 1), z + ((k >> 2) & 1));
      if (id < 0) ok = false; else cid[k] = id;
    }
    if (!ok) continue;
    cells++;
    let cs = 0;
    for (let k = 0; k < 8; k++) if (f[cid[k]!]! < 0) cs |= 1 << k;
    if (cs === 0 || cs === 255) continue;
    surfaceCells++;
    ev.fill(-1);
    for (const loop of MC_LOOPS[cs]!) {
      for (const e of loop) if (ev[e]! < 0) ev[e] = vertexOn(cid[EDGE_FROM[e]!]!, EDGE_AXIS[e]!);
      const v0 = ev[loop[0]!]!;
      for (let k = 1; k + 1 < loop.length; k++) {
        if (nt + 3 > tri.length) { const g = new Uint32Array(tri.length * 2); g.set(tri); tri = g; }
        tri[nt++] = v0; tri[nt++] = ev[loop[k]!]!; tri[nt++] = ev[loop[k + 1]!]!;
      }
    }
  }
  const positions = pos.slice(0, np);
  const indices = tri.slice(0, nt);
  const mesh: Mesh = { positions, indices, normals: vertexNormals(positions, indices) };
  return { mesh, cells, surfaceCells, boundaryEdges: countBoundaryEdges(indices, positions.length / 3) };
}

// ---- neural MPU (ognn-pytorch ognn/mpu.py, OctGPT's decoder output) ---------

/**
 * Per-depth MPU coefficients: coefficients[d - fullDepth] is [nnum(d), 4·C]
 * for every node (empty ones included) of depth d = fullDepth..depth, four
 * per channel: gradient (3) then constant, as the ognn decoder predicts them.
 */
export type MpuCoefficients = readonly Float32Array[];

function checkMpu(octree: Octree, coefficients: MpuCoefficients, channels: number): void {
  const F = octree.fullDepth, D = octree.depth;
  if (coefficients.length !== D - F + 1) fail('ERR_SHAPE', `MPU needs coefficients for depths ${F}..${D} (${D - F + 1} arrays), got ${coefficients.length}`);
  if (!Number.isInteger(channels) || channels < 1) fail('ERR_INVALID_ARGUMENT', `channels must be a positive integer, got ${channels}`);
  coefficients.forEach((c, i) => {
    const n = octree.level(F + i).nnum;
    if (!(c instanceof Float32Array) || c.length !== n * 4 * channels)
      fail('ERR_SHAPE', `MPU coefficients of depth ${F + i} must be a Float32Array of ${n}·4·${channels} values, got ${c?.length}`);
  });
}

/**
 * The neural MPU of ognn at query points in [-1, 1]^3 (one sample): for each
 * depth d = fullDepth..depth, the 8 node centres around the point (cell units
 * p' = (p+1)·2^d/2 - 0.5, floor + {0,1}^3) that exist and, below the last
 * depth, are leaves (children < 0); weight ∏(1 - |t|)·d²/50 with t = p' -
 * centre; value = Σ w (g·t·2/2^d + c) / (Σ w + 1e-8). Returns [N, C] at the
 * finest depth (ognn's fvals[depth]).
 */
export function mpuEvaluate(octree: Octree, coefficients: MpuCoefficients, points: Float32Array, opts: { channels?: number; sample?: number } = {}): Float32Array {
  const C = opts.channels ?? 1, sample = opts.sample ?? 0;
  checkMpu(octree, coefficients, C);
  if (!Number.isInteger(sample) || sample < 0 || sample >= octree.batchSize) fail('ERR_INVALID_ARGUMENT', `sample must be 0..${octree.batchSize - 1}, got ${sample}`);
  if (points.length % 3) fail('ERR_SHAPE', 'points must hold N·3 values');
  const F = octree.fullDepth, D = octree.depth, N = points.length / 3;
  const lookups = mpuLookups(octree, sample);
  const out = new Float32Array(N * C), acc = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    acc.fill(0);
    let norm = 0;
    for (let d = F; d <= D; d++) {
      const scale = 1 << d, lk = lookups[d - F]!, coef = coefficients[d - F]!, lvl = octree.level(d);
      const fx = (points[3 * i]! + 1) * (scale / 2) - 0.5, fy = (points[3 * i + 1]! + 1) * (scale / 2) - 0.5, fz = (points[3 * i + 2]! + 1) * (scale / 2) - 0.5;
      const ix = Math.floor(fx), iy = Math.floor(fy), iz = Math.floor(fz);
      for (let k = 0; k < 8; k++) {
        const cx = ix + (k >> 2 & 1), cy = iy + (k >> 1 & 1), cz = iz + (k & 1);
        if (cx < 0 || cy < 0 || cz < 0 || cx >= scale || cy >= scale || cz >= scale) continue;
        const node = lk.get(cx + scale * (cy + scale * cz));
        if (node === undefined || (d < D && lvl.children[node]! >= 0)) continue;
        const tx = fx - cx, ty = fy - cy, tz = fz - cz;
        const w = (1 - Math.abs(tx)) * (1 - Math.abs(ty)) * (1 - Math.abs(tz)) * (d * d / 50);
        const h = 2 / scale;
        for (let c = 0; c < C; c++) {
          const o = (node * C + c) * 4;
          acc[c]! += w * (coef[o]! * tx * h + coef[o + 1]! * ty * h + coef[o + 2]! * tz * h + coef[o + 3]!);
        }
        norm += w;
      }
    }
    for (let c = 0; c < C; c++) out[i * C + c] = acc[c]! / (norm + 1e-8);
  }
  return out;
}

/** Node index by packed cell coordinates, per depth fullDepth..depth, for one sample. */
function mpuLookups(octree: Octree, sample: number): Map<number, number>[] {
  const maps: Map<number, number>[] = [];
  for (let d = octree.fullDepth; d <= octree.depth; d++) {
    const xyz = octree.xyz(d), ids = octree.batchSize > 1 ? octree.batchIds(d) : undefined, S = 1 << d;
    const m = new Map<number, number>();
    for (let i = 0; i < xyz.length / 3; i++) if (!ids || ids[i] === sample) m.set(xyz[3 * i]! + S * (xyz[3 * i + 1]! + S * xyz[3 * i + 2]!), i);
    maps.push(m);
  }
  return maps;
}

/**
 * Marching cubes on channel 0 of the neural MPU minus `iso` (OctGPT uses
 * 0.002), evaluated only at the lattice corners of the depth-D nodes (empty
 * siblings included) and of `ring` (default 1) cells around them: the MPU is
 * defined everywhere through the coarser leaves, and the ring catches a
 * surface that grazes a coarse empty cell. Never a dense grid.
 */
export function marchingCubesMpu(octree: Octree, coefficients: MpuCoefficients,
  opts: { channels?: number; sample?: number; iso?: number; ring?: number } = {}): MarchingCubesResult {
  const C = opts.channels ?? 1, sample = opts.sample ?? 0, iso = opts.iso ?? 0;
  checkMpu(octree, coefficients, C);
  if (!Number.isInteger(sample) || sample < 0 || sample >= octree.batchSize) fail('ERR_INVALID_ARGUMENT', `sample must be 0..${octree.batchSize - 1}, got ${sample}`);
  const D = octree.depth, S = 1 << D;
  const xyz = octree.xyz(D), ids = octree.batchSize > 1 ? octree.batchIds(D) : undefined;
  const ct = new CornerTable(S + 1, xyz.length * 3);
  let cellsIn = 0;
  const ring = opts.ring ?? 1;
  if (!Number.isInteger(ring) || ring < 0 || ring > 2) fail('ERR_INVALID_ARGUMENT', `ring must be 0, 1 or 2, got ${ring}`);
  for (let i = 0; i < xyz.length / 3; i++) {
    if (ids && ids[i] !== sample) continue;
    cellsIn++;
    const x0 = Math.max(0, xyz[3 * i]! - ring), x1 = Math.min(S, xyz[3 * i]! + 1 + ring);
    const y0 = Math.max(0, xyz[3 * i + 1]! - ring), y1 = Math.min(S, xyz[3 * i + 1]! + 1 + ring);
    const z0 = Math.max(0, xyz[3 * i + 2]! - ring), z1 = Math.min(S, xyz[3 * i + 2]! + 1 + ring);
    for (let z = z0; z <= z1; z++) for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) ct.insert(x, y, z);
  }
  if (cellsIn === 0) fail('ERR_INVALID_ARGUMENT', `sample ${sample} has no nodes at depth ${D}`);
  const nc = ct.count, q = new Float32Array(nc * 3);
  for (let i = 0; i < nc; i++) { q[3 * i] = ct.x[i]! * 2 / S - 1; q[3 * i + 1] = ct.y[i]! * 2 / S - 1; q[3 * i + 2] = ct.z[i]! * 2 / S - 1; }
  const v = mpuEvaluate(octree, coefficients, q, { channels: C, sample });
  const f = new Float64Array(nc);
  for (let i = 0; i < nc; i++) f[i] = v[i * C]! - iso;
  const m = march(ct, f, S);
  return { mesh: m.mesh, stats: { leaves: cellsIn, corners: nc, cells: m.cells, surfaceCells: m.surfaceCells, boundaryEdges: m.boundaryEdges } };
}

type MarchingCubesNative = (a: { octree: Octree; sample: number; radius: number }) =>
  Promise<{ positions: Float32Array; normals: Float32Array; indices: Uint32Array; stats: MarchingCubesResult['stats'] }>;

/** Whether the loaded addon has the native twin (native/cpu/octree/meshing.cpp). */
export function hasNativeMarchingCubes(): boolean {
  return typeof (native() as unknown as { octreeMarchingCubes?: unknown }).octreeMarchingCubes === 'function';
}

/**
 * marchingCubes in the native core (same SDF, table and vertex order, so the
 * same mesh; ~20x faster), off the event loop; falls back to the TypeScript
 * version when the addon predates it.
 */
export async function marchingCubesAsync(octree: Octree, opts: MarchingCubesOptions = {}): Promise<MarchingCubesResult> {
  if (!hasNativeMarchingCubes()) return marchingCubes(octree, opts);
  const sample = opts.sample ?? 0, radius = opts.radius ?? 2;
  if (!Number.isInteger(sample) || sample < 0 || sample >= octree.batchSize)
    fail('ERR_INVALID_ARGUMENT', `sample must be 0..${octree.batchSize - 1}, got ${sample}`);
  if (!(radius >= 1 && radius <= 4)) fail('ERR_INVALID_ARGUMENT', `radius must be 1..4 cells, got ${radius}`);
  const fn = (native() as unknown as { octreeMarchingCubes: MarchingCubesNative }).octreeMarchingCubes;
  const r = await fn({ octree, sample, radius });
  return { mesh: { positions: r.positions, normals: r.normals, indices: r.indices }, stats: r.stats };
}

/** Area-weighted vertex normals of a triangle mesh (unit length; 0 for isolated vertices). */
export function vertexNormals(positions: Float32Array, indices: Uint32Array): Float32Array {
  const n = new Float64Array(positions.length);
  for (let t = 0; t < indices.length; t += 3) {
    const a = indices[t]! * 3, b = indices[t + 1]! * 3, c = indices[t + 2]! * 3;
    const ux = positions[b]! - positions[a]!, uy = positions[b + 1]! - positions[a + 1]!, uz = positions[b + 2]! - positions[a + 2]!;
    const vx = positions[c]! - positions[a]!, vy = positions[c + 1]! - positions[a + 1]!, vz = positions[c + 2]! - positions[a + 2]!;
    const cx = uy * vz - uz * vy, cy = uz * vx - ux * vz, cz = ux * vy - uy * vx;
    n[a]! += cx; n[a + 1]! += cy; n[a + 2]! += cz;
    n[b]! += cx; n[b + 1]! += cy; n[b + 2]! += cz;
    n[c]! += cx; n[c + 1]! += cy; n[c + 2]! += cz;
  }
  const out = new Float32Array(positions.length);
  for (let i = 0; i < n.length; i += 3) {
    const l = Math.sqrt(n[i]! * n[i]! + n[i + 1]! * n[i + 1]! + n[i + 2]! * n[i + 2]!);
    if (l > 0) { out[i] = n[i]! / l; out[i + 1] = n[i + 1]! / l; out[i + 2] = n[i + 2]! / l; }
  }
  return out;
}

/**
 * Open edges: directed edges a→b used by a triangle whose reverse b→a no
 * triangle uses (0 for a closed, consistently oriented mesh). Adjacency in
 * CSR form, O(edges · degree), no hashing.
 */
export function countBoundaryEdges(indices: Uint32Array, vertices: number): number {
  const start = new Int32Array(vertices + 1);
  for (let t = 0; t < indices.length; t++) start[indices[t]! + 1]!++;
  for (let v = 0; v < vertices; v++) start[v + 1]! += start[v]!;
  const fill = start.slice(0, vertices), to = new Uint32Array(indices.length);
  for (let t = 0; t < indices.length; t += 3)
    for (let k = 0; k < 3; k++) to[fill[indices[t + k]!]!++] = indices[t + (k + 1) % 3]!;
  let open = 0;
  for (let a = 0; a < vertices; a++)
    for (let i = start[a]!; i < start[a + 1]!; i++) {
      const b = to[i]!;
      let back = false;
      for (let j = start[b]!; j < start[b + 1]! && !back; j++) back = to[j] === a;
      if (!back) open++;
    }
  return open;
}
