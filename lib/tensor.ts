// Tensor: dtype, shape, device and storage. CPU storage is a TypedArray (a
// caller's, zero-copy, or one over a pooled native block); CUDA storage is a
// native DeviceBuffer. Releasing memory needs no JS FinalizationRegistry:
// pooled ArrayBuffers and DeviceBuffers carry native finalizers that return
// their memory when collected; dispose() returns it at once.
import {
  arrayMatchesDType, arrayOver, checkDType, dtypeOfArray, dtypeSize, type DType, type TensorData,
} from './dtype.js';
import { fail } from './errors.js';
import { native, type NativeDeviceBuffer, type NativeTensor } from './native.js';

export type Device = 'cpu' | `cuda:${number}`;

export function checkDevice(device: unknown): Device {
  if (device === 'cpu' || (typeof device === 'string' && /^cuda:\d{1,3}$/.test(device))) return device as Device;
  return fail('ERR_DEVICE', `device must be 'cpu' or 'cuda:N', got ${String(device)}`);
}

function cudaIndex(device: Device): number {
  return device === 'cpu' ? -1 : Number(device.slice(5));
}

export function checkShape(shape: readonly number[], what = 'shape'): number[] {
  if (!Array.isArray(shape) || shape.length > 8)
    fail('ERR_SHAPE', `${what} must be an array of at most 8 dimensions`);
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) fail('ERR_SHAPE', `${what} [${shape.join(', ')}] must hold non-negative integers`);
  return [...shape];
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  return strides;
}

type Storage = TensorData | NativeDeviceBuffer;

export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly device: Device;
  #storage: Storage | null;
  readonly #pooled: boolean;
  #pending = 0;
  #disposeWhenIdle = false;

  private constructor(storage: Storage, dtype: DType, shape: number[], device: Device, pooled: boolean) {
    this.#storage = storage;
    this.dtype = dtype;
    this.shape = Object.freeze(shape);
    this.strides = Object.freeze(contiguousStrides(shape));
    this.device = device;
    this.#pooled = pooled;
  }

  /** A zero-copy CPU tensor over `data` (its length must equal the shape's size). */
  static from(data: TensorData, shape: readonly number[], dtype?: DType): Tensor {
    const dt = dtype === undefined ? dtypeOfArray(data) : checkDType(dtype);
    if (!arrayMatchesDType(data, dt))
      fail('ERR_DTYPE', `dtype ${dt} does not match a ${data.constructor.name}`);
    const s = checkShape(shape);
    if (numelOf(s) !== data.length)
      fail('ERR_SHAPE', `shape [${s.join(', ')}] holds ${numelOf(s)} elements, data has ${data.length}`);
    return new Tensor(data, dt, s, 'cpu', false);
  }

  /** Uninitialised tensor; CPU memory comes from the native pool and is reused after dispose/GC. */
  static empty(shape: readonly number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
    return Tensor.#allocate(shape, dtype, device, false);
  }

  static zeros(shape: readonly number[], dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
    return Tensor.#allocate(shape, dtype, device, true);
  }

  static #allocate(shape: readonly number[], dtype: DType, device: Device, zero: boolean): Tensor {
    const s = checkShape(shape);
    const dt = checkDType(dtype);
    const dev = checkDevice(device);
    const n = numelOf(s);
    const bytes = n * dtypeSize(dt);
    if (dev === 'cpu') {
      const buffer = native().hostAlloc(bytes, zero);
      return new Tensor(arrayOver(buffer, dt, n), dt, s, dev, true);
    }
    if (zero) fail('ERR_DEVICE', `Tensor.zeros on ${dev}: create it on the cpu and call toDevice('${dev}')`);
    return new Tensor(new (native().DeviceBuffer)(cudaIndex(dev), bytes), dt, s, dev, false);
  }

  get numel(): number { return numelOf(this.shape); }
  get byteLength(): number { return this.numel * dtypeSize(this.dtype); }
  get disposed(): boolean { return this.#storage === null; }
  get isCuda(): boolean { return this.device !== 'cpu'; }

  /** The CPU TypedArray (zero-copy: writes are seen by native code). */
  get data(): TensorData {
    const s = this.#live();
    if (this.device !== 'cpu') fail('ERR_DEVICE', `tensor is on ${this.device}; call toCpu() first`);
    return s as TensorData;
  }

  /** The descriptor the addon parses; throws ERR_DISPOSED after dispose(). */
  native(): NativeTensor {
    return { data: this.#live(), dtype: this.dtype, shape: this.shape, strides: this.strides, device: this.device };
  }

  /** A tensor sharing this one's storage with another shape of the same size (CPU). */
  reshape(shape: readonly number[]): Tensor {
    const s = checkShape(shape);
    if (numelOf(s) !== this.numel) fail('ERR_SHAPE', `cannot reshape [${this.shape.join(', ')}] to [${s.join(', ')}]`);
    const st = this.#live();
    if (this.device !== 'cpu') fail('ERR_DEVICE', 'reshape of cuda tensors is not supported yet');
    return new Tensor(st, this.dtype, s, this.device, false);
  }

  async toDevice(device: Device): Promise<Tensor> {
    const dev = checkDevice(device);
    const src = this.#live();
    const out = Tensor.empty(this.shape, this.dtype, dev);
    if (this.byteLength === 0) return out;
    const kind = this.device === 'cpu' ? (dev === 'cpu' ? -1 : 0) : (dev === 'cpu' ? 1 : 2);
    if (kind === -1) {
      (out.data as Uint8Array).set(this.data as Uint8Array);  // same TypedArray type on both sides
      return out;
    }
    await this.track(() => native().copyDevice(kind as 0 | 1 | 2, out.#live(), src, this.byteLength, 0, 0));
    return out;
  }

  toCpu(): Promise<Tensor> {
    return this.toDevice('cpu');
  }

  /** Marks the tensor in use by native code for the duration of `op`, so dispose() waits for it. */
  async track<T>(op: () => Promise<T>): Promise<T> {
    this.#live();
    this.#pending++;
    try {
      return await op();
    } finally {
      this.#idle();
    }
  }

  /** Releases the memory now (pooled CPU blocks return to the pool); later use throws ERR_DISPOSED. */
  dispose(): void {
    if (this.#storage === null) return;
    if (this.#pending > 0) {
      this.#disposeWhenIdle = true;  // native code still reads it: release when the op ends
      return;
    }
    const s = this.#storage;
    this.#storage = null;
    if (this.#pooled) native().hostFree((s as TensorData).buffer as ArrayBuffer);
    else if (this.device !== 'cpu') (s as NativeDeviceBuffer).dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }

  #live(): Storage {
    if (this.#storage === null || this.#disposeWhenIdle) fail('ERR_DISPOSED', `${this.toString()} was disposed`);
    return this.#storage;
  }

  #idle(): void {
    this.#pending--;
    if (this.#pending === 0 && this.#disposeWhenIdle) {
      this.#disposeWhenIdle = false;
      this.dispose();
    }
  }
}

/** Runs a native op while keeping every tensor it touches from being released. */
export async function withTensors<T>(tensors: readonly (Tensor | undefined)[], op: () => Promise<T>): Promise<T> {
  const live = tensors.filter((t): t is Tensor => t !== undefined);
  const run = (i: number): Promise<T> => (i === live.length ? op() : live[i]!.track(() => run(i + 1)));
  return run(0);
}
