// Octree outputs (issue 7 part 5): sparse marching cubes on the point-to-plane
// SDF of the leaves (closed, welded, outward surfaces of a sphere and a box),
// the generated case table, voxel cubes, cell-centre points, and the PLY / OBJ
// / GLB writers parsed back.
import { describe, expect, it } from 'vitest';

import { TesseraError } from '../lib/errors.js';
import { parseGlb, meshToGlb } from '../lib/io/glb.js';
import { meshToObj, parseObj } from '../lib/io/obj.js';
import { findElement, parsePly } from '../lib/io/ply.js';
import { countBoundaryEdges, hasNativeMarchingCubes, marchingCubes, marchingCubesAsync, marchingCubesMpu, MC_LOOPS, mpuEvaluate, type Mesh } from '../lib/octree/mesh.js';
import { Octree } from '../lib/octree/octree.js';
import { octreePoints, octreePointsToPly, voxelMesh } from '../lib/octree/voxels.js';
import { encodeMesh, meshFormatOf, meshToPly } from '../lib/octree/writers.js';
import { codeOf } from './error-code.js';

export function sphereCloud(n: number, r: number): { points: Float32Array; normals: Float32Array } {
  const points = new Float32Array(n * 3), normals = new Float32Array(n * 3);
  const g = Math.PI * (3 - Math.sqrt(5));
  for (let i = 0; i < n; i++) {
    const y = 1 - (2 * (i + 0.5)) / n, s = Math.sqrt(1 - y * y), t = g * i;
    normals.set([Math.cos(t) * s, y, Math.sin(t) * s], 3 * i);
    points.set([Math.cos(t) * s * r, y * r, Math.sin(t) * s * r], 3 * i);
  }
  return { points, normals };
}

function boxCloud(perFace: number, h: number): { points: Float32Array; normals: Float32Array } {
  const pts: number[] = [], nrm: number[] = [];
  const m = Math.round(Math.sqrt(perFace));
  for (let a = 0; a < 3; a++) for (const s of [-1, 1]) for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) {
    const p = [0, 0, 0], n = [0, 0, 0];
    p[a] = s * h; n[a] = s;
    p[(a + 1) % 3] = ((i + 0.5) / m * 2 - 1) * h; p[(a + 2) % 3] = ((j + 0.5) / m * 2 - 1) * h;
    pts.push(...p); nrm.push(...n);
  }
  return { points: Float32Array.from(pts), normals: Float32Array.from(nrm) };
}

/** V - E + F with undirected edges; also checks every edge has exactly 2 faces. */
function topology(m: Mesh): { euler: number; nonManifoldEdges: number; unused: number } {
  const V = m.positions.length / 3, F = m.indices.length / 3;
  const edges = new Map<number, number>();
  const used = new Uint8Array(V);
  for (let t = 0; t < m.indices.length; t += 3) for (let k = 0; k < 3; k++) {
    const a = m.indices[t + k]!, b = m.indices[t + (k + 1) % 3]!;
    used[a] = 1;
    const key = Math.min(a, b) * V + Math.max(a, b);
    edges.set(key, (edges.get(key) ?? 0) + 1);
  }
  let bad = 0;
  for (const c of edges.values()) if (c !== 2) bad++;
  return { euler: V - edges.size + F, nonManifoldEdges: bad, unused: V - used.reduce((s, x) => s + x, 0) };
}

function weld(m: Mesh): Mesh {
  const map = new Map<string, number>(), pos: number[] = [];
  const remap = new Uint32Array(m.positions.length / 3);
  for (let i = 0; i < remap.length; i++) {
    const k = `${m.positions[3 * i]},${m.positions[3 * i + 1]},${m.positions[3 * i + 2]}`;
    let j = map.get(k);
    if (j === undefined) { j = map.size; map.set(k, j); pos.push(m.positions[3 * i]!, m.positions[3 * i + 1]!, m.positions[3 * i + 2]!); }
    remap[i] = j;
  }
  return { positions: Float32Array.from(pos), indices: m.indices.map((i) => remap[i]!) };
}

