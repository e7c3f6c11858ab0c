// Tessera's octree against the OFFICIAL ocnn-pytorch code (v2.3.2, b12e899):
// test/fixtures/official/ocnn-cases.bin.gz holds what ocnn's own functions
// computed on seeded random clouds (scripts/reference/official/check_ocnn.py,
// run with Debian's PyTorch on an extracted copy of the official repository;
// no Python runs here). Cases: depth 1..8, 12 and 16, full depth 1..3 (and
// full depth = depth), points one float32 ulp either side of cell boundaries
// and within 1e-6 of the box faces, normals and 1..3 feature channels;
// batches of 2..4 clouds (batched build and merge_octrees); split + grow.
// Integer outputs must be identical (large tables are compared by the SHA-256
// of their little-endian bytes, with sampled rows to locate a difference);
// input features within float32 rounding of ocnn's float32 sums (tolerances
// at the checks).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { octree } from '../lib/index.js';

const { Octree } = octree;
type Tree = InstanceType<typeof Octree>;

// ---- fixture reader: gzip(u32 LE manifest length | JSON | pad 8 | binary) ----
interface Arr { dtype: 'float32' | 'int32' | 'int64'; shape: number[]; offset?: number; bytes?: number; sha256?: string; sampleRows?: number[]; sample?: Arr }
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const raw = gunzipSync(readFileSync(join(import.meta.dirname, 'fixtures', 'official', 'ocnn-cases.bin.gz')));
const mlen = raw.readUInt32LE(0);
const manifest = JSON.parse(raw.subarray(4, 4 + mlen).toString('utf8')) as { source: string; cases: Json[] };
const base = Math.ceil((4 + mlen) / 8) * 8;
const bin = new Uint8Array(raw.buffer, raw.byteOffset + base, raw.length - base).slice();  // own 8-aligned copy
function view(a: Arr): Float32Array | Int32Array | BigInt64Array {
  if (a.offset === undefined) throw new Error('array kept as a digest only');
  const n = a.bytes! / (a.dtype === 'int64' ? 8 : 4);
  if (a.dtype === 'float32') return new Float32Array(bin.buffer, a.offset, n);
  if (a.dtype === 'int32') return new Int32Array(bin.buffer, a.offset, n);
  return new BigInt64Array(bin.buffer, a.offset, n);
}
const f32 = (a: Arr) => view(a) as Float32Array;
const i32 = (a: Arr) => view(a) as Int32Array;

/** Exact comparison of an int table with the fixture's array or digest; returns a message or ''. */
function tableDiff(got: Int32Array | BigInt64Array, exp: Arr): string {
  const n = exp.shape.reduce((a, b) => a * b, 1);
  if (got.length !== n) return `length ${got.length}, ocnn ${n}`;
  const cols = exp.shape.length > 1 ? n / exp.shape[0]! : 1;
  if (exp.offset !== undefined) {
    const e = view(exp);
    for (let i = 0; i < n; i++) {
      if (BigInt(got[i]!) !== BigInt(e[i]!)) return `first difference at [${Math.floor(i / cols)}][${i % cols}]: ${got[i]} vs ocnn ${e[i]}`;
    }
    return '';
  }
  const bytes = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha === exp.sha256) return '';
  let where = 'a row between the sampled ones';
  if (exp.sample) {
    const s = view(exp.sample);
    exp.sampleRows!.forEach((r, k) => {
      for (let c = 0; c < cols; c++) if (BigInt(got[r * cols + c]!) !== BigInt(s[k * cols + c]!)) where = `row ${r}`;
    });
  }
  return `SHA-256 differs from ocnn's (${where})`;
}
function expectTable(got: Int32Array | BigInt64Array, exp: Arr, what: string) {
  expect(tableDiff(got, exp), what).toBe('');
}

const MASK48 = (1n << 48n) - 1n;
const keysNoBatch = (k: BigInt64Array) => BigInt64Array.from(k, (v) => v & MASK48);
const FEATURE_ORDER = 'NDLPF';

