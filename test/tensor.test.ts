// The tensor boundary: zero-copy views, validation codes, disposal, pooling.
import { describe, expect, it } from 'vitest';

import { Tensor, TesseraError, hostPoolStats } from '../lib/index.js';
import { native } from '../lib/native.js';
import { runtimeInfo } from '../lib/runtime.js';

function codeOf(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return e instanceof TesseraError ? e.code : `not a TesseraError: ${String(e)}`; }
  return undefined;
}

describe('Tensor.from (zero-copy)', () => {
  it('native code reads the caller\'s TypedArray in place, including later writes', () => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = Tensor.from(data, [2, 3]);
    expect(native().dataAddress(t.data)).toBe(native().dataAddress(data));
    data[4] = 42;
    expect(native().readFloat32(t.native(), 4)).toBe(42);
  });

  it('honours strides and offsets in elements', () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => i);
    // the transpose of a 3x4 matrix, starting one row in: element (1, 0) is data[1*1 + 0*4 + 4]
    const desc = { data, dtype: 'float32', shape: [2, 2], strides: [1, 4], offset: 4, device: 'cpu' };
    expect(native().readFloat32(desc, 2)).toBe(5);
  });

  it('rejects a dtype that does not match the TypedArray with ERR_DTYPE', () => {
    expect(codeOf(() => Tensor.from(new Float32Array(4), [4], 'int32'))).toBe('ERR_DTYPE');
    const bad = { data: new Int32Array(4), dtype: 'float32', shape: [4], device: 'cpu' };
    expect(codeOf(() => native().readFloat32(bad, 0))).toBe('ERR_DTYPE');
  });

  it('rejects shapes that do not fit the data with ERR_SHAPE', () => {
    expect(codeOf(() => Tensor.from(new Float32Array(5), [2, 3]))).toBe('ERR_SHAPE');
    expect(codeOf(() => Tensor.from(new Float32Array(6), [2, -3]))).toBe('ERR_SHAPE');
    const overreach = { data: new Float32Array(6), dtype: 'float32', shape: [2, 3], strides: [4, 1], device: 'cpu' };
    expect(codeOf(() => native().readFloat32(overreach, 0))).toBe('ERR_SHAPE');
  });

  it('maps 16-bit floats to Uint16Array and int64 to BigInt64Array', () => {
    expect(Tensor.from(new Uint16Array(2), [2], 'float16').dtype).toBe('float16');
    expect(Tensor.from(new BigInt64Array(2), [2]).dtype).toBe('int64');
    expect(codeOf(() => Tensor.from(new Uint8Array(2), [2], 'bfloat16'))).toBe('ERR_DTYPE');
  });
});

describe('pooled tensors', () => {
  it('zeros() is zero-filled and a disposed block is reused without fresh pages', () => {
    const shape = [257, 129];  // an odd size class, so other tests' blocks do not interfere
    const a = Tensor.zeros(shape);
    expect((a.data as Float32Array).every((x) => x === 0)).toBe(true);
    (a.data as Float32Array).fill(7);
    a.dispose();
    const before = hostPoolStats();
    const b = Tensor.zeros(shape);
    const after = hostPoolStats();
    expect(after.allocations - before.allocations).toBe(1);
    expect(after.freshAllocations - before.freshAllocations).toBe(0);
    expect((b.data as Float32Array).every((x) => x === 0)).toBe(true);
    b.dispose();
  });

  it('using a disposed tensor throws ERR_DISPOSED, and dispose is idempotent', () => {
    const t = Tensor.empty([4]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(codeOf(() => t.data)).toBe('ERR_DISPOSED');
    expect(codeOf(() => t.native())).toBe('ERR_DISPOSED');
  });

  it('supports `using` through Symbol.dispose', () => {
    const t = Tensor.empty([4]);
    t[Symbol.dispose]();
    expect(t.disposed).toBe(true);
  });

  it('a detached (disposed) buffer is refused natively too', () => {
    const t = Tensor.empty([8]);
    const desc = t.native();
    t.dispose();
    expect(codeOf(() => native().readFloat32(desc, 0))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('copies between cpu tensors with toDevice', async () => {
    const t = Tensor.from(new Float32Array([1, 2, 3]), [3]);
    const u = await t.toDevice('cpu');
    expect(Array.from(u.data as Float32Array)).toEqual([1, 2, 3]);
    expect(native().dataAddress(u.data)).not.toBe(native().dataAddress(t.data));
  });
});

describe('CUDA tensors', () => {
  const cuda = runtimeInfo().backends.cuda;
  it.runIf(!cuda.available)('with no usable device, creating one throws ERR_DEVICE with the reason', () => {
    let err: unknown;
    try { Tensor.empty([4], 'float32', 'cuda:0'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe('ERR_DEVICE');
    expect((err as TesseraError).message.length).toBeGreaterThan(10);
    expect(cuda.reason).not.toBe('');
  });
  it.runIf(cuda.available)('round-trips data through the device', async () => {
    const t = Tensor.from(new Float32Array([1, 2, 3, 4]), [2, 2]);
    const d = await t.toDevice('cuda:0');
    const back = await d.toCpu();
    expect(Array.from(back.data as Float32Array)).toEqual([1, 2, 3, 4]);
    d.dispose();
    expect(codeOf(() => d.native())).toBe('ERR_DISPOSED');
  });
  it('an invalid device string is ERR_DEVICE', () => {
    expect(codeOf(() => Tensor.empty([1], 'float32', 'gpu' as never))).toBe('ERR_DEVICE');
  });
});
