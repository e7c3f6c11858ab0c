// Octree family through the addon: construction and queries on small clouds
// (exact integer results), and the OctFormer block and OctGPT windowed RoPE
// attention against the independent float64 PyTorch reference
// (scripts/reference/octree_reference.py -> test/fixtures/octree).
// Block tolerance 1e-5 (max |Δ| / max |ref|): fp32 LayerNorm, GEMMs of ≤ 96
// terms, a softmax over 8 keys and the erf approximation (1.5e-7).
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { octree, Tensor } from '../lib/index.js';
import { openCheckpoint } from '../lib/io/checkpoint.js';
import { codeOf } from './error-code.js';

const fixture = openCheckpoint(join(import.meta.dirname, 'fixtures', 'octree', 'block.safetensors'));
afterAll(() => fixture.close());
function ref<T extends Float32Array | Int32Array>(name: string): T {
  const t = fixture.tensors.get(name);
  if (!t) throw new Error(`fixture ${name} is missing`);
  return t.load().data as T;
}
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / den;
}

function grid(n: number, seed: number): Float32Array {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 1.8 - 0.9;
  return Float32Array.from({ length: n * 3 }, rnd);
}

describe('octree construction', () => {
  it('builds the ocnn layout and reports points outside the box', async () => {
    const pts = grid(200, 3);
    pts.set([1.5, 0, 0, 0, -2, 0, 1, 1, 1], 0);  // two outside, one on the +1 corner (last cell)
    const { octree: t, report } = await octree.Octree.build({ points: pts, depth: 4, fullDepth: 1 });
    expect(report.pointsOutside).toBe(2);
    expect(report.pointsUsed).toBe(198);
    expect(report.pointNode[0]).toBe(-1);
    expect(report.pointNode[2]).toBeGreaterThanOrEqual(0);
    expect(t.nnum.slice(0, 2)).toEqual([1, 8]);
    for (let d = 2; d <= 4; d++) expect(t.nnum[d]).toBe(8 * t.nnumNonEmpty[d - 1]!);
    const leaf = t.level(4);
    const corner = (4095n);  // x = y = z = 15 at depth 4
    expect(await t.searchKeys(4, BigInt64Array.from([corner, 1n << 48n]))).toEqual(Int32Array.from([leaf.keys.indexOf(corner), -1]));
    for (let i = 1; i < leaf.nnum; i++) expect(leaf.keys[i]! > leaf.keys[i - 1]!).toBe(true);
  });

  it('merging single octrees equals building the batched cloud', async () => {
    const a = grid(150, 5), b = grid(90, 7);
    const all = new Float32Array(a.length + b.length);
    all.set(a); all.set(b, a.length);
    const ids = Int32Array.from({ length: 240 }, (_, i) => (i < 150 ? 0 : 1));
    const batched = (await octree.Octree.build({ points: all, batchIds: ids, batchSize: 2, depth: 5 })).octree;
    const merged = await octree.Octree.merge([
      (await octree.Octree.build({ points: a, depth: 5 })).octree, (await octree.Octree.build({ points: b, depth: 5 })).octree]);
    for (let d = 0; d <= 5; d++) {
      expect(merged.level(d).keys).toEqual(batched.level(d).keys);
      expect(merged.level(d).children).toEqual(batched.level(d).children);
      expect(merged.level(d).batchNnum).toEqual(batched.level(d).batchNnum);
    }
    expect(merged.points).toEqual(batched.points);
  });

  it('split + grow regrow the built tree; serialization orders are permutations', async () => {
    const t = (await octree.Octree.build({ points: grid(300, 11), depth: 5 })).octree;
    const flags = Int32Array.from(t.level(3).children, (c) => (c >= 0 ? 1 : 0));
    const g = await t.split(3, flags);
    expect(g.depth).toBe(4);
    expect(g.level(4).keys).toEqual(t.level(4).keys);
    for (const order of ['z', 'z-trans', 'hilbert', 'hilbert-trans'] as const) {
      const { perm, inverse } = await octree.serialize(t, 5, order, true);
      expect(perm.length).toBe(t.level(5).nnumNonEmpty);
      for (let r = 0; r < perm.length; r++) expect(inverse[perm[r]!]).toBe(r);
      if (order === 'z') expect(Array.from(perm)).toEqual(Array.from(perm.keys()));
    }
    const p = await t.inputFeatures('P', false);
    expect(p.shape).toEqual([t.level(5).nnum, 3]);
    expect(await codeOf(t.inputFeatures('N'))).toBe('ERR_INVALID_ARGUMENT');  // built without normals
  });
});

