// The VAR transformer (spec/var.md section 2): AdaLN blocks with
// L2-normalised attention and per-head multipliers, class/position/level
// embeddings, an AdaLN head. One call runs one scale over 2B rows (B
// conditional, then B unconditional) against per-block KV caches.
import { TesseraError } from '../../errors.js';
import { linear, type PackedWeight } from '../../ops/gemm.js';
import { native } from '../../native.js';
import { Tensor, withTensors } from '../../tensor.js';
import { varConfig, type Tensors, type VarConfig } from './config.js';
import { silu, splitColumns } from './elementwise.js';
import { timed } from './profile.js';
import { packFromMapping, WeightReader } from './weights.js';

const LN_EPS = 1e-6;
/** torch.log(torch.tensor(100)).item(): the cap is float32(ln 100). */
const MAX_SCALE_MUL = Math.fround(Math.log(100));

interface BlockWeights {
  /** mat_qkv [3C, C] as one packed weight; its bias is q_bias, zeros (VAR has no k bias), v_bias. */
  qkv: PackedWeight; qkvBias: Tensor;
  proj: PackedWeight; projBias: Tensor;
  fc1: PackedWeight; fc1Bias: Tensor;
  fc2: PackedWeight; fc2Bias: Tensor;
  /** exp(min(scale_mul_1H11[h], ln 100)) in float32, as the official code. */
  headMultiplier: Float32Array;
  /** Non-shared: ada_lin.1 [6C, C] and bias; shared: ada_gss [6C]. */
  adaWeight?: Tensor; adaBias?: Tensor; adaGss?: Float32Array;
}

/** Per-generation conditioning: AdaLN terms per block and for the head, each [2B, C]. */
export interface Conditioning {
  rows: number;
  classRows: Float32Array;
  blocks: { g1: Tensor; g2: Tensor; s1: Tensor; s2: Tensor; b1: Tensor; b2: Tensor }[];
  headScale: Tensor;
  headShift: Tensor;
}

/** Per-block key/value caches [rows, maxTokens, H, D] (blhd) with one shared length. */
export class VarCache {
  readonly k: Tensor[];
  readonly v: Tensor[];
  length = 0;

