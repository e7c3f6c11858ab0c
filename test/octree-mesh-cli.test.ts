// `tessera octree` (issue 7 part 6): the JSON contract checked against brute
// force (keys by direct bit interleaving, neighbours by coordinate lookup),
// the mesh / voxel / point outputs parsed back, and bad input.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseGlb } from '../lib/io/glb.js';
import { parseObj } from '../lib/io/obj.js';
import { findElement, parsePly } from '../lib/io/ply.js';
import { pointCloudToPly } from '../lib/io/point-cloud.js';
import { countBoundaryEdges } from '../lib/octree/mesh.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'lib', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'tessera-octree-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: process.env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function sphere(n: number, r: number, withNormals: boolean): Uint8Array {
  const positions = new Float32Array(n * 3), normals = new Float32Array(n * 3), g = Math.PI * (3 - Math.sqrt(5));
  for (let i = 0; i < n; i++) {
    const y = 1 - (2 * (i + 0.5)) / n, s = Math.sqrt(1 - y * y), t = g * i;
    normals.set([Math.cos(t) * s, y, Math.sin(t) * s], 3 * i);
    positions.set([Math.cos(t) * s * r, y * r, Math.sin(t) * s * r], 3 * i);
  }
  if (n > 0) positions.set([1.5, 0, 0], 0);  // one point outside the box
  return pointCloudToPly(withNormals ? { count: n, positions, normals } : { count: n, positions });
}

const interleave = (x: number, y: number, z: number, d: number): number => {
  let k = 0;
  for (let i = 0; i < d; i++) k += (((x >> i) & 1) * 4 + ((y >> i) & 1) * 2 + ((z >> i) & 1)) * 8 ** i;
  return k;
};