/** Columns of spec within NDLPF (ocnn concatenates N, D, L, P, F in that order whatever the string's order). */
function columnsOf(spec: string, C: number): number[] {
  const width: Record<string, number> = { N: 3, D: 1, L: 3, P: 3, F: C };
  const cols: number[] = [];
  let at = 0;
  for (const ch of FEATURE_ORDER) {
    if (spec.toUpperCase().includes(ch)) for (let k = 0; k < width[ch]!; k++) cols.push(at + k);
    at += width[ch]!;
  }
  return cols;
}

const worst: Record<string, number> = {};
function note(key: string, v: number) { worst[key] = Math.max(worst[key] ?? 0, v); }

/**
 * Features within float32 rounding: ocnn averages the points in float32 (in
 * cell units, up to 2^D), Tessera in float64 rounded once, so the local
 * coordinates L and D = L·n may differ by a few ulps of 2^D per point
 * averaged; normals, P and F by 1e-6.
 */
function expectFeatures(got: Float32Array, exp: Float32Array, spec: string, C: number, depth: number, what: string) {
  expect(got.length, what).toBe(exp.length);
  const cols = columnsOf(spec, C);
  const w = cols.length;
  const ulp = 2 ** (depth - 23);  // float32 ulp at 2^depth
  let worstRatio = 0;
  for (let i = 0; i < exp.length; i++) {
    const col = cols[i % w]!;
    const local = col === 3 || (col >= 4 && col < 7);   // D or L
    const tol = local ? 1e-6 + 64 * ulp : 1e-6;
    const d = Math.abs(got[i]! - exp[i]!);
    worstRatio = Math.max(worstRatio, d / tol);
    note(local ? 'features D/L |Δ|' : 'features N/P/F |Δ|', d);
  }
  expect(worstRatio, `${what}: worst |Δ| / tolerance`).toBeLessThanOrEqual(1);
}

async function checkTree(tree: Tree, exp: Json, c: Json, label: string) {
  expect(tree.depth).toBe(exp.depth);
  expect(tree.fullDepth).toBe(exp.fullDepth);
  expect(tree.nnum, `${label} nnum`).toEqual(exp.levels.map((l: Json) => l.nnum));
  expect(tree.nnumNonEmpty, `${label} nnumNonEmpty`).toEqual(exp.levels.map((l: Json) => l.nnumNonEmpty));
  for (let d = 0; d <= exp.depth; d++) {
    const L = tree.level(d), E = exp.levels[d];
    expectTable(keysNoBatch(L.keys), E.keys, `${label} keys[${d}]`);
    expectTable(tree.batchIds(d), E.batch, `${label} batch ids[${d}]`);
    expectTable(L.children, E.children, `${label} children[${d}]`);
    expectTable(tree.xyz(d), E.xyz, `${label} xyz[${d}] (key2xyz)`);
    const nb = await tree.neighbors(d);
    expect([nb.rows, nb.cols]).toEqual(E.neighbors.shape);
    expectTable(nb.data, E.neighbors, `${label} neighbours[${d}]`);
  }
  for (const [d, tables] of Object.entries(exp.neighMatrix as Record<string, Record<string, Arr>>)) {
    for (const [key, t] of Object.entries(tables)) {
      const [kernel, stride, nempty] = key.split('|');
      const nb = await tree.neighbors(Number(d), { kernel: kernel as octree.NeighborKernel, stride: Number(stride) as 1 | 2, nempty: nempty === '1' });
      expect([nb.rows, nb.cols], `${label} get_neigh(${d}, ${key})`).toEqual(t.shape);
      expectTable(nb.data, t, `${label} get_neigh(${d}, ${key})`);
    }
  }
  const C = c.featureChannels ?? 0;
  const full = f32(exp.features['NDLPF|1']);
  const W = 10 + C;
  for (const spec of ['NDLPF', 'N', 'D', 'L', 'P', 'F', 'ND', 'NDFP', 'LP', 'DF', 'FN', 'nd']) {
    const stored = exp.features[`${spec}|1`] as Arr | undefined;
    let want: Float32Array;
    if (stored) want = f32(stored);
    else {  // a column subset of NDLPF (see columnsOf)
      const cols = columnsOf(spec, C).map((k) => k);
      want = new Float32Array((full.length / W) * cols.length);
      for (let r = 0; r < full.length / W; r++) cols.forEach((k, j) => { want[r * cols.length + j] = full[r * W + k]!; });
    }
    const got = await tree.inputFeatures(spec, true);
    expect(got.shape, `${label} ${spec}`).toEqual([want.length / columnsOf(spec, C).length, columnsOf(spec, C).length]);
    expectFeatures(got.data as Float32Array, want, spec, C, exp.depth, `${label} get_input_feature('${spec}', nempty)`);
  }
  if (exp.features['NDLPF|0']) {
    const got = await tree.inputFeatures('NDLPF', false);
    expectFeatures(got.data as Float32Array, f32(exp.features['NDLPF|0']), 'NDLPF', C, exp.depth, `${label} get_input_feature('NDLPF') padded`);
  }
}

