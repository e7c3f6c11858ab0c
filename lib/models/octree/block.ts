// OctFormer block forward (octree-nn/octformer OctFormerBlock), inference:
//   x += BN(dwconv3³(x))                (CPE over the nempty 27-neighbour table)
//   x += proj(WindowAttention(LN1(x)))  (qkv split head-major, scale d^-½,
//                                        + the RPE bias when the block has a table)
//   x += fc2(GELU(fc1(LN2(x))))         (nn.GELU: the exact erf form)
// BatchNorm at inference is an affine map from its running statistics, so it
// folds into the depthwise weights and a bias: w' = w·s, b = β − μ·s with
// s = γ/√(var + eps). Drop path is the identity at inference.
import { fail } from '../../errors.js';
import { linear } from '../../ops/gemm.js';
import { layerNorm } from '../../ops/norm.js';
import { native } from '../../native.js';
import { Tensor, withTensors } from '../../tensor.js';
import type { NeighborTable } from '../../octree/octree.js';
import { ShapeReader, type Tensors } from '../var/config.js';
import { WeightReader } from '../var/weights.js';
import { rpeBound, windowAttention, type Rope3d, type WindowPlan } from './attention.js';

export interface OctFormerBlockWeights {
  /** Depthwise conv [27, C] (ocnn's [27, 1, C]). */
  cpeWeight: Float32Array;
  bnWeight: Float32Array; bnBias: Float32Array; bnMean: Float32Array; bnVar: Float32Array;
  norm1Weight: Float32Array; norm1Bias: Float32Array;
  /** [3C, C] and [3C]: rows q | k | v, each head-major. */
  qkvWeight: Float32Array; qkvBias: Float32Array;
  projWeight: Float32Array; projBias: Float32Array;
  norm2Weight: Float32Array; norm2Bias: Float32Array;
  fc1Weight: Float32Array; fc1Bias: Float32Array;
  fc2Weight: Float32Array; fc2Bias: Float32Array;
  /**
   * attention.rpe.rpe_table [3·(2B+1), heads]: the official OctreeAttention
   * builds it by default (use_rpe = True), so released checkpoints have one.
   */
  rpeTable?: Float32Array;
}

/**
 * The weights of block `prefix` (e.g. "layers.2.blocks.5") of an official
 * OctFormer state dict (octree-nn/octformer models/octformer.py):
 * cpe.conv.weights [27, 1, C], cpe.bn.{weight, bias, running_mean,
 * running_var}, norm1/norm2, attention.qkv/proj, attention.rpe.rpe_table
 * (optional), mlp.fc1/fc2. Width and MLP width come from the shapes, heads
 * from the RPE table's columns (give `heads` for a block without one).
 */
