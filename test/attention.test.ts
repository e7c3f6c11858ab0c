// Attention through the addon against the float64 reference on fresh random
// inputs. Tolerances: fp32 kernels accumulate in fp32 over <= 64 keys, so
// ‖err‖/‖ref‖ < 1e-5; bf16 inputs carry 8 mantissa bits (rel. rounding 2^-9
// per element), so 2e-2 bounds the output error with margin.
import { describe, expect, it } from 'vitest';

import { attention, encodeHalf, decodeHalf, KVCache, Tensor, TesseraError, type AttentionMask } from '../lib/index.js';
import { native } from '../lib/native.js';
import { bhldToBlhd, randomArray, refAttention, relError, type RefMask } from './reference.js';

const B = 2, H = 4, L = 24, D = 16;

async function run(mask: AttentionMask, ref: RefMask, opts: { layout?: 'bhld' | 'blhd'; Hkv?: number; bf16?: boolean } = {}) {
  const Hkv = opts.Hkv ?? H;
  const q = randomArray(B * H * L * D), k = randomArray(B * Hkv * L * D), v = randomArray(B * Hkv * L * D);
  const layout = opts.layout ?? 'bhld';
  const wrap = (a: Float32Array, h: number) => {
    const data = layout === 'bhld' ? a : bhldToBlhd(a, B, h, L, D);
    const shape = layout === 'bhld' ? [B, h, L, D] : [B, L, h, D];
    return opts.bf16 ? Tensor.from(encodeHalf(data, 'bfloat16'), shape, 'bfloat16') : Tensor.from(data, shape);
  };
  const out = await attention({ q: wrap(q, H), k: wrap(k, Hkv), v: wrap(v, Hkv), layout, mask });
  const got = opts.bf16 ? decodeHalf(out.data as Uint16Array, 'bfloat16') : (out.data as Float32Array);
  const expected = refAttention(B, H, Hkv, L, L, D, q, k, v, 1 / Math.sqrt(D), ref);
  return relError(got, layout === 'bhld' ? expected : bhldToBlhd(Float32Array.from(expected), B, H, L, D));
}

describe('attention matches the float64 reference', () => {
  it('no mask', async () => expect(await run('none', {})).toBeLessThan(1e-5));
  it('causal', async () => expect(await run('causal', { causal: true })).toBeLessThan(1e-5));
  it('block-causal', async () => {
    const blocks = [1, 4, 9, 10];
    expect(await run({ blockCausal: blocks }, { blocks })).toBeLessThan(1e-5);
  });
  it('segments', async () => {
    const seg = Int32Array.from({ length: B * L }, (_, i) => Math.floor((i % L) / 7));
    const mask = { segments: { q: Tensor.from(seg, [B, L]), k: Tensor.from(Int32Array.from(seg), [B, L]) } };
    expect(await run(mask, { qSeg: seg, kSeg: seg })).toBeLessThan(1e-5);
  });
  it('additive combined with causal', async () => {
    const add = randomArray(L * L);
    expect(await run(['causal', { additive: Tensor.from(add, [L, L]) }], { causal: true, additive: add })).toBeLessThan(1e-5);
  });
  it('blhd layout', async () => expect(await run('causal', { causal: true }, { layout: 'blhd' })).toBeLessThan(1e-5));
  it('grouped-query heads (4 query heads per 2 key heads)', async () =>
    expect(await run('causal', { causal: true }, { Hkv: 2 })).toBeLessThan(1e-5));
  it('bf16 inputs and output', async () => expect(await run('causal', { causal: true }, { bf16: true })).toBeLessThan(2e-2));
});

