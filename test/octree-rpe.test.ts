// OctFormer's relative position bias through the native octree_rpe_bias
// kernel: bit for bit against the plain-JS loop windowAttention used before
// (each float32 addition rounded with Math.fround), against a float64 sum,
// windowAttention with RPE against that JS-bias path through the same fused
// attention (bit for bit), that the op leaves the event loop free, and bad
// input refused with TesseraError codes. The official OctFormer block with
// RPE is covered by test/official-octgpt.test.ts (committed fixtures).
import { describe, expect, it } from 'vitest';

import { native } from '../lib/native.js';
import { gatherRows, rpeBias, windowAttention, windowPlan, type RelativePositionBias } from '../lib/models/octree/attention.js';
import { attention } from '../lib/ops/attention.js';
import { Tensor } from '../lib/tensor.js';
import { codeOf } from './error-code.js';

/** Seeded uniform [0, 1) (xorshift-multiply; a fresh seed per run unless TESSERA_TEST_SEED). */
const seed0 = Number(process.env.TESSERA_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
function rng(salt: number): () => number {
  let s = (seed0 ^ Math.imul(salt, 0x9e3779b1)) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

/** The pre-native reference: windowAttention's former loop, unchanged. */
function rpeBiasJs(rpe: RelativePositionBias, heads: number, perm: Int32Array, K: number, w0: number, n: number): Float32Array {
  const { table, bound: B, xyz } = rpe, R = 2 * B + 1, H = heads;
  const out = new Float32Array(n * H * K * K);
  const clampIdx = (d: number): number => (d < -B ? 0 : d > B ? 2 * B : d + B);
  for (let w = 0; w < n; w++) {
    const base = (w0 + w) * K;
    for (let i = 0; i < K; i++) {
      const ti = perm[base + i]!;
      if (ti < 0) continue;
      for (let j = 0; j < K; j++) {
        const tj = perm[base + j]!;
        if (tj < 0) continue;
        const rx = clampIdx(xyz[3 * ti]! - xyz[3 * tj]!) * H;
        const ry = (R + clampIdx(xyz[3 * ti + 1]! - xyz[3 * tj + 1]!)) * H;
        const rz = (2 * R + clampIdx(xyz[3 * ti + 2]! - xyz[3 * tj + 2]!)) * H;
        for (let h = 0; h < H; h++)
          out[((w * H + h) * K + i) * K + j] = Math.fround(Math.fround(table[rx + h]! + table[ry + h]!) + table[rz + h]!);
      }
    }
  }
  return out;
}

/** The same sum in float64 (no rounding between the terms). */
function rpeBias64(rpe: RelativePositionBias, heads: number, perm: Int32Array, K: number, w0: number, n: number): Float64Array {
  const { table, bound: B, xyz } = rpe, R = 2 * B + 1;
  const out = new Float64Array(n * heads * K * K);
  const row = (a: number, d: number) => a * R + Math.min(Math.max(d, -B), B) + B;
  for (let w = 0; w < n; w++)
    for (let i = 0; i < K; i++)
      for (let j = 0; j < K; j++) {
        const ti = perm[(w0 + w) * K + i]!, tj = perm[(w0 + w) * K + j]!;
        if (ti < 0 || tj < 0) continue;
        for (let h = 0; h < heads; h++) {
          let s = 0;
          for (let a = 0; a < 3; a++) s += table[row(a, xyz[3 * ti + a]! - xyz[3 * tj + a]!) * heads + h]!;
          out[((w * heads + h) * K + i) * K + j] = s;
        }
      }
  return out;
}

/** Random table (magnitudes 1e-3 .. 1e3, so the roundings matter), coordinates and batch ids. */
function randomCase(salt: number, N: number, heads: number, bound: number, samples: number, span = 12) {
  const u = rng(salt);
  const table = Float32Array.from({ length: 3 * (2 * bound + 1) * heads }, () => (u() * 2 - 1) * 10 ** (u() * 6 - 3));
  const xyz = Int32Array.from({ length: 3 * N }, () => Math.floor(u() * span));
  const batchIds = new Int32Array(N);
  for (let i = 0, b = 0; i < N; i++) { if (b < samples - 1 && u() < samples / N) b++; batchIds[i] = b; }
  return { rpe: { table, bound, xyz }, batchIds, u };
}

function sameBits(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let diff = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) diff++;
  return diff;
}

function relError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) { num += (out[i]! - ref[i]!) ** 2; den += ref[i]! ** 2; }
  return Math.sqrt(num / den);
}