export function octformerBlockWeights(tensors: Tensors, prefix: string, file: string, heads?: number): { weights: OctFormerBlockWeights; channels: number; heads: number } {
  const r = new ShapeReader(tensors, file), w = new WeightReader(tensors, file);
  const p = prefix ? `${prefix}.` : '';
  const C = r.shape(`${p}norm1.weight`, 1, 'LayerNorm [C]')[0]!;
  r.expect(`${p}cpe.conv.weights`, [27, 1, C], 'depthwise 3x3x3 CPE [27, 1, C]');
  for (const k of ['weight', 'bias', 'running_mean', 'running_var']) r.expect(`${p}cpe.bn.${k}`, [C], 'CPE BatchNorm');
  for (const n of ['norm1', 'norm2']) { r.expect(`${p}${n}.weight`, [C], 'LayerNorm'); r.expect(`${p}${n}.bias`, [C], 'LayerNorm'); }
  r.expect(`${p}attention.qkv.weight`, [3 * C, C], 'fused [q|k|v]');
  r.expect(`${p}attention.qkv.bias`, [3 * C], 'qkv bias');
  r.expect(`${p}attention.proj.weight`, [C, C], 'attention output');
  r.expect(`${p}attention.proj.bias`, [C], 'attention output bias');
  const hidden = r.shape(`${p}mlp.fc1.weight`, 2, 'MLP fc1 [hidden, C]')[0]!;
  r.expect(`${p}mlp.fc1.weight`, [hidden, C], 'MLP fc1');
  r.expect(`${p}mlp.fc1.bias`, [hidden], 'MLP fc1 bias');
  r.expect(`${p}mlp.fc2.weight`, [C, hidden], 'MLP fc2');
  r.expect(`${p}mlp.fc2.bias`, [C], 'MLP fc2 bias');
  let H = heads;
  const rpeKey = `${p}attention.rpe.rpe_table`;
  if (r.has(rpeKey)) {
    const [rows, cols] = r.shape(rpeKey, 2, 'RPE table [3·(2B+1), heads]') as [number, number];
    if (H !== undefined && H !== cols) fail('ERR_INVALID_ARGUMENT', `${file}: ${rpeKey} has ${cols} heads, ${H} were given`);
    if (rows % 3 !== 0 || (rows / 3) % 2 !== 1) fail('ERR_FORMAT', `${file}: ${rpeKey} has ${rows} rows, expected 3·(2·bound+1)`);
    H = cols;
  }
  if (H === undefined) fail('ERR_INVALID_ARGUMENT', `${file}: ${prefix} has no RPE table to read the head count from; give heads`);
  const v = (k: string): Float32Array => w.values(`${p}${k}`);
  return {
    channels: C, heads: H,
    weights: {
      cpeWeight: v('cpe.conv.weights'), bnWeight: v('cpe.bn.weight'), bnBias: v('cpe.bn.bias'), bnMean: v('cpe.bn.running_mean'), bnVar: v('cpe.bn.running_var'),
      norm1Weight: v('norm1.weight'), norm1Bias: v('norm1.bias'), qkvWeight: v('attention.qkv.weight'), qkvBias: v('attention.qkv.bias'),
      projWeight: v('attention.proj.weight'), projBias: v('attention.proj.bias'), norm2Weight: v('norm2.weight'), norm2Bias: v('norm2.bias'),
      fc1Weight: v('mlp.fc1.weight'), fc1Bias: v('mlp.fc1.bias'), fc2Weight: v('mlp.fc2.weight'), fc2Bias: v('mlp.fc2.bias'),
      ...(r.has(rpeKey) ? { rpeTable: v('attention.rpe.rpe_table') } : {}),
    },
  };
}

interface DwNative { octreeDwconv(a: Record<string, unknown>): Promise<void> }

const ERF_P = 0.3275911, ERF_A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429];
/** erf to ~1e-7 absolute (Abramowitz-Stegun 7.1.26 is 1.5e-7): below float32 resolution of GELU's output. */
function erf(x: number): number {
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + ERF_P * a);
  const poly = t * (ERF_A[0]! + t * (ERF_A[1]! + t * (ERF_A[2]! + t * (ERF_A[3]! + t * ERF_A[4]!))));
  return s * (1 - poly * Math.exp(-a * a));
}

/** nn.GELU (exact erf form) in place. */
export function geluInPlace(a: Float32Array): void {
  for (let i = 0; i < a.length; i++) { const z = a[i]!; a[i] = 0.5 * z * (1 + erf(z / Math.SQRT2)); }
}

export class OctFormerBlock {
  readonly channels: number;
  readonly heads: number;
  readonly #w: Record<string, Tensor>;
  readonly #eps: number;
  readonly #rpe?: { table: Float32Array; bound: number };