  constructor(readonly config: VarConfig, readonly rows: number) {
    const shape = [rows, config.tokens, config.heads, config.headDim];
    this.k = Array.from({ length: config.depth }, () => Tensor.empty(shape));
    this.v = Array.from({ length: config.depth }, () => Tensor.empty(shape));
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

export interface TransformerOptions {
  /** Arithmetic of the packed weights; float32 (default) or bfloat16. */
  compute?: 'float32' | 'bfloat16';
}

export class VarTransformer {
  private constructor(
    readonly config: VarConfig,
    private readonly w: WeightReader,
    private readonly blocks: BlockWeights[],
    private readonly head: PackedWeight,
    private readonly headBias: Tensor,
    private readonly wordEmbed: PackedWeight,
    private readonly wordBias: Tensor,
    /** lvl_embed[level(t)] + pos_1LC[t] for every token t, [L, C]. */
    private readonly levelPos: Float32Array,
  ) {}

  static async load(tensors: Tensors, file: string, opts: TransformerOptions = {}): Promise<VarTransformer> {
    const config = varConfig(tensors, file);
    const w = new WeightReader(tensors, file);
    const compute = opts.compute ?? 'float32';
    const C = config.width;
    const pack = (t: Tensor): Promise<PackedWeight> => packFromMapping(t, compute);
    const blocks: BlockWeights[] = [];
    for (let i = 0; i < config.depth; i++) {
      const p = `blocks.${i}`;
      const mul = w.values(`${p}.attn.scale_mul_1H11`);
      const qkvBias = new Float32Array(3 * C);
      qkvBias.set(w.values(`${p}.attn.q_bias`));
      qkvBias.set(w.values(`${p}.attn.v_bias`), 2 * C);
      blocks.push({
        qkv: await pack(w.f32(`${p}.attn.mat_qkv.weight`)), qkvBias: Tensor.from(qkvBias, [3 * C]),
        proj: await pack(w.f32(`${p}.attn.proj.weight`)), projBias: w.f32(`${p}.attn.proj.bias`),
        fc1: await pack(w.f32(`${p}.ffn.fc1.weight`)), fc1Bias: w.f32(`${p}.ffn.fc1.bias`),
        fc2: await pack(w.f32(`${p}.ffn.fc2.weight`)), fc2Bias: w.f32(`${p}.ffn.fc2.bias`),
        headMultiplier: Float32Array.from(mul, (m) => Math.exp(Math.min(m, MAX_SCALE_MUL))),
        ...(config.sharedAdaLN
          ? { adaGss: w.values(`${p}.ada_gss`) }
          : { adaWeight: w.f32(`${p}.ada_lin.1.weight`), adaBias: w.f32(`${p}.ada_lin.1.bias`) }),
      });
    }
    const pos = w.values('pos_1LC'), lvl = w.values('lvl_embed.weight');
    const levelPos = new Float32Array(config.tokens * C);
    let t = 0;
    config.schedule.forEach((pn, si) => {
      for (let j = 0; j < pn * pn; j++, t++)
        for (let c = 0; c < C; c++) levelPos[t * C + c] = lvl[si * C + c]! + pos[t * C + c]!;
    });
    return new VarTransformer(config, w, blocks, await pack(w.f32('head.weight')), w.f32('head.bias'),
      await pack(w.f32('word_embed.weight')), w.f32('word_embed.bias'), levelPos);
  }

  /** Token offset of scale si in the sequence. */
  begin(si: number): number {
    return this.config.schedule.slice(0, si).reduce((a, p) => a + p * p, 0);
  }

  /**
   * AdaLN terms for `labels` (conditional rows) followed by as many null-class
   * rows. A label < 0 is the null class (row `classes` of class_emb).
   */
  async condition(labels: readonly number[]): Promise<Conditioning> {
    const { classes, width: C } = this.config;
    for (const l of labels)
      if (!Number.isInteger(l) || l >= classes)
        throw new TesseraError('ERR_INVALID_ARGUMENT', `class ${l} is not a class id of this model (0..${classes - 1}, or < 0 for none)`);
    const table = this.w.values('class_emb.weight');
    const ids = [...labels.map((l) => (l < 0 ? classes : l)), ...labels.map(() => classes)];
    const rows = ids.length;
    const classRows = new Float32Array(rows * C);
    ids.forEach((id, r) => classRows.set(table.subarray(id * C, (id + 1) * C), r * C));
    const act = Tensor.from(silu(classRows), [rows, C]);
    let shared: Tensor | undefined;
    if (this.config.sharedAdaLN)
      shared = await linear({ x: act, weight: this.w.f32('shared_ada_lin.1.weight'), bias: this.w.f32('shared_ada_lin.1.bias') });
    const blocks: Conditioning['blocks'] = [];
    for (const b of this.blocks) {
      // Chunk order g1, g2, s1, s2, b1, b2 (spec section 2).
      const ada = shared ?? await timed('ada_lin (unpacked)', () => linear({ x: act, weight: b.adaWeight!, bias: b.adaBias! }), 2 * rows * 6 * C * C);
      const [g1, g2, s1, s2, b1, b2] = splitColumns(ada, 6, b.adaGss);
      blocks.push({ g1: g1!, g2: g2!, s1: s1!, s2: s2!, b1: b1!, b2: b2! });
      if (!shared) ada.dispose();
    }
    shared?.dispose();
    const hn = await linear({ x: act, weight: this.w.f32('head_nm.ada_lin.1.weight'), bias: this.w.f32('head_nm.ada_lin.1.bias') });
    const [headScale, headShift] = splitColumns(hn, 2);
    hn.dispose();
    return { rows, classRows, blocks, headScale: headScale!, headShift: headShift! };
  }

  /**
   * The first scale's input [2B, n0, C] (n0 = pn0², 1 in the released
   * models): token j is class embedding + pos_start[j] + lvl_embed[0] + pos_1LC[j].
   */
  startTokens(cond: Conditioning): Tensor {
    const C = this.config.width, n0 = this.config.schedule[0]! ** 2;
    const start = this.w.values('pos_start');
    const x = Tensor.empty([cond.rows, n0, C]);
    const d = x.data as Float32Array;
    for (let r = 0; r < cond.rows; r++)
      for (let j = 0; j < n0; j++)
        for (let c = 0; c < C; c++) d[(r * n0 + j) * C + c] = cond.classRows[r * C + c]! + start[j * C + c]! + this.levelPos[j * C + c]!;
    return x;
  }

  /**
   * The input of scale si >= 1: word_embed(area(f_hat)) + level/position
   * embeddings. `latent` is [B, pn², Cvae]; the result is [2B, pn², C] (the
   * same rows repeated for the unconditional half).
   */
  async scaleInput(si: number, latent: Tensor): Promise<Tensor> {
    const C = this.config.width, pn = this.config.schedule[si]!, n = pn * pn;
    const B = latent.shape[0]!;
    const e = await timed('word_embed', () => linear({ x: latent.reshape([B * n, this.config.latentChannels]), packed: this.wordEmbed, bias: this.wordBias }));
    const src = e.data as Float32Array, lp = this.levelPos.subarray(this.begin(si) * C);
    const x = Tensor.empty([2 * B, n, C]);
    const d = x.data as Float32Array;
    for (let b = 0; b < B; b++)
      for (let t = 0; t < n * C; t++) d[b * n * C + t] = src[b * n * C + t]! + lp[t]!;
    d.copyWithin(B * n * C, 0, B * n * C);
    e.dispose();
    return x;
  }

  /**
   * Runs all blocks and the head on one scale's tokens x [2B, n, C] (updated in
   * place: it ends as the last block's output); returns logits [2B, n, V].
   */
  async forwardScale(x: Tensor, cond: Conditioning, cache: VarCache): Promise<Tensor> {
    const [R, n, C] = x.shape as [number, number, number];
    const { heads: H, headDim: D, vocabulary: V } = this.config;
    if (R !== cond.rows || cache.rows !== R) throw new TesseraError('ERR_SHAPE', `x has ${R} rows, the conditioning ${cond.rows}`);
    if (cache.length + n > this.config.tokens) throw new TesseraError('ERR_SHAPE', 'more tokens than the model\'s schedule');
    const logits = Tensor.empty([R * n, V]);
    const blocks = this.blocks.map((b, i) => {
      const a = cond.blocks[i]!;
      return {
        qkv: b.qkv.handle(), qkvBias: b.qkvBias.native(), proj: b.proj.handle(), projBias: b.projBias.native(),
        fc1: b.fc1.handle(), fc1Bias: b.fc1Bias.native(), fc2: b.fc2.handle(), fc2Bias: b.fc2Bias.native(),
        headMultiplier: b.headMultiplier,
        s1: a.s1.native(), b1: a.b1.native(), s2: a.s2.native(), b2: a.b2.native(), g1: a.g1.native(), g2: a.g2.native(),
        cacheK: cache.k[i]!.native(), cacheV: cache.v[i]!.native(),
      };
    });
    const held = [x, logits, cond.headScale, cond.headShift, this.headBias, ...cache.k, ...cache.v,
      ...this.blocks.flatMap((b) => [b.qkvBias, b.projBias, b.fc1Bias, b.fc2Bias]),
      ...cond.blocks.flatMap((a) => [a.s1, a.b1, a.s2, a.b2, a.g1, a.g2])];
    // Every block and the AdaLN head in one native call (varBlocks: per block
    // AdaLN LayerNorm, one GEMM for [q|k|v], cache write, L2-normalised
    // attention, gated proj + residual, AdaLN LayerNorm, fc1 + GELU, gated
    // fc2 + residual): issued op by op, the ~9 calls per block would each pay
    // a thread hop.
    try {
      await timed('blocks + head (one native call)', () => withTensors(held, () => native().varBlocks({
        x: x.native(), layers: blocks, heads: H, headDim: D, cacheLength: cache.length, eps: LN_EPS,
        headScale: cond.headScale.native(), headShift: cond.headShift.native(), head: this.head.handle(),
        headBias: this.headBias.native(), logits: logits.native(),
      })), 2 * R * n * (this.blocks.length * (12 * C * C + 2 * (cache.length + n) * C) + C * V));
    } catch (e) {
      logits.dispose();
      throw e;
    }
    cache.length += n;
    return logits.reshape([R, n, V]);
  }

  dispose(): void {
    for (const b of this.blocks) for (const p of [b.qkv, b.proj, b.fc1, b.fc2]) p.dispose();
    this.head.dispose();
    this.wordEmbed.dispose();
  }
}

/** Releases the conditioning's tensors. */
export function disposeConditioning(c: Conditioning): void {
  for (const b of c.blocks) for (const t of Object.values(b)) t.dispose();
  c.headScale.dispose();
  c.headShift.dispose();
}