describe('tessera octree', () => {
  const cloud = join(dir, 'sphere.ply'), bare = join(dir, 'bare.ply');
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
    writeFileSync(cloud, sphere(6000, 0.6, true));
    writeFileSync(bare, sphere(500, 0.6, false));
  });

  it('writes the JSON levels with neighbours that match brute force', () => {
    const out = join(dir, 'o.json');
    const r = tessera('octree', cloud, '--depth', '4', '--full-depth', '2', '--json', out, '--neighbors');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/6000 points, 5999 used, 1 outside/);
    const j = JSON.parse(readFileSync(out, 'utf8'));
    expect(j.depth).toBe(4);
    expect(j.fullDepth).toBe(2);
    expect(j.levels.map((l: { depth: number }) => l.depth)).toEqual([0, 1, 2, 3, 4]);
    expect(j.levels[0].keys).toEqual([0]);
    expect(j.levels[2].keys).toEqual([...Array(64).keys()]);  // dense full depth
    for (const l of j.levels) {
      const d = l.depth, S = 1 << d;
      expect(l.keys.length).toBe(l.nnum);
      expect(l.children.length).toBe(l.nnum);
      expect(l.neighbors.length).toBe(27 * l.nnum);
      expect(l.children.filter((c: number) => c >= 0).length).toBe(l.nnumNonEmpty);
      expect(r.out).toMatch(new RegExp(`\\n +${d} +${l.nnum} +${l.nnumNonEmpty}\\n`));
      // brute force: decode each key by bits, look neighbours up by coordinates
      const at = new Map<number, number>();
      const xyz: number[][] = l.keys.map((k: number, i: number) => {
        let x = 0, y = 0, z = 0;
        for (let b = 0; b < d; b++) {
          const t = Math.floor(k / 8 ** b) % 8;
          x |= ((t >> 2) & 1) << b; y |= ((t >> 1) & 1) << b; z |= (t & 1) << b;
        }
        expect(interleave(x, y, z, d)).toBe(k);
        at.set(interleave(x, y, z, d), i);
        return [x, y, z];
      });
      for (let i = 0; i < l.nnum; i++) for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) for (let dz = -1; dz <= 1; dz++) {
        const [x, y, z] = [xyz[i]![0]! + dx, xyz[i]![1]! + dy, xyz[i]![2]! + dz];
        const inside = x >= 0 && y >= 0 && z >= 0 && x < S && y < S && z < S;
        // A node exists at depth d only if its parent is non-empty (or d <= F).
        const want = inside ? at.get(interleave(x, y, z, d)) ?? -1 : -1;
        expect(l.neighbors[27 * i + 9 * (dx + 1) + 3 * (dy + 1) + (dz + 1)]).toBe(want);
      }
    }
  });

  it('writes a closed marching-cubes mesh (OBJ, PLY, GLB), voxels and points', { timeout: 60_000 }, () => {
    for (const ext of ['obj', 'ply', 'glb']) {
      const out = join(dir, `m.${ext}`);
      const r = tessera('octree', cloud, '--depth', '5', '--full-depth', '2', '--mesh', out);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/triangles, closed;/);
      const bytes = readFileSync(out);
      const m = ext === 'obj' ? parseObj(bytes.toString('utf8'))
        : ext === 'glb' ? parseGlb(new Uint8Array(bytes))
          : (() => {
            const p = parsePly(new Uint8Array(bytes));
            const v = findElement(p, 'vertex')!, f = findElement(p, 'face')!;
            const pos = new Float32Array(v.count * 3);
            ['x', 'y', 'z'].forEach((a, k) => v.columns.get(a)!.forEach((x, i) => { pos[3 * i + k] = x; }));
            expect(f.lists.get('vertex_indices')!.counts.every((c) => c === 3)).toBe(true);
            return { positions: pos, indices: Uint32Array.from(f.lists.get('vertex_indices')!.values) };
          })();
      expect(m.indices.length).toBeGreaterThan(300);
      expect(countBoundaryEdges(m.indices, m.positions.length / 3)).toBe(0);
    }
    const vox = join(dir, 'v.glb'), pts = join(dir, 'p.ply');
    const r = tessera('octree', cloud, '--depth', '3', '--full-depth', '1', '--voxels', vox, '--points', pts);
    expect(r.code).toBe(0);
    expect(parseGlb(new Uint8Array(readFileSync(vox))).indices.length).toBeGreaterThan(0);
    const p = parsePly(new Uint8Array(readFileSync(pts)));
    expect([...findElement(p, 'vertex')!.columns.keys()]).toEqual(['x', 'y', 'z', 'nx', 'ny', 'nz']);
  });

  it('refuses bad input with TesseraError codes and usage errors', { timeout: 90_000 }, () => {
    const err = (...a: string[]) => { const r = tessera('octree', ...a); return `${r.code} ${r.err}`; };
    expect(err(cloud, '--depth', '17', '--full-depth', '2')).toMatch(/^1 tessera: ERR_INVALID_ARGUMENT: --depth/);
    expect(err(cloud, '--depth', '4', '--full-depth', '5')).toMatch(/^1 tessera: ERR_INVALID_ARGUMENT: --full-depth/);
    expect(err(join(dir, 'missing.ply'), '--depth', '4', '--full-depth', '2')).toMatch(/^1 tessera: ERR_IO/);
    writeFileSync(join(dir, 'junk.ply'), 'not a ply');
    expect(err(join(dir, 'junk.ply'), '--depth', '4', '--full-depth', '2')).toMatch(/^1 tessera: ERR_FORMAT/);
    expect(err(bare, '--depth', '4', '--full-depth', '2', '--mesh', join(dir, 'x.obj'))).toMatch(/^1 tessera: ERR_INVALID_ARGUMENT: .*normals/);
    expect(err(cloud, '--depth', '4', '--full-depth', '2', '--mesh', join(dir, 'x.stl'))).toMatch(/^1 tessera: ERR_INVALID_ARGUMENT: .*\.ply, \.obj or \.glb/);
    expect(err(cloud, '--depth', '4', '--full-depth', '2', '--neighbors')).toMatch(/^1 tessera: ERR_INVALID_ARGUMENT: --neighbors/);
    writeFileSync(join(dir, 'empty.ply'), sphere(0, 0.5, true));
    expect(err(join(dir, 'empty.ply'), '--depth', '4', '--full-depth', '2')).toMatch(/^1 tessera: ERR_INVALID_ARGUMENT: .*empty/);
    expect(err(cloud, '--depth', '4')).toMatch(/^2 .*--full-depth are required/);
    expect(err(cloud, '--depth', '4', '--full-depth', '2', '--bogus')).toMatch(/^2 .*unknown option --bogus/);
    const help = tessera('octree', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('tessera octree <points.ply> --depth D --full-depth F [--json <out.json>] [--neighbors] [--mesh <out.obj>]');
    expect(tessera('--help').out).toMatch(/octree +build the octree/);
  });
});
