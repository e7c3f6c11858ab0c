// Fused scaled-dot-product attention and rotary embeddings. The obvious
// mistakes (ranks, head counts, dtypes, devices) are caught here with the
// same codes the native core uses; the core re-checks everything.
import { isFloat } from '../dtype.js';
import { fail } from '../errors.js';
import { native } from '../native.js';
import { Tensor, withTensors } from '../tensor.js';

export type Layout = 'bhld' | 'blhd';

/** One mask term; an array combines terms (causal and blockCausal exclude each other). */
export type MaskTerm =
  | 'none'
  | 'causal'
  | { blockCausal: readonly number[] }
  | { segments: { q: Tensor; k: Tensor } }
  | { additive: Tensor };
export type AttentionMask = MaskTerm | readonly MaskTerm[];

export interface AttentionOptions {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** Output, shape of q; float32 or q's dtype. Allocated (q's dtype) if absent. */
  out?: Tensor;
  layout?: Layout;
  /** Logit scale; default 1/sqrt(D). */
  scale?: number;
  mask?: AttentionMask;
  /** Valid keys per batch row (int32 [B]); queries sit at the end of each row (bottom-right alignment). */
  kvLengths?: Int32Array | readonly number[];
  /** L2-normalise q and k per head before the product (VAR). */
  l2norm?: boolean;
  /** Per-head logit multiplier [Hq]. */
  headMultiplier?: Float32Array | readonly number[];
  /** Optional output [B, Hq, Lq] float32: log-sum-exp of the scaled logits. */
  lse?: Tensor;
}

/** Mask bits of the native attention (tessera/attention.h MaskFlags). */
export const MASK_CAUSAL = 1, MASK_BLOCK_CAUSAL = 2, MASK_SEGMENT = 4, MASK_ADDITIVE = 8;

interface Dims { B: number; H: number; L: number; D: number }

function dimsOf(t: Tensor, layout: Layout, what: string): Dims {
  if (t.shape.length !== 4)
    fail('ERR_SHAPE', `${what} must be rank 4 (${layout === 'bhld' ? '[B,H,L,D]' : '[B,L,H,D]'}), got [${t.shape.join(', ')}]`);
  const [a, b, c, d] = t.shape as [number, number, number, number];
  return layout === 'bhld' ? { B: a, H: b, L: c, D: d } : { B: a, L: b, H: c, D: d };
}

