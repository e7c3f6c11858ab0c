// LlamaGen's c2i GPT (spec section 1): pre-norm Llama blocks (RMSNorm eps
// 1e-5, fused [q|k|v] with n_kv_head ≤ n_head key/value heads, SwiGLU), 2D
// RoPE on interleaved pairs whose class row is all zero, per-layer KV
// caches (n_kv_head heads each). One forward() takes n new slots for
// every row and returns their logits; the slots continue the cache, so the
// same call serves prefill (the class slot), one-token decoding and
// multi-token speculative windows.
import { fail } from '../../errors.js';
import { KVCache } from '../../kvcache.js';
import { MASK_CAUSAL, ropeTable2d, type RopeTable } from '../../ops/attention.js';
import { linear, packWeight, type PackedWeight } from '../../ops/gemm.js';
import { rmsNorm } from '../../ops/norm.js';
import { embedding } from '../../ops/vq.js';
import { native } from '../../native.js';
import { Tensor, withTensors } from '../../tensor.js';
import type { Tensors } from '../var/config.js';
import { WeightReader } from '../var/weights.js';
import { gptConfig, type GptConfig } from './config.js';

const RMS_EPS = 1e-5;

interface LayerWeights {
  /** The checkpoint's fused wqkv [3·dim, dim] as one packed weight: one GEMM call streams all three. */
  qkv: PackedWeight; wo: PackedWeight;
  w1: PackedWeight; w3: PackedWeight; w2: PackedWeight;
  attentionNorm: Tensor; ffnNorm: Tensor;
}

export interface GptOptions {
  /** Head count; see gptConfig for the rule when absent. */
  heads?: number;
  /** Non-tensor checkpoint entries (args of a DDP file). */
  extras?: ReadonlyMap<string, unknown>;
  /** Arithmetic of the packed weights: float32 (default) or bfloat16. */
  compute?: 'float32' | 'bfloat16';
}

/** Decoding state of `rows` sequences on a grid: per-layer caches and the 2D RoPE table. */
export class GptState {
  readonly caches: KVCache[];
  readonly rope: RopeTable;
  /** Slots the cache can hold: roundup8(1 + G²) as the official setup_caches. */
  readonly maxLength: number;

  /**
   * cacheDtype: how K and V are stored (float32 by default; LlamaGenGpt uses
   * bfloat16 with bfloat16 weights, as the official code keeps its caches in
   * the model's dtype).
   */
  constructor(config: GptConfig, readonly rows: number, readonly grid: number, cacheDtype: 'float32' | 'bfloat16' = 'float32') {
    if (!Number.isInteger(grid) || grid < 1) fail('ERR_INVALID_ARGUMENT', `grid must be a positive integer, got ${grid}`);
    this.maxLength = Math.ceil((1 + grid * grid) / 8) * 8;
    // NAR's vertical head is one more block with its own cache.
    this.caches = Array.from({ length: config.layers + (config.verticalHead ? 1 : 0) }, () => KVCache.create(rows, config.kvHeads, this.maxLength, config.headDim, { dtype: cacheDtype }));
    this.rope = ropeTable2d(grid, 1, config.headDim);
  }

  /** Slots written so far (all rows advance together). */
  get length(): number { return this.caches[0]?.lengths[0] ?? 0; }

  /** Drops every slot from `length` on (speculative rollback). */
  async truncate(length: number): Promise<void> {
    await Promise.all(this.caches.map((c) => c.truncate(length)));
  }

  dispose(): void {
    for (const c of this.caches) c.dispose();
    this.rope.cos.dispose();
    this.rope.sin.dispose();
  }
}

export class LlamaGenGpt {
  private constructor(
    readonly config: GptConfig,
    private readonly w: WeightReader,
    private readonly layers: LayerWeights[],
    private readonly output: PackedWeight,
    /** NAR's vertical head: block layers.{n_layer} and medusa_output (absent on plain checkpoints). */
    private readonly vertical?: { layer: LayerWeights; output: PackedWeight },
    /** Arithmetic of the packed weights; also the KV caches' storage (newState). */
    readonly compute: 'float32' | 'bfloat16' = 'float32',
  ) {}

