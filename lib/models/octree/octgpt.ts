// OctGPT's masked transformer (spec octree.md §4; octree-nn/octgpt 849d23a
// models/octgpt.py forward_model, models/octformer.py), inference, one sample:
//
//   sequence = [buffer (bufferSize copies of the condition) | tokens of depths
//   lo..hi, all nodes, z-order]; masked tokens are replaced by the condition.
//   Encoder (MAE style): the unmasked rows only, then encoder_ln; the result
//   replaces those rows. Decoder: every row, then decoder_ln; the buffer is
//   dropped. Block i of a stack: dilation 1 (i even) or `dilation` (i odd),
//   shifted windows when (i div 2) is odd:
//     x += pos_emb(xyz, depth)                 (every block, its own tables)
//     x += proj(attn(norm1 x))                 (3D RoPE on q, k; window mask
//                                               and key depth <= query depth)
//     x += fc2(GELU(fc1(norm2 x)))
// Positions are cell centres on the 128 grid (x·128/2^d + 64/2^d, integer
// arithmetic as the original); buffer rows sit at 0 with depth index 0.
// Token depth d uses depth_emb row d - lo.
// Heads: split_head (2 logits) on split-flag rows, vq_head (2 logits per bit).
import { fail } from '../../errors.js';
import { linear } from '../../ops/gemm.js';
import { layerNorm, rmsNorm } from '../../ops/norm.js';
import { Tensor } from '../../tensor.js';
import type { Octree } from '../../octree/octree.js';
import type { Tensors } from '../var/config.js';
import { WeightReader } from '../var/weights.js';
import { gatherRows, octgptFreqsFromParam, octgptRope, scaleCausalWindowAttention, windowPlan, type WindowPlan } from './attention.js';
import { geluInPlace } from './block.js';
import { octgptConfig, octgptTensors, type OctGptConfig, type OctGptOptions } from './octgpt_config.js';

/** 2^(MAX_DEPTH + 1) with OctGPT's MAX_DEPTH = 6. */
export const OCTGPT_GRID = 128;

interface BlockWeights {
  norm1: [Tensor, Tensor | undefined]; norm2: [Tensor, Tensor | undefined];
  qW: Tensor; kW: Tensor; vW: Tensor; qB: Tensor; kB: Tensor; vB: Tensor;
  projW: Tensor; projB: Tensor;
  fc1W: Tensor; fc1B: Tensor; fc2W: Tensor; fc2B: Tensor;
  /** [H, 3F, 3] */
  freqs: Tensor;
  depthEmb: Float32Array;
  /** [128, C] (AbsPosEmb) */
  absolute?: Float32Array;
}

/** The tokens of one forward pass (one sample). */
export interface OctGptSequence {
  /** An octree holding depths lo..hi (all nodes of each are tokens). */
  octree: Octree;
  lo: number;
  hi: number;
  /** [N, C] token embeddings, depth-major (depth lo first), z-order inside a depth. */
  embeddings: Tensor;
  /** [N] 1 = masked (the row becomes the condition embedding). */
  mask: Uint8Array;
  /** Class index into class_emb (0 for unconditional models). */
  label?: number;
}

/** Per-row position data of a sequence: xyz on the 128 grid, depth index. */
interface RowMeta { xyz: Float32Array; depth: Int32Array }

function subsetMeta(m: RowMeta, rows: Int32Array): RowMeta {
  const xyz = new Float32Array(rows.length * 3), depth = new Int32Array(rows.length);
  rows.forEach((r, i) => { xyz[3 * i] = m.xyz[3 * r]!; xyz[3 * i + 1] = m.xyz[3 * r + 1]!; xyz[3 * i + 2] = m.xyz[3 * r + 2]!; depth[i] = m.depth[r]!; });
  return { xyz, depth };
}

export class OctGpt {
  private constructor(
    readonly config: OctGptConfig,
    private readonly w: WeightReader,
    private readonly encoder: BlockWeights[],
    private readonly decoder: BlockWeights[],
  ) {}