function checkFloat(t: Tensor, what: string): void {
  if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${what} must be float32, float16 or bfloat16, got ${t.dtype}`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export async function attention(opts: AttentionOptions): Promise<Tensor> {
  const { q, k, v } = opts;
  const layout: Layout = opts.layout ?? 'bhld';
  if (layout !== 'bhld' && layout !== 'blhd') fail('ERR_INVALID_ARGUMENT', `layout must be 'bhld' or 'blhd'`);
  const qd = dimsOf(q, layout, 'q'), kd = dimsOf(k, layout, 'k');
  checkFloat(q, 'q'); checkFloat(k, 'k'); checkFloat(v, 'v');
  if (!sameShape(k.shape, v.shape)) fail('ERR_SHAPE', `k [${k.shape.join(', ')}] and v [${v.shape.join(', ')}] must match`);
  if (k.dtype !== v.dtype) fail('ERR_DTYPE', `k (${k.dtype}) and v (${v.dtype}) must share a dtype`);
  if (qd.B !== kd.B || qd.D !== kd.D) fail('ERR_SHAPE', `q and k disagree on batch or head size`);
  if (kd.H === 0 || qd.H % kd.H !== 0) fail('ERR_SHAPE', `query heads (${qd.H}) must be a multiple of key heads (${kd.H})`);
  for (const t of [k, v]) if (t.device !== q.device) fail('ERR_DEVICE', `q is on ${q.device}, ${t === k ? 'k' : 'v'} on ${t.device}`);

  let mask = 0;
  let blockLengths: number[] | undefined;
  let qSegments: Tensor | undefined, kSegments: Tensor | undefined, additive: Tensor | undefined;
  const terms: readonly MaskTerm[] = Array.isArray(opts.mask) ? opts.mask : [(opts.mask ?? 'none') as MaskTerm];
  for (const term of terms) {
    if (term === 'none') continue;
    if (term === 'causal') mask |= MASK_CAUSAL;
    else if (typeof term === 'object' && 'blockCausal' in term) {
      blockLengths = [...term.blockCausal];
      if (blockLengths.some((n) => !Number.isInteger(n) || n <= 0))
        fail('ERR_INVALID_ARGUMENT', 'blockCausal lengths must be positive integers');
      const total = blockLengths.reduce((a, b) => a + b, 0);
      if (total !== kd.L) fail('ERR_SHAPE', `blockCausal lengths sum to ${total}, keys number ${kd.L}`);
      mask |= MASK_BLOCK_CAUSAL;
    } else if (typeof term === 'object' && 'segments' in term) {
      ({ q: qSegments, k: kSegments } = term.segments);
      mask |= MASK_SEGMENT;
    } else if (typeof term === 'object' && 'additive' in term) {
      additive = term.additive;
      mask |= MASK_ADDITIVE;
    } else {
      fail('ERR_INVALID_ARGUMENT', `unknown mask ${JSON.stringify(term)}`);
    }
  }
  if ((mask & MASK_CAUSAL) && (mask & MASK_BLOCK_CAUSAL))
    fail('ERR_INVALID_ARGUMENT', `'causal' and blockCausal cannot be combined`);

  let kvLengths: Int32Array | undefined;
  if (opts.kvLengths !== undefined) {
    kvLengths = opts.kvLengths instanceof Int32Array ? opts.kvLengths : Int32Array.from(opts.kvLengths);
    if (kvLengths.length !== qd.B) fail('ERR_SHAPE', `kvLengths needs ${qd.B} entries, got ${kvLengths.length}`);
  }
  let headMultiplier: Float32Array | undefined;
  if (opts.headMultiplier !== undefined) {
    headMultiplier = opts.headMultiplier instanceof Float32Array ? opts.headMultiplier : Float32Array.from(opts.headMultiplier);
    if (headMultiplier.length !== qd.H) fail('ERR_SHAPE', `headMultiplier needs ${qd.H} entries, got ${headMultiplier.length}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(qd.D);
  if (!Number.isFinite(scale)) fail('ERR_INVALID_ARGUMENT', `scale must be finite, got ${scale}`);

  const out = opts.out ?? Tensor.empty(q.shape, q.dtype, q.device);
  if (!sameShape(out.shape, q.shape)) fail('ERR_SHAPE', `out [${out.shape.join(', ')}] must have q's shape [${q.shape.join(', ')}]`);
  if (out.dtype !== 'float32' && out.dtype !== q.dtype) fail('ERR_DTYPE', `out must be float32 or ${q.dtype}, got ${out.dtype}`);

  const tensors = [q, k, v, out, qSegments, kSegments, additive, opts.lse];
  await withTensors(tensors, () => native().attention({
    q: q.native(), k: k.native(), v: v.native(), out: out.native(),
    layout: layout === 'bhld' ? 0 : 1, scale, mask, blockLengths,
    qSegments: qSegments?.native(), kSegments: kSegments?.native(), additive: additive?.native(),
    kvLengths: kvLengths ? Tensor.from(kvLengths, [kvLengths.length]).native() : undefined,
    l2norm: opts.l2norm ?? false, headMultiplier, lse: opts.lse?.native(),
  }));
  return out;
}

// ---- rotary embeddings ----------------------------------------------------

export interface RopeTable { cos: Tensor; sin: Tensor }

/** 1D table: angle(p, j) = p · base^(-2j/R); shapes [P, R/2]. */
export function ropeTable1d(positions: number, rotaryDim: number, base = 10000): RopeTable {
  checkRotaryDim(rotaryDim);
  const cos = Tensor.empty([positions, rotaryDim / 2]), sin = Tensor.empty([positions, rotaryDim / 2]);
  native().ropeTable1d(positions, rotaryDim, base, cos.data as Float32Array, sin.data as Float32Array);
  return { cos, sin };
}

