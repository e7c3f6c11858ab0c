// linear() through the addon against the float64 reference, each epilogue.
// fp32 tolerance 1e-5 (K=96 fp32 accumulations); bf16 packing rounds x and W
// to 8 mantissa bits, so 1e-2.
import { describe, expect, it } from 'vitest';

import { linear, matmul, packWeight, Tensor } from '../lib/index.js';
import { randomArray, refLinear, relError } from './reference.js';

const M = 7, N = 33, K = 96;

describe('linear matches the float64 reference', () => {
  for (const activation of ['none', 'gelu_tanh', 'silu'] as const) {
    it(`bias + ${activation} + residual`, async () => {
      const x = randomArray(M * K), w = randomArray(N * K), b = randomArray(N), r = randomArray(M * N);
      const out = await linear({
        x: Tensor.from(x, [M, K]), weight: Tensor.from(w, [N, K]), bias: Tensor.from(b, [N]),
        residual: Tensor.from(r, [M, N]), activation,
      });
      expect(relError(out.data as Float32Array, refLinear(M, N, K, x, w, b, r, activation))).toBeLessThan(1e-5);
    });
  }

  it('with fp32 and bf16 packed weights, including a decode row (M=1)', async () => {
    const w = randomArray(N * K);
    const weight = Tensor.from(w, [N, K]);
    for (const [compute, tol] of [['float32', 1e-5], ['bfloat16', 1e-2]] as const) {
      const packed = await packWeight(weight, { compute });
      for (const m of [1, M]) {
        const x = randomArray(m * K);
        const out = await linear({ x: Tensor.from(x, [m, K]), packed });
        expect(relError(out.data as Float32Array, refLinear(m, N, K, x, w))).toBeLessThan(tol);
      }
      packed.dispose();
      await expect(linear({ x: Tensor.zeros([1, K]), packed })).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    }
  });

  it('gate per row group (AdaLN: x += g[sample] ⊙ (h·Wᵀ + b)), in place, unpacked and packed', async () => {
    // M = 3 samples × 5 tokens (packed path) and 3 × 1 (the M ≤ 4 GEMV path).
    for (const [G, T] of [[3, 5], [3, 1]] as const) {
      const m = G * T;
      const x = randomArray(m * K), w = randomArray(N * K), b = randomArray(N), g = randomArray(G * N), r = randomArray(m * N);
      const y = refLinear(m, N, K, x, w, b, undefined, 'gelu_tanh');
      const want = y.map((v, i) => g[Math.floor(Math.floor(i / N) / T) * N + (i % N)]! * v + r[i]!);
      const weight = Tensor.from(w, [N, K]);
      const packed = await packWeight(weight);
      for (const opt of [{ weight }, { packed }]) {
        const res = Tensor.from(r.slice(), [m, N]);
        const out = await linear({
          x: Tensor.from(x, [m, K]), ...opt, bias: Tensor.from(b, [N]), activation: 'gelu_tanh',
          gate: Tensor.from(g, [G, N]), residual: res, out: res,
        });
        expect(out).toBe(res);
        expect(relError(res.data as Float32Array, want)).toBeLessThan(1e-5);
      }
      packed.dispose();
    }
  });

  it('small-M weight streaming (M up to 33, odd K) with bf16 weights matches at the fp32 tolerance on bf16-exact inputs', async () => {
    // bf16-representable x and W: bf16 compute loses nothing to rounding, so a
    // dropped or misplaced k in the in-register widening would show.
    const toBf16 = (a: Float32Array): Float32Array => {
      const u = new Uint32Array(a.buffer.slice(0));
      for (let i = 0; i < u.length; i++) u[i] = (((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16) >>> 0;
      return new Float32Array(u.buffer);
    };
    const n = 45, k = 301;
    const w = toBf16(randomArray(n * k)), b = randomArray(n);
    for (const compute of ['float32', 'bfloat16'] as const) {
      const packed = await packWeight(Tensor.from(w, [n, k]), { compute });
      for (const m of [1, 2, 13, 18, 32, 33]) {
        const x = toBf16(randomArray(m * k));
        const out = await linear({ x: Tensor.from(x, [m, k]), packed, bias: Tensor.from(b, [n]), activation: 'silu' });
        expect(relError(out.data as Float32Array, refLinear(m, n, k, x, w, b, undefined, 'silu'))).toBeLessThan(1e-5);
      }
      packed.dispose();
    }
  });

  it('refuses a gate whose rows do not divide M, of the wrong width or dtype', async () => {
    const x = Tensor.zeros([4, 3]), weight = Tensor.zeros([5, 3]);
    await expect(linear({ x, weight, gate: Tensor.zeros([3, 5]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(linear({ x, weight, gate: Tensor.zeros([2, 4]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(linear({ x, weight, gate: Tensor.from(new Uint16Array(10), [2, 5], 'bfloat16') }))
      .rejects.toMatchObject({ code: 'ERR_DTYPE' });
    const out = Tensor.zeros([4, 5]);
    await expect(linear({ x, weight, out, gate: out })).rejects.toMatchObject({ code: 'ERR_ALIAS' });
  });

  it('matmul with a transposed operand', async () => {
    const a = randomArray(M * K), b = randomArray(N * K);
    const out = await matmul({ a: Tensor.from(a, [M, K]), b: Tensor.from(b, [N, K]), transB: true });
    expect(relError(out.data as Float32Array, refLinear(M, N, K, a, b))).toBeLessThan(1e-5);
  });

  it('validation codes are stable', async () => {
    await expect(linear({ x: Tensor.zeros([2, 3]), weight: Tensor.zeros([4, 5]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(linear({ x: Tensor.zeros([2, 3]), weight: Tensor.zeros([4, 3]), activation: 'relu' as never }))
      .rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const xi = Tensor.from(new Int32Array(6), [2, 3]);
    await expect(linear({ x: xi, weight: Tensor.zeros([4, 3]) })).rejects.toMatchObject({ code: 'ERR_DTYPE' });
    // a bias in bf16 passes the TS checks; the native core refuses it
    const bias = Tensor.from(new Uint16Array(4), [4], 'bfloat16');
    await expect(linear({ x: Tensor.zeros([2, 3]), weight: Tensor.zeros([4, 3]), bias })).rejects.toMatchObject({ code: 'ERR_DTYPE' });
  });
});

describe('machine ceilings (bench bindings)', () => {
  it('measure read and copy bandwidth; refuse bad arguments with a TesseraError', async () => {
    const { native } = await import('../lib/native.js');
    const { TesseraError } = await import('../lib/errors.js');
    expect(await native().measureReadBandwidth(2, 4 << 20)).toBeGreaterThan(0.1);
    expect(await native().measureCopyBandwidth(1, 4 << 20)).toBeGreaterThan(0.1);
    for (const [t, b] of [[0, 4096], [1, 100], ['2', 4096], [2, undefined]] as [unknown, unknown][]) {
      let err: unknown;
      try {
        await native().measureReadBandwidth(t as number, b as number);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TesseraError);
      expect((err as InstanceType<typeof TesseraError>).code).toBe('ERR_INVALID_ARGUMENT');
    }
  });
});
