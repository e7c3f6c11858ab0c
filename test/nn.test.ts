// NN ops through the addon: conv2d, norms, resize (against PyTorch's own
// outputs in test/fixtures/resize), vq/embedding and sampling, each against a
// float64 reference written here from the formulas in the native headers.
// fp32 tolerance 1e-5 (‖out − ref‖/‖ref‖): sums of ≤ 300 fp32 products and a
// few roundings per element.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  cfgCombine, columns, conv2d, embedding, groupNorm, layerNorm, philoxUniform, resize, rmsNorm, sample, Tensor,
  vqNearest, type ResizeMode,
} from '../lib/index.js';
import { randomArray, relError } from './reference.js';

const TOL = 1e-5;

function refConv(x: Float32Array, w: Float32Array, b: Float32Array | undefined, N: number, Ci: number, H: number,
  W: number, Co: number, kh: number, kw: number, s: number, [pt, pb, pl, pr]: number[], groups: number): Float64Array {
  const Ho = Math.floor((H + pt + pb - kh) / s) + 1, Wo = Math.floor((W + pl + pr - kw) / s) + 1;
  const Cig = Ci / groups, Cog = Co / groups;
  const out = new Float64Array(N * Co * Ho * Wo);
  for (let n = 0; n < N; n++) for (let o = 0; o < Co; o++) for (let y = 0; y < Ho; y++) for (let xx = 0; xx < Wo; xx++) {
    let acc = b ? b[o]! : 0;
    for (let c = 0; c < Cig; c++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const iy = y * s - pt + i, ix = xx * s - pl + j;
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      const ci = Math.floor(o / Cog) * Cig + c;
      acc += w[((o * Cig + c) * kh + i) * kw + j]! * x[((n * Ci + ci) * H + iy) * W + ix]!;
    }
    out[((n * Co + o) * Ho + y) * Wo + xx] = acc;
  }
  return out;
}