  static async load(tensors: Tensors, file: string, opts: GptOptions = {}): Promise<LlamaGenGpt> {
    const config = gptConfig(tensors, file, { heads: opts.heads, extras: opts.extras });
    const w = new WeightReader(tensors, file);
    const pack = (t: Tensor): Promise<PackedWeight> => packWeight(t, { compute: opts.compute ?? 'float32' });
    const layers: LayerWeights[] = [];
    for (let i = 0; i < config.layers + (config.verticalHead ? 1 : 0); i++) {
      const p = `layers.${i}`;
      layers.push({
        qkv: await pack(w.f32(`${p}.attention.wqkv.weight`)),
        wo: await pack(w.f32(`${p}.attention.wo.weight`)),
        w1: await pack(w.f32(`${p}.feed_forward.w1.weight`)), w3: await pack(w.f32(`${p}.feed_forward.w3.weight`)),
        w2: await pack(w.f32(`${p}.feed_forward.w2.weight`)),
        attentionNorm: w.f32(`${p}.attention_norm.weight`), ffnNorm: w.f32(`${p}.ffn_norm.weight`),
      });
    }
    const vertical = config.verticalHead ? { layer: layers.pop()!, output: await pack(w.f32('medusa_output.weight')) } : undefined;
    return new LlamaGenGpt(config, w, layers, await pack(w.f32('output.weight')), vertical, opts.compute ?? 'float32');
  }

  /** Whether the checkpoint carries NAR's vertical head (layers.{n_layer}, medusa_norm, medusa_output). */
  get hasVerticalHead(): boolean { return this.vertical !== undefined; }

  /** Bytes of packed weights one forward pass reads (the decode bandwidth floor). */
  get weightBytes(): number {
    const all = this.vertical ? [...this.layers, this.vertical.layer] : this.layers;
    return all.reduce((a, l) => a + [l.qkv, l.wo, l.w1, l.w3, l.w2].reduce((s, p) => s + p.bytes, 0),
      this.output.bytes + (this.vertical?.output.bytes ?? 0));
  }

  newState(rows: number, grid: number): GptState {
    return new GptState(this.config, rows, grid, this.compute);
  }

  /** Slot-0 inputs [rows, dim]: class ids; an id < 0 (or = classes) is the null class. */
  classEmbeddings(ids: readonly number[]): Promise<Tensor> {
    const { classes } = this.config;
    for (const c of ids)
      if (!Number.isInteger(c) || c > classes) fail('ERR_INVALID_ARGUMENT', `class ${c} is not a class id of this model (0..${classes - 1}, or -1 for none)`);
    const idx = Int32Array.from(ids, (c) => (c < 0 ? classes : c));
    return embedding({ table: this.w.f32('cls_embedding.embedding_table.weight'), indices: Tensor.from(idx, [idx.length]) });
  }

  /** Token inputs [count, dim] for ids (row-major over rows and slots). */
  tokenEmbeddings(ids: Int32Array): Promise<Tensor> {
    const V = this.config.vocabulary;
    for (const id of ids) if (id < 0 || id >= V) fail('ERR_INVALID_ARGUMENT', `token id ${id} is outside 0..${V - 1}`);
    return embedding({ table: this.w.f32('tok_embeddings.weight'), indices: Tensor.from(ids, [ids.length]) });
  }

  /**
   * x [rows·n, dim]: inputs of the next n slots of every row (consumed). Writes
   * their keys/values to the state's caches and returns logits [rows·n, V]
   * (row r·n + j predicts the token after slot state.length + j of row r).
   */
  async forward(state: GptState, x: Tensor, n: number): Promise<Tensor> {
    this.checkInputs(state, x, n);
    const start = state.length;
    const positions = Tensor.from(Int32Array.from({ length: n }, (_, j) => start + j), [n]);
    const logits = Tensor.empty([x.shape[0]!, this.config.vocabulary]);
    try {
      await this.blocks(this.layers, state.caches.slice(0, this.layers.length), state, x, n, positions, 'causal',
        { norm: this.w.f32('norm.weight'), packed: this.output, logits });
    } catch (e) {
      logits.dispose();
      throw e;
    } finally {
      positions.dispose();
      x.dispose();
    }
    return logits;
  }