  static load(tensors: Tensors, file: string, opts: OctGptOptions = {}): OctGpt {
    const t = octgptTensors(tensors);
    const config = octgptConfig(t, file, opts);
    const w = new WeightReader(t, file);
    const C = config.width;
    const block = (p: string): BlockWeights => {
      const qkv = w.values(`${p}.attention.qkv.weight`), qkvB = w.values(`${p}.attention.qkv.bias`);
      const norm = (n: string): [Tensor, Tensor | undefined] => [w.f32(`${p}.${n}.weight`), config.norm === 'layer' ? w.f32(`${p}.${n}.bias`) : undefined];
      return {
        norm1: norm('norm1'), norm2: norm('norm2'),
        qW: Tensor.from(qkv.subarray(0, C * C), [C, C]), kW: Tensor.from(qkv.subarray(C * C, 2 * C * C), [C, C]),
        vW: Tensor.from(qkv.subarray(2 * C * C), [C, C]),
        qB: Tensor.from(qkvB.subarray(0, C), [C]), kB: Tensor.from(qkvB.subarray(C, 2 * C), [C]), vB: Tensor.from(qkvB.subarray(2 * C), [C]),
        projW: w.f32(`${p}.attention.proj.weight`), projB: w.f32(`${p}.attention.proj.bias`),
        fc1W: w.f32(`${p}.mlp.fc1.weight`), fc1B: w.f32(`${p}.mlp.fc1.bias`),
        fc2W: w.f32(`${p}.mlp.fc2.weight`), fc2B: w.f32(`${p}.mlp.fc2.bias`),
        freqs: octgptFreqsFromParam(w.values(`${p}.attention.rope.freqs`), config.heads),
        depthEmb: w.values(`${p}.pos_emb.depth_emb.weight`),
        ...(config.posEmb === 'abs' ? { absolute: w.values(`${p}.pos_emb.absolute_emb`) } : {}),
      };
    };
    const stack = (s: string, n: number) => Array.from({ length: n }, (_, i) => block(`${s}.layers.blocks.${i}`));
    return new OctGpt(config, w, stack('encoder', config.encoderBlocks), stack('decoder', config.decoderBlocks));
  }

  /** Row `label` of class_emb: the buffer tokens and the masked tokens. */
  condition(label = 0): Float32Array {
    if (!Number.isInteger(label) || label < 0 || label >= this.config.classes)
      fail('ERR_INVALID_ARGUMENT', `class must be 0..${this.config.classes - 1}, got ${label}`);
    const C = this.config.width;
    return this.w.values('class_emb.weight').slice(label * C, (label + 1) * C);
  }

  /** split_emb rows for split flags 0/1. */
  splitEmbedding(flag: number): Float32Array {
    const C = this.config.width;
    return this.w.values('split_emb.weight').subarray(flag * C, (flag + 1) * C);
  }

  /** vq_proj of BSQ codes: bits [n, bits] (0/1) -> (2b - 1)/√bits -> [n, C]. */
  async codeEmbeddings(bits: Uint8Array, n: number): Promise<Tensor> {
    const B = this.config.codeBits;
    const z = new Float32Array(n * B), s = 1 / Math.sqrt(B);
    for (let i = 0; i < n * B; i++) z[i] = (bits[i]! * 2 - 1) * s;
    return linear({ x: Tensor.from(z, [n, B]), weight: this.w.f32('vq_proj.weight'), bias: this.w.f32('vq_proj.bias') });
  }

  /** split_head on hidden rows [n, C] -> [n, 2]. */
  splitLogits(h: Tensor): Promise<Tensor> {
    return linear({ x: h, weight: this.w.f32('split_head.weight'), bias: this.w.f32('split_head.bias') });
  }