describe('conv2d matches the float64 reference', () => {
  const cases = [
    { name: '3x3 pad 1', N: 2, Ci: 5, H: 9, W: 11, Co: 7, k: 3, s: 1, pad: [1, 1, 1, 1], groups: 1 },
    { name: 'downsample: pad bottom/right 1, stride 2', N: 1, Ci: 4, H: 16, W: 16, Co: 6, k: 3, s: 2, pad: [0, 1, 0, 1], groups: 1 },
    { name: '1x1', N: 2, Ci: 6, H: 5, W: 7, Co: 3, k: 1, s: 1, pad: [0, 0, 0, 0], groups: 1 },
    { name: 'depthwise', N: 1, Ci: 4, H: 6, W: 5, Co: 4, k: 3, s: 1, pad: [1, 1, 1, 1], groups: 4 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const x = randomArray(c.N * c.Ci * c.H * c.W), w = randomArray(c.Co * (c.Ci / c.groups) * c.k * c.k);
      const b = randomArray(c.Co);
      const out = await conv2d({
        x: Tensor.from(x, [c.N, c.Ci, c.H, c.W]), weight: Tensor.from(w, [c.Co, c.Ci / c.groups, c.k, c.k]),
        bias: Tensor.from(b, [c.Co]), stride: c.s, padding: c.pad as [number, number, number, number], groups: c.groups,
      });
      const ref = refConv(x, w, b, c.N, c.Ci, c.H, c.W, c.Co, c.k, c.k, c.s, c.pad, c.groups);
      expect(out.numel).toBe(ref.length);
      expect(relError(out.data as Float32Array, ref)).toBeLessThan(TOL);
    });
  }

  it('accumulate adds into out (a residual in place)', async () => {
    const x = randomArray(2 * 3 * 6 * 6), w = randomArray(4 * 3 * 9), r = randomArray(2 * 4 * 6 * 6);
    const out = Tensor.from(r.slice(), [2, 4, 6, 6]);
    await conv2d({ x: Tensor.from(x, [2, 3, 6, 6]), weight: Tensor.from(w, [4, 3, 3, 3]), padding: 1, out, accumulate: true });
    const ref = refConv(x, w, undefined, 2, 3, 6, 6, 4, 3, 3, 1, [1, 1, 1, 1], 1).map((v, i) => v + r[i]!);
    expect(relError(out.data as Float32Array, ref)).toBeLessThan(TOL);
  });

  it('validation codes are stable', async () => {
    const x = Tensor.zeros([1, 4, 5, 5]);
    await expect(conv2d({ x, weight: Tensor.zeros([2, 3, 3, 3]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(conv2d({ x, weight: Tensor.zeros([2, 4, 7, 7]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(conv2d({ x, weight: Tensor.zeros([2, 4, 3, 3]), stride: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(conv2d({ x: Tensor.from(new Int32Array(100), [1, 4, 5, 5]), weight: Tensor.zeros([2, 4, 3, 3]) }))
      .rejects.toMatchObject({ code: 'ERR_DTYPE' });
  });
});

describe('norms match the float64 reference', () => {
  function stats(v: ArrayLike<number>, start: number, n: number, eps: number): [number, number] {
    let m = 0, s = 0;
    for (let i = 0; i < n; i++) m += v[start + i]!;
    m /= n;
    for (let i = 0; i < n; i++) s += (v[start + i]! - m) ** 2;
    return [m, 1 / Math.sqrt(s / n + eps)];
  }

  it('groupNorm (32 groups, affine, SiLU)', async () => {
    const N = 2, C = 64, S = 5 * 3, G = 32, cg = C / G;
    const x = randomArray(N * C * S), w = randomArray(C), b = randomArray(C);
    const out = await groupNorm({ x: Tensor.from(x, [N, C, 5, 3]), weight: Tensor.from(w, [C]), bias: Tensor.from(b, [C]), silu: true });
    const ref = new Float64Array(x.length);
    for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) {
      const base = (n * C + g * cg) * S, [m, r] = stats(x, base, cg * S, 1e-6);
      for (let i = 0; i < cg * S; i++) {
        const c = g * cg + Math.floor(i / S), y = (x[base + i]! - m) * r * w[c]! + b[c]!;
        ref[base + i] = y / (1 + Math.exp(-y));
      }
    }
    expect(relError(out.data as Float32Array, ref)).toBeLessThan(TOL);
  });

  it('layerNorm with AdaLN scale/shift read in place from one [B, 6C] tensor', async () => {
    const B = 2, L = 3, C = 40;
    const x = randomArray(B * L * C), ada = randomArray(B * 6 * C);
    const adaT = Tensor.from(ada, [B, 6 * C]);
    const out = await layerNorm({ x: Tensor.from(x, [B, L, C]), scale: columns(adaT, 2 * C, C), shift: columns(adaT, 4 * C, C) });
    const ref = new Float64Array(x.length);
    for (let r = 0; r < B * L; r++) {
      const [m, rs] = stats(x, r * C, C, 1e-6), b = Math.floor(r / L);
      for (let c = 0; c < C; c++)
        ref[r * C + c] = (x[r * C + c]! - m) * rs * (1 + ada[b * 6 * C + 2 * C + c]!) + ada[b * 6 * C + 4 * C + c]!;
    }
    expect(relError(out.data as Float32Array, ref)).toBeLessThan(TOL);
  });

  it('rmsNorm in place', async () => {
    const R = 5, C = 33, x = randomArray(R * C), w = randomArray(C);
    const ref = new Float64Array(x.length);
    for (let r = 0; r < R; r++) {
      let ms = 0;
      for (let c = 0; c < C; c++) ms += x[r * C + c]! ** 2;
      const rs = 1 / Math.sqrt(ms / C + 1e-5);
      for (let c = 0; c < C; c++) ref[r * C + c] = x[r * C + c]! * rs * w[c]!;
    }
    const t = Tensor.from(x, [R, C]);
    await rmsNorm({ x: t, weight: Tensor.from(w, [C]), out: t });
    expect(relError(x, ref)).toBeLessThan(TOL);
  });
});

// nearest, area and bilinear are convex combinations: float32 rounding keeps
// them within 1e-6 of max |ref|. Bicubic weights have negative lobes (Σ|w| up
// to 1.375 per axis, 1.89 in 2-D), so its 16-term sums pass through values up
// to 1.89·max |x|; PyTorch and Tessera round those differently (both are
// ~1.4e-6 away from the float64 value), so 1e-6 is taken relative to that.
describe('resize agrees with PyTorch (test/fixtures/resize, written by torch.nn.functional.interpolate)', () => {
  interface Case { in: number[]; out: number[]; input: number; outputs: Record<string, number> }
  const dir = join(import.meta.dirname, 'fixtures', 'resize');
  const meta = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { modes: ResizeMode[]; cases: Case[] };
  const bin = readFileSync(join(dir, 'data.bin'));
  const data = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const maxAbs = (a: ArrayLike<number>) => Array.prototype.reduce.call(a, (m: number, v) => Math.max(m, Math.abs(v as number)), 0) as number;
  for (const mode of meta.modes) {
    it(`${mode}: ${meta.cases.length} cases`, async () => {
      for (const c of meta.cases) {
        const xs = data.slice(c.input, c.input + size(c.in));
        const out = await resize({ x: Tensor.from(xs, c.in), size: [c.out[2]!, c.out[3]!], mode });
        const ref = data.subarray(c.outputs[mode]!, c.outputs[mode]! + size(c.out));
        const got = out.data as Float32Array;
        let diff = 0;
        for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(got[i]! - ref[i]!));
        const scale = mode === 'bicubic' ? 1.89 * maxAbs(xs) : maxAbs(ref);
        expect(diff, `${mode} [${c.in.join(',')}] -> [${c.out.join(',')}]`).toBeLessThanOrEqual(1e-6 * scale);
      }
    });
  }
});

describe('vqNearest and embedding', () => {
  it('nearest codebook rows of NCHW latents (channelsFirst), first index on ties', async () => {
    const B = 2, Cz = 8, H = 3, W = 4, V = 64;
    const E = randomArray(V * Cz), z = randomArray(B * Cz * H * W);
    for (let k = 0; k < Cz; k++) { E[40 * Cz + k] = E[9 * Cz + k]!; z[(1 * Cz + k) * H * W + 5] = E[9 * Cz + k]!; }
    const idx = await vqNearest({ z: Tensor.from(z, [B, Cz, H, W]), codebook: Tensor.from(E, [V, Cz]), channelsFirst: true });
    expect(idx.shape).toEqual([B, H, W]);
    const got = idx.data as Int32Array;
    for (let b = 0; b < B; b++) for (let p = 0; p < H * W; p++) {
      let best = Infinity, arg = -1;
      for (let v = 0; v < V; v++) {
        let d = 0;
        for (let k = 0; k < Cz; k++) d += (z[(b * Cz + k) * H * W + p]! - E[v * Cz + k]!) ** 2;
        if (d < best) { best = d; arg = v; }
      }
      expect(got[b * H * W + p]).toBe(arg);
    }
    expect(got[1 * H * W + 5]).toBe(9);
  });

  it('embedding gathers rows into channels-first maps and refuses bad indices', async () => {
    const V = 10, C = 3, table = randomArray(V * C), idx = Int32Array.from([3, 0, 9, 3, 7, 1]);
    const out = await embedding({ table: Tensor.from(table, [V, C]), indices: Tensor.from(idx, [2, 1, 3]), channelsFirst: true });
    expect(out.shape).toEqual([2, C, 1, 3]);
    const d = out.data as Float32Array;
    for (let b = 0; b < 2; b++) for (let p = 0; p < 3; p++) for (let k = 0; k < C; k++)
      expect(d[(b * C + k) * 3 + p]).toBe(table[idx[b * 3 + p]! * C + k]);
    await expect(embedding({ table: Tensor.from(table, [V, C]), indices: Tensor.from(Int32Array.from([10]), [1]) }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('sampling', () => {
  function refProbs(l: ArrayLike<number>, T: number, k: number, p: number): Float64Array {
    const V = l.length, x = Array.from(l, (v) => v / Math.max(T, 1e-5));
    const kth = k > 0 && k < V ? [...x].sort((a, b) => b - a)[k - 1]! : -Infinity;
    const mx = Math.max(...x), e = new Float64Array(V);
    let sum = 0;
    for (let i = 0; i < V; i++) { e[i] = x[i]! >= kth ? Math.exp(x[i]! - mx) : 0; sum += e[i]!; }
    if (p > 0 && p < 1) {
      const order = [...Array(V).keys()].filter((i) => e[i]! > 0).sort((a, b) => x[b]! - x[a]! || a - b);
      let cum = 0;
      order.forEach((i, r) => { const q = e[i]!; if (r > 0 && cum > p * sum) e[i] = 0; cum += q; });
      sum = e.reduce((a, b) => a + b, 0);
    }
    return e.map((v) => v / sum);
  }

  it('probs follow temperature/top-k/top-p and tokens are reproducible per seed', async () => {
    const B = 4, V = 300, logits = randomArray(B * V).map((v) => v * 4);
    const run = async (seed: number) => {
      const probs = Tensor.empty([B, V]);
      const tokens = await sample({ logits: Tensor.from(logits, [B, V]), temperature: 0.8, topK: 40, topP: 0.9, seed, step: 3, probs });
      return { tokens: Array.from(tokens.data as Int32Array), probs: probs.data as Float32Array };
    };
    const a = await run(42), b = await run(42);
    expect(a.tokens).toEqual(b.tokens);
    for (let r = 0; r < B; r++) {
      const ref = refProbs(logits.subarray(r * V, (r + 1) * V), 0.8, 40, 0.9);
      expect(relError(a.probs.subarray(r * V, (r + 1) * V), ref)).toBeLessThan(TOL);
      expect(ref[a.tokens[r]!]).toBeGreaterThan(0);
    }
  });

  it('cfgHalves equals explicit uncond and cfgCombine', async () => {
    const B = 3, V = 50, both = randomArray(2 * B * V);
    const t = Tensor.from(both, [2 * B, V]);
    const halves = await sample({ logits: t, cfgHalves: true, cfgScale: 3, seed: 7, topK: 10 });
    const explicit = await sample({
      logits: Tensor.from(both.slice(0, B * V), [B, V]), uncond: Tensor.from(both.slice(B * V), [B, V]), cfgScale: 3, seed: 7, topK: 10,
    });
    const mixed = await cfgCombine({ cond: Tensor.from(both.slice(0, B * V), [B, V]), uncond: Tensor.from(both.slice(B * V), [B, V]), scale: 3 });
    const viaMix = await sample({ logits: mixed, seed: 7, topK: 10 });
    expect(Array.from(halves.data as Int32Array)).toEqual(Array.from(explicit.data as Int32Array));
    expect(Array.from(viaMix.data as Int32Array)).toEqual(Array.from(explicit.data as Int32Array));
  });

  it('philoxUniform is Philox4x32-10 (Random123 known answer) as a 53-bit double', () => {
    // counter = key = 0 gives words 0x6627e8d5, 0xe169c58d, ...: u = ((w1 << 32 | w0) >> 11) / 2^53
    const bits = ((0xe169c58dn << 32n) | 0x6627e8d5n) >> 11n;
    expect(philoxUniform(0, 0, 0)).toBe(Number(bits) / 2 ** 53);
    expect(philoxUniform(1n, 2, 3)).not.toBe(philoxUniform(1n, 2, 4));
  });

  it('refuses NaN logits', async () => {
    await expect(sample({ logits: Tensor.from(Float32Array.from([0, NaN, 1]), [1, 3]) }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