  /**
   * NAR (spec section 5): x [rows·n, dim] are the inputs of raster slots
   * `slots` (RoPE rows; 0 = class, 1 + t = token t), appended to the caches
   * in the order given. Attention is unmasked over the cache: fed one
   * anti-diagonal at a time, every slot sees exactly the slots of distance ≤
   * its own and the class. Returns the horizontal head's logits (norm,
   * output: predicts (r, c+1)) and the vertical head's (block n_layer,
   * medusa_norm, medusa_output on the same hidden state: predicts (r+1, c)),
   * each [rows·n, V].
   */
  async forwardNar(state: GptState, x: Tensor, slots: Int32Array): Promise<{ right: Tensor; down: Tensor }> {
    if (!this.vertical) fail('ERR_INVALID_ARGUMENT', 'this checkpoint has no NAR vertical head (layers.{n_layer}, medusa_norm, medusa_output)');
    const n = slots.length;
    this.checkInputs(state, x, n);
    const top = state.grid * state.grid;
    for (const t of slots) if (!Number.isInteger(t) || t < 0 || t > top) fail('ERR_INVALID_ARGUMENT', `slot ${t} is outside 0..${top}`);
    const positions = Tensor.from(Int32Array.from(slots), [n]);
    const y = Tensor.from(new Float32Array(x.numel), [...x.shape]);
    try {
      await this.blocks(this.layers, state.caches.slice(0, this.layers.length), state, x, n, positions, 'none');
      (y.data as Float32Array).set(x.data as Float32Array);
      await this.blocks([this.vertical.layer], [state.caches[this.layers.length]!], state, y, n, positions, 'none');
    } finally {
      positions.dispose();
    }
    const hn = await rmsNorm({ x, weight: this.w.f32('norm.weight'), eps: RMS_EPS });
    x.dispose();
    const right = await linear({ x: hn, packed: this.output });
    hn.dispose();
    const yn = await rmsNorm({ x: y, weight: this.w.f32('medusa_norm.weight'), eps: RMS_EPS });
    y.dispose();
    const down = await linear({ x: yn, packed: this.vertical.output });
    yn.dispose();
    return { right, down };
  }

  /**
   * Plain autoregressive decoding from the current state in one native call
   * (llamaDecode): `steps` tokens per image, sampled from `logits` [rows, V]
   * (the last pass's, e.g. the prefill's; overwritten) and then from each
   * step's logits, exactly as GuidedSampler.draw samples them (CFG over the
   * row halves, per-image bias, seed + image, step firstStep + t). Appends
   * steps − 1 slots to the caches. Returns the tokens [images · steps]
   * (image-major).
   */
  async decode(state: GptState, logits: Tensor, o: {
    images: number; steps: number; cfg: number; temperature: number; topK: number; topP: number; seed: number;
    firstStep: number; bias?: Float32Array; onStep?: (done: number) => void;
  }): Promise<Int32Array> {
    const { heads, headDim, kvHeads, vocabulary } = this.config;
    const guided = state.rows === 2 * o.images;
    if (!guided && state.rows !== o.images) fail('ERR_SHAPE', `the state has ${state.rows} rows; ${o.images} images need ${o.images} or ${2 * o.images}`);
    if (!Number.isInteger(o.steps) || o.steps < 1) fail('ERR_INVALID_ARGUMENT', `steps must be a positive integer, got ${o.steps}`);
    if (!Number.isInteger(o.firstStep) || o.firstStep < 0 || o.firstStep + o.steps > state.grid * state.grid)
      fail('ERR_INVALID_ARGUMENT', `tokens ${o.firstStep}..${o.firstStep + o.steps - 1} run past the ${state.grid}x${state.grid} grid`);
    if (state.length + o.steps - 1 > Math.min(state.maxLength, 1 + state.grid * state.grid))
      fail('ERR_INVALID_ARGUMENT', `${o.steps} steps from slot ${state.length} run past the ${state.grid}x${state.grid} grid`);
    const lengths = await Promise.all(state.caches.slice(0, this.layers.length).map((c) => c.settle()));
    const tokens = Tensor.empty([o.images, o.steps], 'int32');
    const bias = o.bias ? Tensor.from(o.bias, [o.images, vocabulary]) : undefined;
    const { cos, sin } = state.rope;
    const held = [logits, tokens, bias, cos, sin, this.w.f32('norm.weight'), this.w.f32('tok_embeddings.weight'),
      ...this.layers.flatMap((l) => [l.attentionNorm, l.ffnNorm]), ...state.caches.flatMap((c) => [c.k, c.v])];
    try {
      // onStep runs once per step, in order, before the call settles; if it
      // throws, the loop stops and the call rejects with what it threw.
      await withTensors(held, () => native().llamaDecode({
        rows: state.rows, heads, headDim, kvHeads, cos: cos.native(), sin: sin.native(), mask: MASK_CAUSAL, eps: RMS_EPS,
        finalNorm: this.w.f32('norm.weight').native(), head: this.output.handle(),
        layers: this.layers.map((l, i) => ({
          qkv: l.qkv.handle(), wo: l.wo.handle(), w1: l.w1.handle(), w3: l.w3.handle(), w2: l.w2.handle(),
          attentionNorm: l.attentionNorm.native(), ffnNorm: l.ffnNorm.native(),
          cacheK: state.caches[i]!.k.native(), cacheV: state.caches[i]!.v.native(), lengths: lengths[i]!,
        })),
        tokEmbeddings: this.w.f32('tok_embeddings.weight').native(), logits: logits.native(),
        images: o.images, cfgScale: o.cfg, temperature: o.temperature, topK: o.topK, topP: o.topP,
        seed: o.seed, firstStep: o.firstStep, bias: bias?.native(), tokens: tokens.native(), onStep: o.onStep,
      }));
      return tokens.data as Int32Array;
    } finally {
      bias?.dispose();
    }
  }