describe('octree RPE bias (native)', () => {
  it('equals the JS loop bit for bit (odd K, several heads, bounds 1 and 3, dilation, padding)', async () => {
    let salt = 1, pads = 0;
    for (const [K, heads, bound, dilation, samples] of [[13, 5, 1, 1, 3], [7, 3, 3, 2, 2], [32, 8, 3, 1, 1], [1, 2, 1, 1, 2], [9, 1, 3, 3, 4]] as const) {
      const N = 150 + 37 * salt;
      const { rpe, batchIds } = randomCase(salt++, N, heads, bound, samples);
      // Extreme coordinates: int32 differences that only fit 33 bits clamp like the JS doubles.
      rpe.xyz[0] = 2147483647; rpe.xyz[4] = -2147483648;
      const plan = await windowPlan(batchIds, samples, { window: K, dilation });
      const perm = plan.perm.data as Int32Array;
      pads += perm.filter((t) => t < 0).length;
      const W = plan.numWindows;
      for (const [w0, n] of [[0, W], [1, W - 2], [W - 1, 1], [Math.floor(W / 2), 0]] as const) {
        const got = await rpeBias(rpe, heads, plan.perm, K, w0, n);
        expect(got.shape).toEqual([n, heads, K, K]);
        const want = rpeBiasJs(rpe, heads, perm, K, w0, n);
        expect(sameBits(got.data as Float32Array, want)).toBe(0);
        if (n > 0) expect(relError(got.data as Float32Array, rpeBias64(rpe, heads, perm, K, w0, n))).toBeLessThan(1e-6);
        got.dispose();
      }
    }
    expect(pads).toBeGreaterThan(0);  // padding slots were exercised
  });

  it('gives windowAttention with RPE the output of the former JS-bias path, bit for bit (several chunks)', async () => {
    // K 512, 8 heads: 4 windows per 2^23-value chunk, so 3000 tokens take 2 chunks.
    for (const [N, K, heads, d, bound, dilation, samples] of [[3000, 512, 8, 4, 3, 1, 2], [400, 13, 5, 3, 1, 2, 3]] as const) {
      const { rpe, batchIds, u } = randomCase(100 + K, N, heads, bound, samples, 40);
      const C = heads * d;
      const [q, k, v] = [0, 1, 2].map(() => Tensor.from(Float32Array.from({ length: N * C }, () => u() * 2 - 1), [N, C]));
      const plan = await windowPlan(batchIds, samples, { window: K, dilation });
      const got = await windowAttention(q!, k!, v!, heads, plan, undefined, rpe);
      // The former path: the same chunks, gathers, fused attention and scatter, with the JS bias.
      const W = plan.numWindows, perm = plan.perm.data as Int32Array, seg = plan.segments.data as Int32Array;
      const chunk = Math.max(1, Math.floor((1 << 23) / (heads * K * K)));
      if (K === 512) expect(W).toBeGreaterThan(chunk);
      const want = new Float32Array(N * C);
      for (let w0 = 0; w0 < W; w0 += chunk) {
        const n = Math.min(chunk, W - w0);
        const index = Tensor.from(perm.slice(w0 * K, (w0 + n) * K), [n * K]);
        const segments = Tensor.from(seg.slice(w0 * K, (w0 + n) * K), [n, K]);
        const shape = [n, K, heads, d];
        const [qw, kw, vw] = await Promise.all([q!, k!, v!].map((t) => gatherRows(t, index)));
        const ow = await attention({
          q: qw!.reshape(shape), k: kw!.reshape(shape), v: vw!.reshape(shape), layout: 'blhd',
          mask: [{ segments: { q: segments, k: segments } }, { additive: Tensor.from(rpeBiasJs(rpe, heads, perm, K, w0, n), [n, heads, K, K]) }],
        });
        const o = ow.data as Float32Array, idx = index.data as Int32Array;
        for (let s = 0; s < n * K; s++) if (idx[s]! >= 0) want.set(o.subarray(s * C, (s + 1) * C), idx[s]! * C);
      }
      expect(sameBits(got.data as Float32Array, want)).toBe(0);
      // And the bias matters: without it the output differs.
      const plain = await windowAttention(q!, k!, v!, heads, plan);
      expect(relError(plain.data as Float32Array, want)).toBeGreaterThan(1e-3);
    }
  }, 60_000);

  it('runs off the event loop', async () => {
    const { rpe, batchIds } = randomCase(7, 64 * 256, 8, 3, 1, 64);
    const plan = await windowPlan(batchIds, 1, { window: 256 });
    let ticks = 0, done = false;
    const p = rpeBias(rpe, 8, plan.perm, 256, 0, plan.numWindows).then((t) => { done = true; return t; });
    while (!done) { await new Promise((r) => setImmediate(r)); ticks++; }
    const t = await p;
    expect(t.shape).toEqual([64, 8, 256, 256]);  // 33.5M values: milliseconds of native work
    expect(ticks).toBeGreaterThan(1);
    t.dispose();
  });

  it('refuses bad input with TesseraError codes', async () => {
    const { rpe, batchIds } = randomCase(9, 50, 2, 1, 1);
    const plan = await windowPlan(batchIds, 1, { window: 8 });  // 7 windows
    const W = plan.numWindows;
    const call = (o: Record<string, unknown>) => (native() as unknown as { octreeRpeBias(a: Record<string, unknown>): Promise<void> }).octreeRpeBias(o);
    const table = Tensor.from(rpe.table, [9, 2]), xyz = Tensor.from(rpe.xyz, [50, 3]);
    const out = (n: number, H = 2, K = 8) => Tensor.empty([n, H, K, K]);
    const args = (o: Record<string, unknown> = {}) => ({ table: table.native(), xyz: xyz.native(), perm: plan.perm.native(), out: out(2).native(), window: 8, w0: 0, n: 2, ...o });
    expect(await codeOf(call(args()))).toBe('no error');
    // dtypes
    expect(await codeOf(call(args({ table: Tensor.from(new Int32Array(18), [9, 2]).native() })))).toBe('ERR_DTYPE');
    expect(await codeOf(call(args({ xyz: Tensor.from(new Float32Array(150), [50, 3]).native() })))).toBe('ERR_DTYPE');
    expect(await codeOf(call(args({ perm: Tensor.from(new Float32Array(W * 8), [W * 8]).native() })))).toBe('ERR_DTYPE');
    expect(await codeOf(call(args({ out: Tensor.empty([2, 2, 8, 8], 'int32').native() })))).toBe('ERR_DTYPE');
    // shapes
    expect(await codeOf(call(args({ table: Tensor.from(new Float32Array(16), [8, 2]).native() })))).toBe('ERR_SHAPE');  // 8 rows: not 3·(2B+1)
    expect(await codeOf(call(args({ table: Tensor.from(new Float32Array(12), [6, 2]).native() })))).toBe('ERR_SHAPE');  // 2B+1 = 2
    expect(await codeOf(call(args({ xyz: Tensor.from(new Int32Array(100), [50, 2]).native() })))).toBe('ERR_SHAPE');
    expect(await codeOf(call(args({ perm: Tensor.from(new Int32Array(W * 8 - 1), [W * 8 - 1]).native() })))).toBe('ERR_SHAPE');
    expect(await codeOf(call(args({ out: out(3).native() })))).toBe('ERR_SHAPE');
    expect(await codeOf(call(args({ out: out(2, 3).native() })))).toBe('ERR_SHAPE');
    // windows and positions
    expect(await codeOf(call(args({ w0: W - 1 })))).toBe('ERR_INVALID_ARGUMENT');  // w0 + n > windows
    expect(await codeOf(call(args({ w0: -1 })))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(call(args({ window: 0 })))).toBe('ERR_INVALID_ARGUMENT');
    const badPerm = (plan.perm.data as Int32Array).slice(); badPerm[3] = 50;
    expect(await codeOf(call(args({ perm: Tensor.from(badPerm, [badPerm.length]).native() })))).toBe('ERR_INVALID_ARGUMENT');
    badPerm[3] = -2;
    expect(await codeOf(call(args({ perm: Tensor.from(badPerm, [badPerm.length]).native() })))).toBe('ERR_INVALID_ARGUMENT');
    badPerm[3] = 50;  // outside the windows asked for: not read, not refused
    expect(await codeOf(call(args({ perm: Tensor.from(badPerm, [badPerm.length]).native(), w0: 1, n: 2 })))).toBe('no error');
    // n·H·K·K overflow: K = 2^20, 16384 heads, one window = 2^54 values
    const bigK = 1 << 20;
    const bigPerm = Tensor.from(new Int32Array(bigK).fill(-1), [bigK]);
    expect(await codeOf(call({ table: Tensor.from(new Float32Array(3 * 16384), [3, 16384]).native(), xyz: xyz.native(), perm: bigPerm.native(), out: out(1).native(), window: bigK, w0: 0, n: 1 })))
      .toBe('ERR_INVALID_ARGUMENT');
    // aliasing: out over the table
    const shared = new Float32Array(2 * 2 * 8 * 8);
    expect(await codeOf(call(args({ table: Tensor.from(shared.subarray(0, 18), [9, 2]).native(), out: Tensor.from(shared, [2, 2, 8, 8]).native() })))).toBe('ERR_ALIAS');
    // the TS wrapper and windowAttention
    expect(await codeOf(rpeBias({ ...rpe, table: rpe.table.subarray(0, 17) }, 2, plan.perm, 8, 0, 1))).toBe('ERR_SHAPE');
    expect(await codeOf(rpeBias({ ...rpe, xyz: rpe.xyz.subarray(0, 148) }, 2, plan.perm, 8, 0, 1))).toBe('ERR_SHAPE');
    expect(await codeOf(rpeBias(rpe, 2, plan.perm, 8, 0, W + 1))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(rpeBias(rpe, 2, plan.perm, 4096, 0, 65536))).toBe('ERR_INVALID_ARGUMENT');
    const q = Tensor.from(new Float32Array(50 * 4), [50, 4]);
    expect(await codeOf(windowAttention(q, q, q, 2, plan, undefined, { ...rpe, xyz: rpe.xyz.subarray(0, 147) }))).toBe('ERR_SHAPE');
    expect(await codeOf(windowAttention(q, q, q, 2, plan, undefined, { ...rpe, bound: 2 }))).toBe('ERR_SHAPE');
  });
});
