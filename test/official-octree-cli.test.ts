// `tessera octree <points.ply> --depth D --full-depth F --json out.json
// --neighbors` (issue 7 part 6) against the OFFICIAL ocnn-pytorch build
// (Octree.build_octree + construct_all_neigh), on edge-case clouds written as
// PLY files: a single point, one point nine times, exact cell corners and
// points on the faces x/y/z = -1 with duplicates, depth 1, full depth = depth,
// full depth 0, ascii without normals, uchar colours with normals,
// big-endian float64, and points outside [-1, 1]^3 (left out and counted;
// the expected tree is ocnn's build of the inside points). Fixture:
// test/fixtures/official/ocnn-cli-cases.bin.gz, written by
// scripts/reference/official/check_ocnn_cli.py; no Python here. The JSON must
// match key for key: keys without batch bits, children (-1 empty), nnum,
// nnumNonEmpty, 27 neighbour slots per node (9(dx+1)+3(dy+1)+(dz+1), -1 missing).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { octreeCommand } from '../lib/cli/octree.js';

interface Arr { dtype: 'int32' | 'int64'; shape: number[]; offset: number; bytes: number }
interface Level { keys: Arr; children: Arr; nnum: number; nnumNonEmpty: number; neighbors: Arr }
interface Case { name: string; depth: number; fullDepth: number; points: number; outside: number; file: string; levels: Level[] }
const raw = gunzipSync(readFileSync(join(import.meta.dirname, 'fixtures', 'official', 'ocnn-cli-cases.bin.gz')));
const mlen = raw.readUInt32LE(0);
const manifest = JSON.parse(raw.subarray(4, 4 + mlen).toString('utf8')) as { cases: Case[] };
const base = Math.ceil((4 + mlen) / 8) * 8;
const bin = new Uint8Array(raw.buffer, raw.byteOffset + base, raw.length - base).slice();
const ints = (a: Arr): number[] => (a.dtype === 'int64'
  ? Array.from(new BigInt64Array(bin.buffer, a.offset, a.bytes / 8), Number)
  : Array.from(new Int32Array(bin.buffer, a.offset, a.bytes / 4)));

let dir = '';
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'tessera-official-octree-cli-')); });
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

describe('tessera octree --json --neighbors vs ocnn-pytorch', () => {
  for (const c of manifest.cases) {
    it(c.name, async () => {
      const ply = join(dir, `${c.name}.ply`), json = join(dir, `${c.name}.json`);
      writeFileSync(ply, Buffer.from(c.file, 'base64'));
      const lines: string[] = [];
      const log = console.log;
      console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
      let rc: number;
      try {
        rc = await octreeCommand.run([ply, '--depth', String(c.depth), '--full-depth', String(c.fullDepth), '--json', json, '--neighbors']);
      } finally {
        console.log = log;
      }
      expect(rc).toBe(0);
      expect(lines[0]).toContain(`${c.points} points, ${c.points - c.outside} used, ${c.outside} outside`);
      const out = JSON.parse(readFileSync(json, 'utf8')) as { depth: number; fullDepth: number; levels: Array<Record<string, unknown>> };
      expect([out.depth, out.fullDepth, out.levels.length]).toEqual([c.depth, c.fullDepth, c.depth + 1]);
      out.levels.forEach((l, d) => {
        const ref = c.levels[d]!;
        expect(Object.keys(l)).toEqual(['depth', 'keys', 'children', 'nnum', 'nnumNonEmpty', 'neighbors']);
        expect(l.depth).toBe(d);
        expect([l.nnum, l.nnumNonEmpty], `depth ${d} counts`).toEqual([ref.nnum, ref.nnumNonEmpty]);
        expect(l.keys, `depth ${d} keys`).toEqual(ints(ref.keys));
        expect(l.children, `depth ${d} children`).toEqual(ints(ref.children));
        expect(l.neighbors, `depth ${d} neighbours`).toEqual(ints(ref.neighbors));
      });
    });
  }
});