  private checkInputs(state: GptState, x: Tensor, n: number): number {
    const d = this.config.dim, M = state.rows * n, start = state.length;
    if (x.shape.length !== 2 || x.shape[0] !== M || x.shape[1] !== d) fail('ERR_SHAPE', `x must be [${M}, ${d}], got [${x.shape.join(', ')}]`);
    if (start + n > Math.min(state.maxLength, 1 + state.grid * state.grid))
      fail('ERR_INVALID_ARGUMENT', `slots ${start}..${start + n - 1} run past the ${state.grid}x${state.grid} grid`);
    return M;
  }

  /**
   * Pre-norm blocks `layers` on x [rows·n, dim] in place, appending the n
   * slots' K/V to `caches` (one per layer): one native call for the whole
   * stack (llamaBlocks: per layer RMSNorm, one GEMM for [q|k|v], interleaved
   * RoPE, cache append, attention over the cache, wo + residual, RMSNorm,
   * w2(silu(w1·h) ⊙ w3·h) + residual). Issued op by op, the ~11 calls per
   * layer would each pay a thread hop (~0.08 ms) that costs more than the
   * op at decode. With `head`, the final RMSNorm and the output projection
   * run in the same call (logits [rows·n, V]).
   */
  private async blocks(layers: readonly LayerWeights[], caches: readonly KVCache[], state: GptState, x: Tensor, n: number,
    positions: Tensor, mask: 'causal' | 'none', head?: { norm: Tensor; packed: PackedWeight; logits: Tensor }): Promise<void> {
    const { heads, headDim, kvHeads } = this.config;
    const { cos, sin } = state.rope;
    const lengths = await Promise.all(caches.map((c) => c.settle()));
    const held = [x, positions, cos, sin, head?.norm, head?.logits, ...layers.flatMap((l) => [l.attentionNorm, l.ffnNorm]),
      ...caches.flatMap((c) => [c.k, c.v])];
    await withTensors(held, () => native().llamaBlocks({
      x: x.native(), rows: state.rows, n, heads, headDim, kvHeads,
      cos: cos.native(), sin: sin.native(), positions: positions.native(),
      mask: mask === 'causal' ? MASK_CAUSAL : 0, eps: RMS_EPS,
      finalNorm: head?.norm.native(), head: head?.packed.handle(), logits: head?.logits.native(),
      layers: layers.map((l, i) => ({
        qkv: l.qkv.handle(), wo: l.wo.handle(), w1: l.w1.handle(), w3: l.w3.handle(), w2: l.w2.handle(),
        attentionNorm: l.attentionNorm.native(), ffnNorm: l.ffnNorm.native(),
        cacheK: caches[i]!.k.native(), cacheV: caches[i]!.v.native(), lengths: lengths[i]!,
      })),
    }));
  }

  dispose(): void {
    const all = this.vertical ? [...this.layers, this.vertical.layer] : this.layers;
    for (const l of all) for (const p of [l.qkv, l.wo, l.w1, l.w3, l.w2]) p.dispose();
    this.output.dispose();
    this.vertical?.output.dispose();
  }
}
