// A per-layer KV cache: fixed [B, Hkv, maxLen, D] storage with one valid
// length per batch row, so rows can differ (batched decoding) and roll back
// (speculative decoding rejects draft tokens by truncating). bf16/f16 storage
// halves the memory and the bytes each decode step reads.
import type { DType } from './dtype.js';
import { fail } from './errors.js';
import { native } from './native.js';
import { attention, type AttentionOptions, type Layout } from './ops/attention.js';
import { Tensor, withTensors, type Device } from './tensor.js';

export interface KVCacheOptions {
  dtype?: DType;
  device?: Device;
}

export class KVCache {
  readonly batch: number;
  readonly heads: number;
  readonly maxLength: number;
  readonly headDim: number;
  readonly k: Tensor;
  readonly v: Tensor;
  /** Valid tokens per row; advanced in place by the native append. */
  readonly #lengths: Int32Array;
  // Appends and truncations run in call order: the native append reads and
  // advances #lengths off the event loop.
  #queue: Promise<unknown> = Promise.resolve();
  /** Queued appends/truncations not yet settled. */
  #pending = 0;

  private constructor(batch: number, heads: number, maxLength: number, headDim: number, dtype: DType, device: Device) {
    if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16')
      fail('ERR_DTYPE', `KV cache storage must be float32, bfloat16 or float16, got ${dtype}`);
    this.batch = batch;
    this.heads = heads;
    this.maxLength = maxLength;
    this.headDim = headDim;
    this.k = Tensor.empty([batch, heads, maxLength, headDim], dtype, device);
    this.v = Tensor.empty([batch, heads, maxLength, headDim], dtype, device);
    this.#lengths = new Int32Array(batch);
  }

  static create(batch: number, heads: number, maxLength: number, headDim: number, opts: KVCacheOptions = {}): KVCache {
    for (const [name, n] of [['batch', batch], ['heads', heads], ['maxLength', maxLength], ['headDim', headDim]] as const)
      if (!Number.isInteger(n) || n <= 0) fail('ERR_INVALID_ARGUMENT', `${name} must be a positive integer, got ${n}`);
    return new KVCache(batch, heads, maxLength, headDim, opts.dtype ?? 'float32', opts.device ?? 'cpu');
  }

  get lengths(): number[] { return Array.from(this.#lengths); }
  get dtype(): DType { return this.k.dtype; }
  get bytes(): number { return this.k.byteLength + this.v.byteLength; }

  /**
   * Appends new keys/values ([B, Hkv, Lnew, D] or [B, Lnew, Hkv, D] per layout) after each
   * row's length; `counts[b]` appends only the first counts[b] tokens of row b.
   */
  append(k: Tensor, v: Tensor, opts: { counts?: readonly number[] | Int32Array; layout?: Layout } = {}): Promise<void> {
    const layout = opts.layout ?? 'bhld';
    const counts = opts.counts === undefined ? undefined
      : opts.counts instanceof Int32Array ? opts.counts : Int32Array.from(opts.counts);
    if (counts && counts.length !== this.batch) fail('ERR_SHAPE', `counts needs ${this.batch} entries`);
    return this.#enqueue(() => withTensors([this.k, this.v, k, v], () => native().kvAppend({
      cacheK: this.k.native(), cacheV: this.v.native(), kNew: k.native(), vNew: v.native(),
      layout: layout === 'bhld' ? 0 : 1, lengths: this.#lengths, counts,
    })));
  }

  /** Shortens rows to `lengths` (one per row, or one for all); never lengthens. */
  truncate(lengths: number | readonly number[]): Promise<void> {
    const target = typeof lengths === 'number' ? new Array<number>(this.batch).fill(lengths) : [...lengths];
    if (target.length !== this.batch) fail('ERR_SHAPE', `truncate needs ${this.batch} lengths`);
    return this.#enqueue(async () => {
      target.forEach((n, b) => {
        if (!Number.isInteger(n) || n < 0 || n > this.#lengths[b]!)
          fail('ERR_INVALID_ARGUMENT', `row ${b}: cannot truncate length ${this.#lengths[b]} to ${n}`);
      });
      target.forEach((n, b) => { this.#lengths[b] = n; });
    });
  }

  /** Attention of `q` [B, Hq, Lq, D] over the cached keys/values (each row sees its own length). */
  async attend(q: Tensor, opts: Omit<AttentionOptions, 'q' | 'k' | 'v' | 'kvLengths' | 'layout'> = {}): Promise<Tensor> {
    // Waiting on an idle queue would only cost a decode step microtask turns.
    if (this.#pending > 0) await this.#queue;
    // A snapshot: appends queued after this call advance #lengths while it runs.
    return attention({ ...opts, q, k: this.k, v: this.v, layout: 'bhld', kvLengths: this.#lengths.slice() });
  }

  /**
   * @internal For composite native ops that append to the cache themselves
   * (llamaBlocks): waits until queued appends and truncations have run, then
   * returns the live per-row lengths, which such an op advances in place.
   * The caller must not queue work on this cache until that op has settled.
   */
  async settle(): Promise<Int32Array> {
    if (this.#pending > 0) await this.#queue;
    return this.#lengths;
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }

  [Symbol.dispose](): void { this.dispose(); }

  #enqueue(op: () => Promise<void>): Promise<void> {
    this.#pending++;
    const run = this.#queue.catch(() => undefined).then(op);
    const done = () => { this.#pending--; };
    this.#queue = run.then(done, done);  // never rejects: the caller gets run's error
    return run;
  }
}