describe('octree attention vs the PyTorch reference', () => {
  const meta = fixture.metadata;
  const C = Number(meta.channels), heads = Number(meta.heads), K = Number(meta.window);
  const build = async () => (await octree.Octree.build({
    points: ref('points'), normals: ref('normals'), batchIds: ref('batch_ids'), batchSize: Number(meta.batch_size),
    depth: Number(meta.depth), fullDepth: Number(meta.full_depth),
  })).octree;

  it('has the reference nodes and nempty neighbours', async () => {
    const t = await build();
    const D = t.depth, lvl = t.level(D);
    const keys: number[] = [];
    for (let i = 0; i < lvl.nnum; i++) if (lvl.children[i]! >= 0) keys.push(Number(lvl.keys[i]! & 0xffffffffn));
    expect(keys).toEqual(Array.from(ref<Int32Array>('keys_lo')));
    const nb = await t.neighbors(D, { nempty: true });
    expect(nb.data).toEqual(ref<Int32Array>('neighbors'));
  });

  it('OctFormer block (dilation 1 and 2) matches', async () => {
    const t = await build();
    const w = (n: string) => ref<Float32Array>(n);
    const block = new octree.OctFormerBlock({
      cpeWeight: w('cpe_weight'), bnWeight: w('bn_weight'), bnBias: w('bn_bias'), bnMean: w('bn_mean'), bnVar: w('bn_var'),
      norm1Weight: w('norm1_weight'), norm1Bias: w('norm1_bias'), qkvWeight: w('qkv_weight'), qkvBias: w('qkv_bias'),
      projWeight: w('proj_weight'), projBias: w('proj_bias'), norm2Weight: w('norm2_weight'), norm2Bias: w('norm2_bias'),
      fc1Weight: w('fc1_weight'), fc1Bias: w('fc1_bias'), fc2Weight: w('fc2_weight'), fc2Bias: w('fc2_bias'),
    }, { channels: C, heads });
    const nb = await t.neighbors(t.depth, { nempty: true });
    const x = Tensor.from(w('x'), [nb.rows, C]);
    for (const [dil, name] of [[1, 'out_dilation1'], [2, 'out_dilation2']] as const) {
      const plan = await octree.windowPlan(t.batchIds(t.depth, true), t.batchSize, { window: K, dilation: dil });
      const y = await block.forward(x, nb, plan);
      expect(maxRel(y.data as Float32Array, w(name))).toBeLessThan(1e-5);
    }
  });

  it('OctGPT 3D RoPE with shifted, dilated windows matches', async () => {
    const t = await build();
    const n = t.level(t.depth).nnumNonEmpty;
    const phi = ref<Float32Array>('phi'), theta = ref<Float32Array>('theta');
    const freqs = octree.octgptRopeFreqs(C / heads, Array.from(phi, (p, h) => ({ phi: p, theta: theta[h]! })));
    const rope = octree.octgptRope(octree.octgptPositions(t, t.depth), freqs);
    const plan = await octree.windowPlan(t.batchIds(t.depth, true), t.batchSize, { window: K, dilation: 2, shift: true });
    const [q, k, v] = ['q', 'k', 'v'].map((s) => Tensor.from(ref<Float32Array>(s), [n, C]));
    const y = await octree.windowAttention(q!, k!, v!, heads, plan, rope);
    expect(maxRel(y.data as Float32Array, ref('attn_rope_shift_dil2'))).toBeLessThan(1e-5);
  });
});

describe('octree bad input', () => {
  const pts = grid(20, 1);
  it('refuses bad clouds and options with TesseraError codes', async () => {
    const bad = pts.slice(); bad[4] = NaN;
    expect(await codeOf(octree.Octree.build({ points: bad, depth: 4 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(octree.Octree.build({ points: new Float32Array(0), depth: 4 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(octree.Octree.build({ points: pts, depth: 17 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(octree.Octree.build({ points: pts, depth: 3, fullDepth: 4 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(octree.Octree.build({ points: pts, normals: new Float32Array(9), depth: 4 }))).toBe('ERR_SHAPE');
    expect(await codeOf(() => octree.Octree.build({ points: pts, features: new Float32Array(7), depth: 4 }))).toBe('ERR_SHAPE');
    const out = pts.slice(); out[0] = 3;
    expect(await codeOf(octree.Octree.build({ points: out, depth: 4, outside: 'error' }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(octree.Octree.build({ points: pts, depth: 4, batchSize: 2, batchIds: new Int32Array(20).fill(2) }))).toBe('ERR_INVALID_ARGUMENT');
    const t = (await octree.Octree.build({ points: pts, depth: 4 })).octree;
    expect(await codeOf(t.neighbors(9))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(() => t.neighbors(2, { kernel: '444' as '333' }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(() => octree.serialize(t, 4, 'peano' as 'z'))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(octree.windowPlan(new Int32Array([0, 1]), 1, { window: 4 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(t.split(2, new Int32Array(3)))).toBe('ERR_SHAPE');
    const x = Tensor.from(new Float32Array(8), [4, 2]);
    expect(await codeOf(octree.gatherRows(x, Tensor.from(new Int32Array([0, 4]), [2])))).toBe('ERR_INVALID_ARGUMENT');
  });
});