  /** vq_head on hidden rows [n, C] -> [n, 2·bits] (bit g: columns 2g, 2g+1). */
  codeLogits(h: Tensor): Promise<Tensor> {
    return linear({ x: h, weight: this.w.f32('vq_head.weight'), bias: this.w.f32('vq_head.bias') });
  }

  /** Hidden states [N, C] of the sequence's tokens (decoder output after decoder_ln, buffer dropped). */
  async forward(seq: OctGptSequence): Promise<Tensor> {
    const cfg = this.config, C = cfg.width;
    const { octree, lo, hi, embeddings, mask } = seq;
    if (octree.batchSize !== 1) fail('ERR_INVALID_ARGUMENT', `OctGPT runs one sample per sequence, the octree holds ${octree.batchSize}`);
    if (lo !== cfg.fullDepth || hi < lo || hi > cfg.depthStop || hi > octree.depth)
      fail('ERR_INVALID_ARGUMENT', `token depths must be ${cfg.fullDepth}..d with d <= ${Math.min(cfg.depthStop, octree.depth)}, got ${lo}..${hi}`);
    let n = 0;
    for (let d = lo; d <= hi; d++) n += octree.level(d).nnum;
    if (embeddings.shape.length !== 2 || embeddings.shape[0] !== n || embeddings.shape[1] !== C)
      fail('ERR_SHAPE', `embeddings must be [${n}, ${C}] (all nodes of depths ${lo}..${hi}), got [${embeddings.shape.join(', ')}]`);
    if (mask.length !== n) fail('ERR_SHAPE', `mask must hold ${n} entries, got ${mask.length}`);
    const cond = this.condition(seq.label ?? 0);

    // Rows: buffer then tokens; metadata on the 128 grid.
    const nb = cfg.bufferSize, N = nb + n;
    const x = new Float32Array(N * C);
    for (let r = 0; r < nb; r++) x.set(cond, r * C);
    const emb = embeddings.data as Float32Array;
    for (let i = 0; i < n; i++) x.set(mask[i] ? cond : emb.subarray(i * C, (i + 1) * C), (nb + i) * C);
    const meta: RowMeta = { xyz: new Float32Array(N * 3), depth: new Int32Array(N) };
    let row = nb;
    for (let d = lo; d <= hi; d++) {
      // OctreeT.build_xyz: x·128 // 2^d + 128 // 2^d // 2 (integer floor
      // division, so depths past 7 share grid cells and get no half offset).
      const cell = octree.xyz(d), div = 2 ** d, half = Math.floor(Math.floor(OCTGPT_GRID / div) / 2);
      for (let i = 0; i < cell.length / 3; i++, row++) {
        for (let a = 0; a < 3; a++) meta.xyz[3 * row + a] = Math.floor((cell[3 * i + a]! * OCTGPT_GRID) / div) + half;
        meta.depth[row] = d - lo;
      }
    }

    // Encoder on the unmasked rows.
    const keep: number[] = [];
    for (let r = 0; r < N; r++) if (r < nb || !mask[r - nb]) keep.push(r);
    const keepRows = Int32Array.from(keep);
    const xAll = Tensor.from(x, [N, C]);
    let xe = await gatherRows(xAll, Tensor.from(keepRows, [keepRows.length]));
    xe = await this.runStack(this.encoder, xe, subsetMeta(meta, keepRows));
    xe = await this.norm(xe, 'encoder_ln');
    const xed = xe.data as Float32Array;
    keepRows.forEach((r, i) => x.set(xed.subarray(i * C, (i + 1) * C), r * C));

    // Decoder on every row.
    let xd = await this.runStack(this.decoder, Tensor.from(x, [N, C]), meta);
    xd = await this.norm(xd, 'decoder_ln');
    return Tensor.from((xd.data as Float32Array).slice(nb * C), [n, C]);
  }

