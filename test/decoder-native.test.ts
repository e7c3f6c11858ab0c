// The composite decoder bindings (llamaBlocks, llamaDecode, varBlocks) at the boundary:
// malformed arguments are TesseraErrors with a code, never a crash, and a
// refused call leaves the caches and their lengths as they were. The
// arithmetic is checked against float64 references in
// test/native/test_decoder.cpp and against PyTorch through the models'
// fixtures (llamagen.test.ts, var.test.ts).
import { describe, expect, it } from 'vitest';

import { packWeight } from '../lib/ops/gemm.js';
import { native } from '../lib/native.js';
import { Tensor } from '../lib/tensor.js';
import { codeOf } from './error-code.js';


const rand = (n: number, seed: number): Float32Array => {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
};

describe('llamaBlocks boundary', () => {
  it('rejects malformed arguments with a code and writes nothing', async () => {
    const H = 2, hd = 4, d = H * hd, ffn = 12, L = 6;
    const w = async (n: number, k: number, seed: number) => packWeight(Tensor.from(rand(n * k, seed), [n, k]));
    const layer = {
      qkv: (await w(3 * d, d, 1)).handle(), wo: (await w(d, d, 2)).handle(), w1: (await w(ffn, d, 3)).handle(),
      w3: (await w(ffn, d, 4)).handle(), w2: (await w(d, ffn, 5)).handle(),
      attentionNorm: Tensor.from(rand(d, 6), [d]).native(), ffnNorm: Tensor.from(rand(d, 7), [d]).native(),
      cacheK: Tensor.zeros([1, H, L, hd]).native(), cacheV: Tensor.zeros([1, H, L, hd]).native(), lengths: new Int32Array([2]),
    };
    const args = {
      x: Tensor.from(rand(d, 8), [1, d]).native(), rows: 1, n: 1, heads: H, headDim: hd,
      cos: Tensor.from(rand(L * hd / 2, 9), [L, hd / 2]).native(), sin: Tensor.from(rand(L * hd / 2, 10), [L, hd / 2]).native(),
      positions: Tensor.from(new Int32Array([2]), [1]).native(), mask: 1, eps: 1e-5, layers: [layer],
    };
    const bad: [string, Record<string, unknown>][] = [
      ['ERR_INVALID_ARGUMENT', { ...args, layers: 'x' }],
      ['ERR_INVALID_ARGUMENT', { ...args, layers: [7] }],
      ['ERR_INVALID_ARGUMENT', { ...args, layers: [{ ...layer, qkv: {} }] }],
      ['ERR_DTYPE', { ...args, layers: [{ ...layer, lengths: [2] }] }],
      ['ERR_SHAPE', { ...args, layers: [{ ...layer, lengths: new Int32Array([2, 2]) }] }],
      ['ERR_SHAPE', { ...args, layers: [{ ...layer, wo: layer.w2 }] }],
      ['ERR_SHAPE', { ...args, layers: [{ ...layer, lengths: new Int32Array([L]) }] }],
      ['ERR_INVALID_ARGUMENT', { ...args, positions: Tensor.from(new Int32Array([L]), [1]).native() }],
      ['ERR_INVALID_ARGUMENT', { ...args, mask: 2 }],
      ['ERR_SHAPE', { ...args, x: Tensor.from(rand(2 * d, 8), [2, d]).native() }],
      ['ERR_INVALID_ARGUMENT', { ...args, head: layer.wo }],  // part of the head
    ];
    for (const [code, a] of bad) {
      expect(await codeOf(() => native().llamaBlocks(a))).toBe(code);
      expect(layer.lengths[0]).toBe(2);
    }
    expect(await codeOf(() => native().llamaBlocks(7 as unknown as Record<string, unknown>))).toBe('ERR_INVALID_ARGUMENT');
    await native().llamaBlocks(args);  // the well-formed call runs
    expect(layer.lengths[0]).toBe(3);
  });
});