function signedVolume(m: Mesh): number {
  let v = 0;
  const p = m.positions;
  for (let t = 0; t < m.indices.length; t += 3) {
    const a = 3 * m.indices[t]!, b = 3 * m.indices[t + 1]!, c = 3 * m.indices[t + 2]!;
    v += (p[a]! * (p[b + 1]! * p[c + 2]! - p[b + 2]! * p[c + 1]!) - p[a + 1]! * (p[b]! * p[c + 2]! - p[b + 2]! * p[c]!) + p[a + 2]! * (p[b]! * p[c + 1]! - p[b + 1]! * p[c]!)) / 6;
  }
  return v;
}


describe('marching cubes case table', () => {
  it('covers every crossing edge exactly once per case, complements reverse the loops', () => {
    expect(MC_LOOPS.length).toBe(256);
    const EDGE_CORNERS: [number, number][] = [];
    for (let a = 0; a < 3; a++) for (let c = 0; c < 8; c++) if (!(c & (1 << a))) EDGE_CORNERS.push([c, c | (1 << a)]);
    for (let cs = 0; cs < 256; cs++) {
      const crossing = EDGE_CORNERS.map(([a, b], e) => (((cs >> a) ^ (cs >> b)) & 1 ? e : -1)).filter((e) => e >= 0).sort((x, y) => x - y);
      const used = MC_LOOPS[cs]!.flat().sort((x, y) => x - y);
      expect(used).toEqual(crossing);
      for (const loop of MC_LOOPS[cs]!) expect(loop.length).toBeGreaterThanOrEqual(3);
    }
    expect(MC_LOOPS[0]!.length + MC_LOOPS[255]!.length).toBe(0);
    // Corner 0 inside: one triangle over its x, y, z edges (0, 4, 8), ordered so
    // that its normal points away from the corner: (x-edge, y-edge, z-edge) up to rotation.
    expect(MC_LOOPS[1]!.length).toBe(1);
    const l = MC_LOOPS[1]![0]!, r = l.indexOf(0);
    expect([l[r], l[(r + 1) % 3], l[(r + 2) % 3]]).toEqual([0, 4, 8]);
    // Complement: the same loop reversed (positive corner 0 inside the positive region).
    const c = MC_LOOPS[254]![0]!, rc = c.indexOf(0);
    expect([c[rc], c[(rc + 1) % 3], c[(rc + 2) % 3]]).toEqual([0, 8, 4]);
  });
});