  constructor(weights: OctFormerBlockWeights, opts: { channels: number; heads: number; bnEps?: number; lnEps?: number }) {
    const C = opts.channels;
    if (!Number.isInteger(C) || C < 1 || C % opts.heads !== 0) fail('ERR_INVALID_ARGUMENT', `channels ${C} must be a multiple of heads ${opts.heads}`);
    this.channels = C;
    this.heads = opts.heads;
    this.#eps = opts.lnEps ?? 1e-5;
    const expect = (name: keyof OctFormerBlockWeights, n: number): Float32Array => {
      const a = weights[name];
      if (!(a instanceof Float32Array) || a.length !== n) fail('ERR_SHAPE', `${name} must be a Float32Array of ${n} values`);
      return a;
    };
    const bnEps = opts.bnEps ?? 1e-5;
    const cw = expect('cpeWeight', 27 * C), g = expect('bnWeight', C), b = expect('bnBias', C), mu = expect('bnMean', C), va = expect('bnVar', C);
    const wf = new Float32Array(27 * C), bf = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      const s = g[c]! / Math.sqrt(va[c]! + bnEps);
      bf[c] = b[c]! - mu[c]! * s;
      for (let k = 0; k < 27; k++) wf[k * C + c] = cw[k * C + c]! * s;
    }
    if (weights.rpeTable !== undefined) {
      if (!(weights.rpeTable instanceof Float32Array)) fail('ERR_SHAPE', 'rpeTable must be a Float32Array [3·(2B+1), heads]');
      this.#rpe = { table: weights.rpeTable, bound: rpeBound(weights.rpeTable, opts.heads) };
    }
    const t = (a: Float32Array, shape: number[]): Tensor => Tensor.from(a, shape);
    const qkv = expect('qkvWeight', 3 * C * C), qkvB = expect('qkvBias', 3 * C);
    const hidden = expect('fc1Bias', weights.fc1Bias.length).length;
    this.#w = {
      cpeW: t(wf, [27, C]), cpeB: t(bf, [C]),
      n1w: t(expect('norm1Weight', C), [C]), n1b: t(expect('norm1Bias', C), [C]),
      qW: t(qkv.slice(0, C * C), [C, C]), kW: t(qkv.slice(C * C, 2 * C * C), [C, C]), vW: t(qkv.slice(2 * C * C), [C, C]),
      qB: t(qkvB.slice(0, C), [C]), kB: t(qkvB.slice(C, 2 * C), [C]), vB: t(qkvB.slice(2 * C), [C]),
      pW: t(expect('projWeight', C * C), [C, C]), pB: t(expect('projBias', C), [C]),
      n2w: t(expect('norm2Weight', C), [C]), n2b: t(expect('norm2Bias', C), [C]),
      f1W: t(expect('fc1Weight', hidden * C), [hidden, C]), f1B: t(weights.fc1Bias, [hidden]),
      f2W: t(expect('fc2Weight', C * hidden), [C, hidden]), f2B: t(expect('fc2Bias', C), [C]),
    };
  }

  /**
   * x [N, C]: features of the non-empty nodes of one depth in key order;
   * neighbors: that depth's table with nempty = true (27 columns); plan:
   * windowPlan() of those nodes' batch ids; xyz: their cell coordinates
   * [N, 3] (octree.xyz(depth, true)), needed when the block has an RPE table.
   */
  async forward(x: Tensor, neighbors: NeighborTable, plan: WindowPlan, rope?: Rope3d, xyz?: Int32Array): Promise<Tensor> {
    const w = this.#w;
    const [N, C] = x.shape as [number, number];
    if (x.shape.length !== 2 || C !== this.channels) fail('ERR_SHAPE', `x must be [N, ${this.channels}], got [${x.shape.join(', ')}]`);
    if (neighbors.rows !== N || neighbors.cols !== 27) fail('ERR_SHAPE', `neighbors must be the nempty 3x3x3 table of these ${N} nodes`);
    if (this.#rpe && !(xyz instanceof Int32Array && xyz.length === 3 * N))
      fail('ERR_INVALID_ARGUMENT', `this block has a relative position table: pass the ${N} nodes' cell coordinates (octree.xyz(depth, true), [${N}, 3])`);
    const nb = Tensor.from(neighbors.data, [N, 27]);
    const x1 = Tensor.empty([N, C]);
    await withTensors([x, nb, x1], () => (native() as unknown as DwNative).octreeDwconv({
      x: x.native(), neighbors: nb.native(), weight: w.cpeW!.native(), bias: w.cpeB!.native(), residual: x.native(), out: x1.native(),
    }));
    const h = await layerNorm({ x: x1, weight: w.n1w, bias: w.n1b, eps: this.#eps });
    const [q, k, v] = await Promise.all([
      linear({ x: h, weight: w.qW!, bias: w.qB }), linear({ x: h, weight: w.kW!, bias: w.kB }), linear({ x: h, weight: w.vW!, bias: w.vB }),
    ]);
    const a = await windowAttention(q!, k!, v!, this.heads, plan, rope, this.#rpe ? { ...this.#rpe, xyz: xyz! } : undefined);
    const x2 = await linear({ x: a, weight: w.pW!, bias: w.pB, residual: x1 });
    const h2 = await layerNorm({ x: x2, weight: w.n2w, bias: w.n2b, eps: this.#eps });
    const m = await linear({ x: h2, weight: w.f1W!, bias: w.f1B });
    geluInPlace(m.data as Float32Array);
    return linear({ x: m, weight: w.f2W!, bias: w.f2B, residual: x2 });
  }
}