function buildArgs(c: Json) {
  return {
    points: f32(c.points), normals: c.normals ? f32(c.normals) : undefined, features: c.features ? f32(c.features) : undefined,
    batchIds: c.batchIds ? i32(c.batchIds) : undefined, batchSize: c.batchSize ?? 1, depth: c.depth, fullDepth: c.fullDepth,
  };
}

describe(`octree vs official ocnn-pytorch (${manifest.source})`, () => {
  afterAll(() => console.log('worst differences:', JSON.stringify(worst)));

  for (const c of manifest.cases.filter((x) => x.kind === 'single')) {
    it(`${c.name}: build, neighbours (every kernel/stride/nempty), input features, search, key decode`, async () => {
      const { octree: tree, report } = await Octree.build(buildArgs(c));
      expect(report.pointsOutside).toBe(0);
      expectTable(report.pointNode, c.pointNode, 'point -> node (build_octree idx)');
      await checkTree(tree, c.octree, c, c.name);
      for (const [d, s] of Object.entries(c.search as Record<string, Json>)) {
        const q = view(s.query) as BigInt64Array;
        const got = await tree.searchKeys(Number(d), q);
        expectTable(got, s.index, `search_key(depth ${d})`);
        const ch = tree.level(Number(d)).children;
        expectTable(Int32Array.from(got, (i) => (i >= 0 ? ch[i]! : -1)), s.indexNempty, `search_key(depth ${d}, nempty)`);
      }
      // ocnn xyz2key (its LUT path) decoded by Tessera's key decoder.
      const keys = view(c.xyz2key.key) as BigInt64Array;
      const fake = { level: () => ({ keys, children: new Int32Array(keys.length), nnum: keys.length, nnumNonEmpty: keys.length }) };
      expectTable((Octree.prototype.xyz as (this: unknown, d: number) => Int32Array).call(fake, c.depth), c.xyz2key.xyz, 'key2xyz(xyz2key(xyz))');
    });
  }

  for (const c of manifest.cases.filter((x) => x.kind === 'split')) {
    it(`${c.name}: octree_split + octree_grow`, async () => {
      const { octree: tree } = await Octree.build(buildArgs(c));
      const grown = await tree.split(c.at, i32(c.flags));
      const s = c.split;
      expectTable(grown.level(c.at).children, s.children, 'children after split');
      expect(grown.level(c.at).nnumNonEmpty).toBe(s.nnumNonEmpty);
      const L = grown.level(c.at + 1);
      expect(L.nnum).toBe(s.nnumNext);
      expectTable(keysNoBatch(L.keys), s.keys, 'grown keys');
      expectTable(grown.batchIds(c.at + 1), s.batch, 'grown batch ids');
      expectTable(L.children, s.childrenNext, 'grown children');
      expectTable((await grown.neighbors(c.at + 1)).data, s.neighborsNext, 'grown neighbours');
    });
  }

  for (const c of manifest.cases.filter((x) => x.kind === 'batch')) {
    it(`${c.name}: batched build and merge_octrees`, async () => {
      const { octree: tree, report } = await Octree.build(buildArgs(c));
      expect(report.pointsOutside).toBe(0);
      expectTable(report.pointNode, c.pointNode, 'point -> node (batched build_octree idx)');
      await checkTree(tree, c.batched, c, `${c.name} batched`);
      // Separately built trees merged (ocnn merge_octrees).
      const P = f32(c.points), N = f32(c.normals), F = f32(c.features), C = c.featureChannels;
      const parts: Tree[] = [];
      let at = 0;
      for (const n of c.sizes as number[]) {
        const { octree: t } = await Octree.build({ points: P.slice(3 * at, 3 * (at + n)), normals: N.slice(3 * at, 3 * (at + n)),
          features: F.slice(C * at, C * (at + n)), depth: c.depth, fullDepth: c.fullDepth });
        parts.push(t);
        at += n;
      }
      const merged = await Octree.merge(parts);
      const expMerged = c.merged.sameAsBatched ? c.batched : c.merged;
      await checkTree(merged, { ...expMerged, neighMatrix: {} }, c, `${c.name} merged`);
      const bn = view(c.mergedBatchNnum) as BigInt64Array, bne = view(c.mergedBatchNnumNonEmpty) as BigInt64Array;
      const B = c.batchSize;
      for (let d = 0; d <= c.depth; d++) {
        const want = Array.from({ length: B }, (_, b) => Number(bn[d * B + b]!));
        const wantNe = Array.from({ length: B }, (_, b) => Number(bne[d * B + b]!));
        expect(merged.level(d).batchNnum, `merged batch_nnum[${d}]`).toEqual(want);
        expect(merged.level(d).batchNnumNonEmpty, `merged batch_nnum_nempty[${d}]`).toEqual(wantNe);
        // ocnn leaves batch_nnum unset after a batched build; Tessera fills it, and it must match the merge's.
        expect(tree.level(d).batchNnum, `batched batch_nnum[${d}]`).toEqual(want);
        expect(tree.level(d).batchNnumNonEmpty, `batched batch_nnum_nempty[${d}]`).toEqual(wantNe);
      }
    });
  }

  describe('tessera octree CLI (--json --neighbors) vs ocnn', () => {
    const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
    const dir = mkdtempSync(join(tmpdir(), 'tessera-official-octree-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    for (const name of ['single-d5-f2-clusters', 'single-d16-f3-sphere', 'single-d3-f3-clusters']) {
      it(name, () => {
        if (!existsSync(cli)) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` first');
        const c = manifest.cases.find((x) => x.name === name)!;
        const P = f32(c.points), N = f32(c.normals), n = P.length / 3;
        const header = `ply\nformat binary_little_endian 1.0\nelement vertex ${n}\nproperty float x\nproperty float y\nproperty float z\n` +
          'property float nx\nproperty float ny\nproperty float nz\nend_header\n';
        const body = new Float32Array(n * 6);
        for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) { body[6 * i + k] = P[3 * i + k]!; body[6 * i + 3 + k] = N[3 * i + k]!; }
        const ply = join(dir, `${name}.ply`), out = join(dir, `${name}.json`);
        writeFileSync(ply, Buffer.concat([Buffer.from(header), Buffer.from(body.buffer)]));
        const r = spawnSync(process.execPath, [cli, 'octree', ply, '--depth', String(c.depth), '--full-depth', String(c.fullDepth), '--json', out, '--neighbors'],
          { encoding: 'utf8', env: process.env });
        expect(r.status, r.stderr).toBe(0);
        const j = JSON.parse(readFileSync(out, 'utf8')) as { depth: number; fullDepth: number; levels: { keys: number[]; children: number[]; nnum: number; nnumNonEmpty: number; neighbors: number[] }[] };
        expect([j.depth, j.fullDepth]).toEqual([c.depth, c.fullDepth]);
        j.levels.forEach((l, d) => {
          const E = c.octree.levels[d];
          expect([l.nnum, l.nnumNonEmpty], `nnum[${d}]`).toEqual([E.nnum, E.nnumNonEmpty]);
          expectTable(BigInt64Array.from(l.keys, (v) => BigInt(v)), E.keys, `CLI keys[${d}]`);
          expectTable(Int32Array.from(l.children), E.children, `CLI children[${d}]`);
          expectTable(Int32Array.from(l.neighbors), E.neighbors, `CLI neighbours[${d}]`);
        });
      });
    }
  });
});