describe('sparse marching cubes', () => {
  it('meshes a sphere into a closed, welded, outward genus-0 surface at the right radius', async () => {
    const { points, normals } = sphereCloud(40000, 0.6);
    const { octree } = await Octree.build({ points, normals, depth: 6, fullDepth: 2 });
    const { mesh, stats } = marchingCubes(octree);
    expect(stats.boundaryEdges).toBe(0);
    const topo = topology(mesh);
    expect(topo.euler).toBe(2);
    expect(topo.nonManifoldEdges).toBe(0);
    expect(topo.unused).toBe(0);
    // No duplicate vertices: welding by position changes nothing.
    expect(weld(mesh).positions.length).toBe(mesh.positions.length);
    // Radius and outward normals.
    const V = mesh.positions.length / 3;
    let maxErr = 0, inward = 0;
    for (let i = 0; i < V; i++) {
      const p = mesh.positions.subarray(3 * i, 3 * i + 3), n = mesh.normals!.subarray(3 * i, 3 * i + 3);
      maxErr = Math.max(maxErr, Math.abs(Math.hypot(p[0]!, p[1]!, p[2]!) - 0.6));
      if (p[0]! * n[0]! + p[1]! * n[1]! + p[2]! * n[2]! <= 0) inward++;
    }
    expect(maxErr).toBeLessThan(2 / 64 * 0.5);  // half a cell
    expect(inward).toBe(0);
    const vol = signedVolume(mesh);
    expect(Math.abs(vol - (4 / 3) * Math.PI * 0.6 ** 3) / vol).toBeLessThan(0.02);
    // Sparse: corners evaluated scale with the leaves, far below the dense (2^6+1)^3.
    expect(stats.corners).toBeLessThan(65 ** 3 / 3);
  });

  it('meshes a box (sharp edges) into a closed genus-0 surface', async () => {
    const { points, normals } = boxCloud(6000, 0.5);
    const { octree } = await Octree.build({ points, normals, depth: 5, fullDepth: 2 });
    const { mesh, stats } = marchingCubes(octree);
    expect(stats.boundaryEdges).toBe(0);
    const topo = topology(mesh);
    expect(topo.euler).toBe(2);
    expect(topo.nonManifoldEdges).toBe(0);
    expect(signedVolume(mesh)).toBeGreaterThan(0.8 * 1);  // box of side 1
    expect(signedVolume(mesh)).toBeLessThan(1.1);
  });

  it('meshes a torus into a closed genus-1 surface (Euler 0)', async () => {
    const R = 0.5, r = 0.2, nu = 400, nv = 160;
    const points = new Float32Array(nu * nv * 3), normals = new Float32Array(nu * nv * 3);
    for (let i = 0; i < nu; i++) for (let j = 0; j < nv; j++) {
      const u = (2 * Math.PI * (i + 0.5 * (j % 2))) / nu, v = (2 * Math.PI * j) / nv, k = 3 * (i * nv + j);
      normals.set([Math.cos(v) * Math.cos(u), Math.cos(v) * Math.sin(u), Math.sin(v)], k);
      points.set([(R + r * Math.cos(v)) * Math.cos(u), (R + r * Math.cos(v)) * Math.sin(u), r * Math.sin(v)], k);
    }
    const { octree } = await Octree.build({ points, normals, depth: 6, fullDepth: 2 });
    const { mesh, stats } = marchingCubes(octree);
    expect(stats.boundaryEdges).toBe(0);
    expect(topology(mesh).euler).toBe(0);
    expect(topology(mesh).nonManifoldEdges).toBe(0);
    const vol = signedVolume(mesh), want = 2 * Math.PI ** 2 * R * r * r;
    expect(Math.abs(vol - want) / want).toBeLessThan(0.03);
  });

  it('meshes two spheres of a batch separately', async () => {
    const a = sphereCloud(8000, 0.5), b = sphereCloud(8000, 0.3);
    const points = new Float32Array([...a.points, ...b.points]), normals = new Float32Array([...a.normals, ...b.normals]);
    const batchIds = new Int32Array(16000).fill(1, 8000);
    const { octree } = await Octree.build({ points, normals, batchIds, batchSize: 2, depth: 5, fullDepth: 2 });
    const m0 = marchingCubes(octree, { sample: 0 }).mesh, m1 = marchingCubes(octree, { sample: 1 }).mesh;
    expect(topology(m0).euler).toBe(2);
    expect(topology(m1).euler).toBe(2);
    expect(signedVolume(m0)).toBeGreaterThan(signedVolume(m1) * 3);
  });

  it('reports the open edges of an open surface (a disk) instead of closing it', async () => {
    const pts: number[] = [], nrm: number[] = [];
    for (let i = 0; i < 4000; i++) {
      const r = 0.5 * Math.sqrt((i + 0.5) / 4000), t = i * Math.PI * (3 - Math.sqrt(5));
      pts.push(r * Math.cos(t), 0.01, r * Math.sin(t)); nrm.push(0, 1, 0);
    }
    const { octree } = await Octree.build({ points: Float32Array.from(pts), normals: Float32Array.from(nrm), depth: 5 });
    const { mesh, stats } = marchingCubes(octree);
    expect(mesh.indices.length).toBeGreaterThan(0);
    expect(stats.boundaryEdges).toBeGreaterThan(0);
    expect(topology(mesh).euler).toBe(1);  // a disk
    for (let i = 1; i < mesh.normals!.length; i += 3) expect(mesh.normals![i]).toBeGreaterThan(0.9);  // faces +y like the normals
  });

  it('refuses octrees without normals, bad samples and radii', async () => {
    const { points } = sphereCloud(500, 0.5);
    const { octree } = await Octree.build({ points, depth: 4 });
    expect(await codeOf(() => marchingCubes(octree))).toBe('ERR_INVALID_ARGUMENT');
    const s = sphereCloud(500, 0.5);
    const { octree: t } = await Octree.build({ ...s, depth: 4 });
    expect(await codeOf(() => marchingCubes(t, { sample: 1 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(() => marchingCubes(t, { radius: 0.5 }))).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe.skipIf(!hasNativeMarchingCubes())('native marching cubes (meshing.cpp)', () => {
  it('gives the TypeScript mesh: same positions, triangles and stats', async () => {
    for (const [cloud, depth] of [[sphereCloud(30000, 0.6), 6], [boxCloud(6000, 0.5), 5]] as const) {
      const { octree } = await Octree.build({ ...cloud, depth, fullDepth: 2 });
      const ts = marchingCubes(octree), nat = await marchingCubesAsync(octree);
      expect(nat.stats).toEqual(ts.stats);
      expect(nat.mesh.indices).toEqual(ts.mesh.indices);
      expect(nat.mesh.positions).toEqual(ts.mesh.positions);
      let maxDiff = 0;
      for (let i = 0; i < ts.mesh.normals!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ts.mesh.normals![i]! - nat.mesh.normals![i]!));
      expect(maxDiff).toBeLessThan(1e-6);
    }
  });

  it('refuses octrees without normals and bad samples', async () => {
    const { octree } = await Octree.build({ points: sphereCloud(500, 0.5).points, depth: 4 });
    expect(await codeOf(() => marchingCubesAsync(octree))).toBe('ERR_INVALID_ARGUMENT');
    const { octree: t } = await Octree.build({ ...sphereCloud(500, 0.5), depth: 4 });
    expect(await codeOf(() => marchingCubesAsync(t, { sample: 2 }))).toBe('ERR_INVALID_ARGUMENT');
  });
});

// Coefficients whose every node holds the same field f(x) about its centre:
// constant f(centre) and gradient grad(centre), per ognn's [g, c] layout.
function mpuCoefficients(octree: Octree, field: (x: number, y: number, z: number) => [number, number, number, number]): Float32Array[] {
  const out: Float32Array[] = [];
  for (let d = octree.fullDepth; d <= octree.depth; d++) {
    const xyz = octree.xyz(d), h = 2 / (1 << d), c = new Float32Array(xyz.length / 3 * 4);
    for (let i = 0; i < xyz.length / 3; i++) c.set(field((xyz[3 * i]! + 0.5) * h - 1, (xyz[3 * i + 1]! + 0.5) * h - 1, (xyz[3 * i + 2]! + 0.5) * h - 1), 4 * i);
    out.push(c);
  }
  return out;
}

describe('neural MPU (ognn mpu.py)', () => {
  it('reproduces a linear field exactly (partition of unity of exact local fits)', async () => {
    const { octree } = await Octree.build({ ...sphereCloud(3000, 0.5), depth: 5, fullDepth: 2 });
    const coef = mpuCoefficients(octree, (x, y, z) => [0.3, -0.7, 0.2, 0.3 * x - 0.7 * y + 0.2 * z + 0.1]);
    const q = new Float32Array(300 * 3);
    let s = 7;
    for (let i = 0; i < q.length; i++) q[i] = ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 1.9 - 0.95;
    const v = mpuEvaluate(octree, coef, q);
    for (let i = 0; i < 300; i++) expect(v[i]).toBeCloseTo(0.3 * q[3 * i]! - 0.7 * q[3 * i + 1]! + 0.2 * q[3 * i + 2]! + 0.1, 5);
  });

  it('meshes the MPU of a sphere SDF into a closed sphere, iso shifts the radius', async () => {
    const { octree } = await Octree.build({ ...sphereCloud(20000, 0.6), depth: 6, fullDepth: 2 });
    const sdf = (x: number, y: number, z: number): [number, number, number, number] => {
      const r = Math.hypot(x, y, z);
      return [x / r, y / r, z / r, r - 0.6];
    };
    const coef = mpuCoefficients(octree, sdf);
    for (const iso of [0, 0.02]) {
      const { mesh, stats } = marchingCubesMpu(octree, coef, { iso });
      expect(stats.boundaryEdges).toBe(0);
      expect(topology(mesh).euler).toBe(2);
      expect(topology(mesh).nonManifoldEdges).toBe(0);
      let maxErr = 0;
      for (let i = 0; i < mesh.positions.length; i += 3) maxErr = Math.max(maxErr, Math.abs(Math.hypot(mesh.positions[i]!, mesh.positions[i + 1]!, mesh.positions[i + 2]!) - 0.6 - iso));
      expect(maxErr).toBeLessThan(0.01);
      expect(signedVolume(mesh)).toBeGreaterThan(0);
    }
  });

  it('checks coefficient shapes', async () => {
    const { octree } = await Octree.build({ ...sphereCloud(500, 0.5), depth: 4, fullDepth: 2 });
    expect(await codeOf(() => mpuEvaluate(octree, [], new Float32Array(3)))).toBe('ERR_SHAPE');
    const coef = mpuCoefficients(octree, () => [0, 0, 0, 1]);
    expect(await codeOf(() => mpuEvaluate(octree, coef, new Float32Array(3), { channels: 2 }))).toBe('ERR_SHAPE');
    expect(mpuEvaluate(octree, coef, Float32Array.from([0.1, 0.2, 0.3]))[0]).toBeCloseTo(1, 6);
  });
});

describe('voxels and points', () => {
  it('one voxel is a closed cube; a 2x2x2 block shows only its 24 outer faces', async () => {
    const one = await Octree.build({ points: Float32Array.from([0.1, 0.1, 0.1]), depth: 1, fullDepth: 0 });
    const cube = voxelMesh(one.octree, 1);
    expect(cube.indices.length / 3).toBe(12);
    const w = weld(cube);
    expect(w.positions.length / 3).toBe(8);
    expect(topology(w).euler).toBe(2);
    expect(signedVolume(cube)).toBeCloseTo(1, 5);  // a cell of side 1 at depth 1
    const pts: number[] = [];
    for (const x of [-0.25, 0.25]) for (const y of [-0.25, 0.25]) for (const z of [-0.25, 0.25]) pts.push(x, y, z);
    const block = await Octree.build({ points: Float32Array.from(pts), depth: 2, fullDepth: 1 });
    const m = voxelMesh(block.octree, 2);
    expect(m.indices.length / 3).toBe(48);
    expect(topology(weld(m)).euler).toBe(2);
    expect(signedVolume(m)).toBeCloseTo(1, 5);
    // normals point out of the faces
    for (let i = 0; i < m.positions.length; i += 3) {
      const d = m.positions[i]! * m.normals![i]! + m.positions[i + 1]! * m.normals![i + 1]! + m.positions[i + 2]! * m.normals![i + 2]!;
      expect(d).toBeGreaterThan(0);
    }
    expect(await codeOf(() => voxelMesh(block.octree, 3))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('writes cell centres with normals and features to PLY', async () => {
    const s = sphereCloud(3000, 0.5);
    const features = Float32Array.from({ length: 3000 * 2 }, (_, i) => i % 2);
    const { octree } = await Octree.build({ ...s, features, depth: 4 });
    const p = octreePoints(octree);
    expect(p.positions.length / 3).toBe(octree.nnumNonEmpty[4]);
    const ply = parsePly(octreePointsToPly(p));
    const v = findElement(ply, 'vertex')!;
    expect(v.count).toBe(p.positions.length / 3);
    expect([...v.columns.keys()]).toEqual(['x', 'y', 'z', 'nx', 'ny', 'nz', 'feature_0', 'feature_1']);
    // centres sit at odd multiples of half a cell
    for (let i = 0; i < v.count; i++) expect(((v.columns.get('x')![i]! + 1) * 8 - 0.5) % 1).toBeCloseTo(0, 5);
    expect(v.columns.get('feature_1')![0]).toBeCloseTo(1, 6);
    const coarse = octreePoints(octree, 2);
    expect(coarse.normals).toBeUndefined();
    expect(coarse.positions.length / 3).toBe(octree.nnumNonEmpty[2]);
  });
});

describe('mesh writers', () => {
  const tet: Mesh = {
    positions: Float32Array.from([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]),
    normals: Float32Array.from([-1, -1, -1, 1, 0, 0, 0, 1, 0, 0, 0, 1].map((x) => x / 1)),
    indices: Uint32Array.from([0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3]),
  };

  it('PLY: binary with vertex normals and a face list, parsed back', () => {
    const ply = parsePly(meshToPly(tet));
    expect(ply.format).toBe('binary_little_endian');
    const f = findElement(ply, 'face')!;
    expect(f.count).toBe(4);
    expect([...f.lists.get('vertex_indices')!.values]).toEqual([...tet.indices]);
    expect([...findElement(ply, 'vertex')!.columns.get('nx')!]).toEqual([-1, 1, 0, 0]);
  });

  it('OBJ: text round trip', () => {
    const m = parseObj(meshToObj(tet));
    expect([...m.positions]).toEqual([...tet.positions]);
    expect([...m.normals!]).toEqual([...tet.normals!]);
    expect([...m.indices]).toEqual([...tet.indices]);
    expect(() => parseObj('v 0 0 0\nf 1 2 3\n')).toThrow(TesseraError);
  });

  it('GLB: header, aligned JSON and BIN chunks, accessors with min/max, parsed back', async () => {
    const { points, normals } = sphereCloud(5000, 0.5);
    const { octree } = await Octree.build({ points, normals, depth: 4 });
    const { mesh } = marchingCubes(octree);
    const bytes = meshToGlb(mesh);
    expect(bytes.byteLength % 4).toBe(0);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    expect(dv.getUint32(0, true)).toBe(0x46546c67);
    const g = parseGlb(bytes);
    expect([...g.positions]).toEqual([...mesh.positions]);
    expect([...g.normals!]).toEqual([...mesh.normals!]);
    expect([...g.indices]).toEqual([...mesh.indices]);
    const acc = (g.json as any).accessors;
    expect(acc[0].min.length).toBe(3);
    expect(acc[0].max[0]).toBeCloseTo(Math.max(...[...mesh.positions].filter((_, i) => i % 3 === 0)), 6);
    expect((g.json as any).meshes[0].primitives[0]).toEqual({ attributes: { POSITION: 0, NORMAL: 1 }, indices: 2, mode: 4 });
    // corruption is ERR_FORMAT
    const broken = bytes.slice(); broken[0] = 0;
    expect(await codeOf(() => parseGlb(broken))).toBe('ERR_FORMAT');
    expect(await codeOf(() => parseGlb(bytes.slice(0, bytes.byteLength - 4)))).toBe('ERR_FORMAT');
    expect(await codeOf(() => meshToGlb({ positions: new Float32Array(0), indices: new Uint32Array(0) }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(() => meshToGlb({ positions: new Float32Array(3), indices: Uint32Array.from([0, 0, 1]) }))).toBe('ERR_SHAPE');
  });

  it('picks the format by extension', () => {
    expect(meshFormatOf('a/b.GLB')).toBe('glb');
    expect(new TextDecoder().decode(encodeMesh(tet, 'obj')).startsWith('# tessera')).toBe(true);
    expect(() => meshFormatOf('x.stl')).toThrow(TesseraError);
    expect(countBoundaryEdges(tet.indices, 4)).toBe(0);
  });
});