  private async norm(x: Tensor, prefix: string): Promise<Tensor> {
    if (this.config.norm === 'layer') return layerNorm({ x, weight: this.w.f32(`${prefix}.weight`), bias: this.w.f32(`${prefix}.bias`), eps: 1e-5 });
    return rmsNorm({ x, weight: this.w.f32(`${prefix}.weight`), eps: 1e-6 });
  }

  private async blockNorm(x: Tensor, [weight, bias]: [Tensor, Tensor | undefined]): Promise<Tensor> {
    return this.config.norm === 'layer' ? layerNorm({ x, weight, bias, eps: 1e-5 }) : rmsNorm({ x, weight, eps: 1e-6 });
  }

  /** The shared part of SinPosEmb: [x | y | z] sinusoids (sin, cos interleaved per frequency, base 100), truncated to C. */
  private sinusoids(meta: RowMeta): Float32Array {
    const C = this.config.width, N = meta.depth.length;
    const ch = Math.ceil(C / 6) * 2;
    const inv = new Float64Array(ch / 2);
    for (let j = 0; j < ch / 2; j++) inv[j] = Math.fround(1 / Math.fround(100 ** ((2 * j) / ch)));
    const out = new Float32Array(N * C);
    for (let r = 0; r < N; r++)
      for (let a = 0; a < 3; a++) {
        const p = meta.xyz[3 * r + a]!;
        for (let j = 0; j < ch / 2; j++) {
          const col = a * ch + 2 * j;
          if (col >= C) break;
          const angle = Math.fround(p * inv[j]!);  // the original multiplies in float32
          out[r * C + col] = Math.sin(angle);
          if (col + 1 < C) out[r * C + col + 1] = Math.cos(angle);
        }
      }
    return out;
  }

  private async runStack(blocks: BlockWeights[], x: Tensor, meta: RowMeta): Promise<Tensor> {
    const cfg = this.config, C = cfg.width, N = meta.depth.length;
    const plans = new Map<string, WindowPlan>();
    const planFor = async (dilation: number, shift: boolean): Promise<WindowPlan> => {
      const key = `${dilation},${shift}`;
      let p = plans.get(key);
      if (!p) { p = await windowPlan(new Int32Array(N), 1, { window: cfg.window, dilation, shift }); plans.set(key, p); }
      return p;
    };
    const positions = Tensor.from(meta.xyz, [N, 3]);
    const sin = cfg.posEmb === 'sin' ? this.sinusoids(meta) : undefined;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      const dilation = i % 2 === 0 ? 1 : cfg.dilation, shift = cfg.shiftWindows && Math.floor(i / 2) % 2 === 1;
      // x += pos_emb
      const xd = x.data as Float32Array;
      for (let r = 0; r < N; r++) {
        const de = meta.depth[r]! * C;
        for (let c = 0; c < C; c++) {
          let pe: number;
          if (sin) pe = sin[r * C + c]!;
          else pe = b.absolute![meta.xyz[3 * r + (c % 3)]! * C + c]!;  // column c reads the table at axis c mod 3
          xd[r * C + c] = xd[r * C + c]! + Math.fround(pe + b.depthEmb[de + c]!);
        }
      }
      const h = await this.blockNorm(x, b.norm1);
      const [q, k, v] = await Promise.all([
        linear({ x: h, weight: b.qW, bias: b.qB }), linear({ x: h, weight: b.kW, bias: b.kB }), linear({ x: h, weight: b.vW, bias: b.vB }),
      ]);
      const plan = await planFor(dilation, shift);
      const a = await scaleCausalWindowAttention(q!, k!, v!, cfg.heads, plan, meta.depth, octgptRope(positions, b.freqs));
      const x1 = await linear({ x: a, weight: b.projW, bias: b.projB, residual: x });
      const h2 = await this.blockNorm(x1, b.norm2);
      const m = await linear({ x: h2, weight: b.fc1W, bias: b.fc1B });
      geluInPlace(m.data as Float32Array);
      x = await linear({ x: m, weight: b.fc2W, bias: b.fc2B, residual: x1 });
    }
    return x;
  }
}