describe('llamaDecode boundary', () => {
  it('rejects malformed arguments with a code, appends nothing, and reports every step', async () => {
    const H = 2, hd = 4, d = H * hd, ffn = 12, L = 6, V = 11;
    const w = async (n: number, k: number, seed: number) => packWeight(Tensor.from(rand(n * k, seed), [n, k]));
    const layer = {
      qkv: (await w(3 * d, d, 1)).handle(), wo: (await w(d, d, 2)).handle(), w1: (await w(ffn, d, 3)).handle(),
      w3: (await w(ffn, d, 4)).handle(), w2: (await w(d, ffn, 5)).handle(),
      attentionNorm: Tensor.from(rand(d, 6), [d]).native(), ffnNorm: Tensor.from(rand(d, 7), [d]).native(),
      cacheK: Tensor.zeros([2, H, L, hd]).native(), cacheV: Tensor.zeros([2, H, L, hd]).native(), lengths: new Int32Array([1, 1]),
    };
    const tokens = Tensor.empty([1, 4], 'int32');
    const args = {
      rows: 2, heads: H, headDim: hd, mask: 1, eps: 1e-5, layers: [layer],
      cos: Tensor.from(rand(L * hd / 2, 9), [L, hd / 2]).native(), sin: Tensor.from(rand(L * hd / 2, 10), [L, hd / 2]).native(),
      finalNorm: Tensor.from(rand(d, 11), [d]).native(), head: (await w(V, d, 12)).handle(),
      tokEmbeddings: Tensor.from(rand(V * d, 13), [V, d]).native(), logits: Tensor.from(rand(2 * V, 14), [2, V]).native(),
      images: 1, cfgScale: 2, temperature: 1, topK: 3, topP: 0.9, seed: 1, firstStep: 0, tokens: tokens.native(),
    };
    const bad: [string, Record<string, unknown>][] = [
      ['ERR_INVALID_ARGUMENT', { ...args, head: undefined }],
      ['ERR_INVALID_ARGUMENT', { ...args, images: 3 }],
      ['ERR_SHAPE', { ...args, tokEmbeddings: Tensor.from(rand(V * d, 13), [d, V]).native() }],
      ['ERR_SHAPE', { ...args, logits: Tensor.from(rand(V, 14), [1, V]).native() }],
      ['ERR_SHAPE', { ...args, tokens: Tensor.empty([1, L + 1], 'int32').native() }],  // L more slots overflow the cache
      ['ERR_SHAPE', { ...args, bias: Tensor.from(rand(V, 15), [V]).native() }],
      ['ERR_INVALID_ARGUMENT', { ...args, layers: [{ ...layer, lengths: new Int32Array([1, 2]) }] }],
      ['ERR_INVALID_ARGUMENT', { ...args, temperature: Number.NaN }],
      ['ERR_INVALID_ARGUMENT', { ...args, onStep: 5 }],
      ['ERR_INVALID_ARGUMENT', { ...args, seed: -1 }],
    ];
    for (const [code, a] of bad) {
      expect(await codeOf(() => native().llamaDecode(a))).toBe(code);
      expect(Array.from(layer.lengths)).toEqual([1, 1]);
    }
    const seen: number[] = [];
    await native().llamaDecode({ ...args, onStep: (d: number) => seen.push(d) });
    expect(seen).toEqual([1, 2, 3, 4]);  // every report, in order, before the promise settles
    expect(Array.from(layer.lengths)).toEqual([4, 4]);
    expect((tokens.data as Int32Array).every((t) => t >= 0 && t < V)).toBe(true);

    // A step callback that throws: the promise rejects with what it threw
    // (the process lives) and no report follows. (The loop also stops before
    // its next step, but this tiny model may finish first: the native test
    // llama_decode_equals_the_loop_of_public_ops checks the stop itself.)
    layer.lengths.set([1, 1]);
    const boom = new Error('sink failed');
    const after: number[] = [];
    await expect(native().llamaDecode({ ...args, onStep: (d: number) => { after.push(d); if (d === 1) throw boom; } })).rejects.toBe(boom);
    expect(after).toEqual([1]);
    layer.lengths.set([1, 1]);
    await expect(native().llamaDecode({ ...args, onStep: () => { throw 'a string'; } })).rejects.toBe('a string');
  });
});

describe('varBlocks boundary', () => {
  it('rejects malformed arguments with a code and writes nothing', async () => {
    const H = 2, D = 4, C = H * D, F = 16, L = 5, R = 2, n = 2;
    const w = async (a: number, b: number, seed: number) => (await packWeight(Tensor.from(rand(a * b, seed), [a, b]))).handle();
    const v = (k: number, seed: number) => Tensor.from(rand(k, seed), [k]).native();
    const terms = Object.fromEntries(['s1', 'b1', 's2', 'b2', 'g1', 'g2'].map((k, i) => [k, Tensor.from(rand(R * C, 20 + i), [R, C]).native()]));
    const cacheK = Tensor.zeros([R, L, H, D]);
    const layer = {
      qkv: await w(3 * C, C, 1), qkvBias: v(3 * C, 2), proj: await w(C, C, 3), projBias: v(C, 4),
      fc1: await w(F, C, 5), fc1Bias: v(F, 6), fc2: await w(C, F, 7), fc2Bias: v(C, 8),
      headMultiplier: new Float32Array([1, 2]), ...terms, cacheK: cacheK.native(), cacheV: Tensor.zeros([R, L, H, D]).native(),
    };
    const args = { x: Tensor.from(rand(R * n * C, 9), [R, n, C]).native(), layers: [layer], heads: H, headDim: D, cacheLength: 0, eps: 1e-6 };
    const bad: [string, Record<string, unknown>][] = [
      ['ERR_INVALID_ARGUMENT', { ...args, layers: null }],
      ['ERR_DTYPE', { ...args, layers: [{ ...layer, headMultiplier: [1, 2] }] }],
      ['ERR_SHAPE', { ...args, layers: [{ ...layer, headMultiplier: new Float32Array(3) }] }],
      ['ERR_SHAPE', { ...args, layers: [{ ...layer, g2: Tensor.from(rand(R * (C - 1), 1), [R, C - 1]).native() }] }],
      ['ERR_SHAPE', { ...args, layers: [{ ...layer, fc2: layer.fc1 }] }],
      ['ERR_SHAPE', { ...args, cacheLength: L - 1 }],
      ['ERR_INVALID_ARGUMENT', { ...args, cacheLength: -1 }],
      ['ERR_INVALID_ARGUMENT', { ...args, head: layer.proj }],  // part of the head
    ];
    for (const [code, a] of bad) {
      expect(await codeOf(() => native().varBlocks(a))).toBe(code);
      expect((cacheK.data as Float32Array).every((e) => e === 0)).toBe(true);
    }
    await native().varBlocks(args);
    expect((cacheK.data as Float32Array).some((e) => e !== 0)).toBe(true);
  });
});