/** LlamaGen 2D table: numPrefix rows of angle 0, then grid² cells (row-major); shapes [P, R/2]. */
export function ropeTable2d(grid: number, numPrefix: number, rotaryDim: number, base = 10000): RopeTable {
  if (rotaryDim % 4 !== 0) fail('ERR_INVALID_ARGUMENT', `2D rotary dim must be a multiple of 4, got ${rotaryDim}`);
  const rows = numPrefix + grid * grid;
  const cos = Tensor.empty([rows, rotaryDim / 2]), sin = Tensor.empty([rows, rotaryDim / 2]);
  native().ropeTable2d(grid, numPrefix, rotaryDim, base, cos.data as Float32Array, sin.data as Float32Array);
  return { cos, sin };
}

/** 3D table (OctGPT): xyz [P, 3], freqs [H, R/2, 3]; shapes [P, H, R/2]. */
export function ropeTable3d(xyz: Tensor, freqs: Tensor): RopeTable {
  if (xyz.shape.length !== 2 || xyz.shape[1] !== 3) fail('ERR_SHAPE', 'xyz must be [P, 3]');
  if (freqs.shape.length !== 3 || freqs.shape[2] !== 3) fail('ERR_SHAPE', 'freqs must be [H, R/2, 3]');
  if (xyz.dtype !== 'float32' || freqs.dtype !== 'float32') fail('ERR_DTYPE', 'xyz and freqs must be float32');
  const [P] = xyz.shape as [number, number];
  const [H, half] = freqs.shape as [number, number, number];
  const cos = Tensor.empty([P, H, half]), sin = Tensor.empty([P, H, half]);
  native().ropeTable3d(P, H, half * 2, xyz.data as Float32Array, freqs.data as Float32Array,
    cos.data as Float32Array, sin.data as Float32Array);
  return { cos, sin };
}

function checkRotaryDim(r: number): void {
  if (!Number.isInteger(r) || r <= 0 || r % 2 !== 0) fail('ERR_INVALID_ARGUMENT', `rotary dim must be a positive even integer, got ${r}`);
}

export interface RopeOptions {
  x: Tensor;
  /** Output (same shape and dtype as x); x itself for in place. Allocated if absent. */
  out?: Tensor;
  layout?: Layout;
  cos: Tensor;
  sin: Tensor;
  /** int32 [B, L] or [L]: table row per token; default the token index. */
  positions?: Tensor;
  style?: 'interleaved' | 'half';
  /** First R dims rotate; default D. */
  rotaryDim?: number;
}

export async function ropeApply(opts: RopeOptions): Promise<Tensor> {
  const { x, cos, sin } = opts;
  const layout = opts.layout ?? 'bhld';
  const xd = dimsOf(x, layout, 'x');
  checkFloat(x, 'x');
  const rotaryDim = opts.rotaryDim ?? xd.D;
  checkRotaryDim(rotaryDim);
  if (rotaryDim > xd.D) fail('ERR_SHAPE', `rotary dim ${rotaryDim} exceeds head size ${xd.D}`);
  if (!sameShape(cos.shape, sin.shape)) fail('ERR_SHAPE', 'cos and sin tables must have the same shape');
  if (cos.dtype !== 'float32' || sin.dtype !== 'float32') fail('ERR_DTYPE', 'rope tables must be float32');
  if (opts.positions && opts.positions.dtype !== 'int32') fail('ERR_DTYPE', 'positions must be int32');
  const out = opts.out ?? Tensor.empty(x.shape, x.dtype, x.device);
  const style = opts.style ?? 'interleaved';
  if (style !== 'interleaved' && style !== 'half') fail('ERR_INVALID_ARGUMENT', `style must be 'interleaved' or 'half'`);
  await withTensors([x, out, cos, sin, opts.positions], () => native().ropeApply({
    x: x.native(), out: out.native(), layout: layout === 'bhld' ? 0 : 1, cos: cos.native(), sin: sin.native(),
    positions: opts.positions?.native(), style: style === 'interleaved' ? 0 : 1, rotaryDim,
  }));
  return out;
}