describe('KV cache', () => {
  it('decode steps over an appended, truncated cache equal full attention over the kept keys', async () => {
    const Lk = 20, maxLen = 32;
    const cache = KVCache.create(B, H, maxLen, D);
    const k = randomArray(B * H * Lk * D), v = randomArray(B * H * Lk * D);
    await cache.append(Tensor.from(k, [B, H, Lk, D]), Tensor.from(v, [B, H, Lk, D]), { counts: [Lk, 15] });
    expect(cache.lengths).toEqual([Lk, 15]);
    await cache.truncate([12, 15]);  // speculative rollback of row 0
    expect(cache.lengths).toEqual([12, 15]);
    const q = randomArray(B * H * D);
    const out = await cache.attend(Tensor.from(q, [B, H, 1, D]));
    // Reference over the dense [B,H,Lk,D] arrays, each row limited to its kept length.
    const expected = refAttention(B, H, H, 1, Lk, D, q, k, v, 1 / Math.sqrt(D), { kvLen: [12, 15] });
    expect(relError(out.data as Float32Array, expected)).toBeLessThan(1e-5);
    cache.dispose();
  });

  it('back-to-back decode steps at the benchmark shape match the reference with any pool spin window', async () => {
    // B=2, H=16, D=64 over 1024 cached slots with odd kept lengths: the row
    // path's 32 (batch, head) tasks run on the pool, whose workers spin between
    // calls (or not, spin 0) and may join a call late or not at all.
    const Bd = 2, Hd = 16, Dd = 64, maxLen = 1024, kept = [1023, 777];
    const addon = native() as unknown as {
      setSpinUs(us: number): number;
      attentionTimings(reset: boolean): { calls: number; nativeUs: number; queueUs: number; returnUs: number; pool: { spinUs: number } };
    };
    const spin0 = addon.attentionTimings(false).pool.spinUs;
    const cache = KVCache.create(Bd, Hd, maxLen, Dd);
    const k = randomArray(Bd * Hd * maxLen * Dd), v = randomArray(Bd * Hd * maxLen * Dd);
    await cache.append(Tensor.from(k, [Bd, Hd, maxLen, Dd]), Tensor.from(v, [Bd, Hd, maxLen, Dd]), { counts: kept });
    const out = Tensor.empty([Bd, Hd, 1, Dd]);
    try {
      for (const spin of [0, 100, 2000]) {
        expect(addon.setSpinUs(spin)).toBe(spin);
        addon.attentionTimings(true);
        for (let step = 0; step < 6; step++) {
          const q = randomArray(Bd * Hd * Dd);
          await cache.attend(Tensor.from(q, [Bd, Hd, 1, Dd]), { out });
          const expected = refAttention(Bd, Hd, Hd, 1, maxLen, Dd, q, k, v, 1 / Math.sqrt(Dd), { kvLen: kept });
          expect(relError(out.data as Float32Array, expected)).toBeLessThan(1e-5);
        }
        const t = addon.attentionTimings(true);
        expect(t.calls).toBe(6);
        expect(t.nativeUs).toBeGreaterThan(0);
        expect(t.queueUs).toBeGreaterThanOrEqual(0);
      }
    } finally {
      addon.setSpinUs(spin0);
      cache.dispose();
      out.dispose();
    }
    for (const bad of [-1, 10001, 1.5, Number.NaN]) expect(() => addon.setSpinUs(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => (addon as unknown as { setSpinUs(x: unknown): number }).setSpinUs('5')).toThrow(TesseraError);
  });

  it('bf16 storage halves the bytes and an overfull append is refused with ERR_SHAPE', async () => {
    const f32 = KVCache.create(1, 1, 8, 4), bf16 = KVCache.create(1, 1, 8, 4, { dtype: 'bfloat16' });
    expect(bf16.bytes * 2).toBe(f32.bytes);
    const nine = Tensor.from(new Float32Array(9 * 4), [1, 1, 9, 4]);
    await expect(bf16.append(nine, nine)).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    expect(bf16.lengths).toEqual([0]);
    await expect(f32.truncate(3)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('attention validation', () => {
  const t = (shape: number[]) => Tensor.zeros(shape);
  it('codes are stable', async () => {
    await expect(attention({ q: t([1, 2, 4]), k: t([1, 2, 4, 8]), v: t([1, 2, 4, 8]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(attention({ q: t([1, 3, 4, 8]), k: t([1, 2, 4, 8]), v: t([1, 2, 4, 8]) })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    const i = Tensor.from(new Int32Array(64), [1, 2, 4, 8]);
    await expect(attention({ q: i, k: t([1, 2, 4, 8]), v: t([1, 2, 4, 8]) })).rejects.toMatchObject({ code: 'ERR_DTYPE' });
    await expect(attention({ q: t([1, 2, 4, 8]), k: t([1, 2, 4, 8]), v: t([1, 2, 4, 8]), mask: { blockCausal: [1, 2] } }))
      .rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(attention({ q: t([1, 2, 4, 8]), k: t([1, 2, 4, 8]), v: t([1, 2, 4, 8]), mask: ['causal', { blockCausal: [4] }] }))
      .rejects.toBeInstanceOf(TesseraError);
  });
  it('an output overlapping q is refused by the native core with ERR_ALIAS', async () => {
    const q = t([1, 2, 4, 8]);
    await expect(attention({ q, k: t([1, 2, 4, 8]), v: t([1, 2, 4, 8]), out: q })).rejects.toMatchObject({ code: 'ERR_ALIAS' });
  });
});

describe('off the event loop', () => {
  it('a timer fires while a large attention call is pending', async () => {
    const Lb = 1024, Db = 64, Hb = 8;
    const q = Tensor.from(randomArray(Hb * Lb * Db), [1, Hb, Lb, Db]);
    let settled = false;
    const pending = attention({ q, k: q, v: q }).then(() => { settled = true; });
    // If the call blocked the loop, the promise would already be settled when the timer runs.
    const sawPending = await new Promise<boolean>((resolve) => setImmediate(() => resolve(!settled)));
    expect(sawPending).toBe(true);
    await pending;
    expect(settled).toBe(true);
  });
});
