// Octree attention through the fused kernel: OctFormer's windows (K tokens,
// dilation, padding with batch id = batchSize) and OctGPT's shifted windows
// become a gather into window order plus one segment-masked attention over
// [windows, K, H, d] (each window is a batch row, so the cost is O(N·K), not
// O(N²)); the result is scattered back to token order. 3D RoPE as OctGPT
// defines it is applied to q and k in token order before the gather.
import { fail } from '../../errors.js';
import { native } from '../../native.js';
import { attention, ropeApply, ropeTable3d, type MaskTerm } from '../../ops/attention.js';
import { Tensor, withTensors } from '../../tensor.js';
import type { Octree } from '../../octree/octree.js';

interface PlanNative {
  octreeWindowPlan(a: Record<string, unknown>): Promise<{ numWindows: number; perm: Int32Array; segments: Int32Array }>;
  octreeRows(a: Record<string, unknown>): Promise<void>;
  octreeRpeBias(a: Record<string, unknown>): Promise<void>;
}
const nat = (): PlanNative => native() as unknown as PlanNative;

export interface WindowOptions {
  /** Tokens per window (OctFormer's patch_size K). */
  window: number;
  /** Every dilation-th token inside a block of K·dilation (default 1). */
  dilation?: number;
  /** OctGPT's shifted windows: K/2 masked fillers first. */
  shift?: boolean;
}

export interface WindowPlan {
  numWindows: number;
  window: number;
  /** [numWindows·K] token of each window slot, -1 for fillers and padding. */
  perm: Tensor;
  /** [numWindows, K] batch id per slot (batchSize for fillers and padding). */
  segments: Tensor;
}

/** The plan for tokens with the given (non-decreasing) batch ids. */
export async function windowPlan(batchIds: Int32Array, batchSize: number, opts: WindowOptions): Promise<WindowPlan> {
  const r = await nat().octreeWindowPlan({
    batchIds, batchSize, window: opts.window, dilation: opts.dilation ?? 1, shift: opts.shift ?? false,
  });
  return {
    numWindows: r.numWindows, window: opts.window,
    perm: Tensor.from(r.perm, [r.perm.length]),
    segments: Tensor.from(r.segments, [r.numWindows, opts.window]),
  };
}

/** out[i] = x[index[i]] (zeros where index is -1); x [N, C] float32. */
export async function gatherRows(x: Tensor, index: Tensor): Promise<Tensor> {
  const out = Tensor.empty([index.numel, x.shape[1]!]);
  await withTensors([x, index, out], () => nat().octreeRows({ x: x.native(), index: index.native(), out: out.native() }));
  return out;
}

/** out[index[i]] = x[i] for index >= 0, into a [rows, C] tensor (other rows are zero). */
export async function scatterRows(x: Tensor, index: Tensor, rows: number): Promise<Tensor> {
  const out = Tensor.zeros([rows, x.shape[1]!]);
  await withTensors([x, index, out], () => nat().octreeRows({ x: x.native(), index: index.native(), out: out.native(), scatter: true }));
  return out;
}

export interface Rope3d { cos: Tensor; sin: Tensor; rotaryDim: number }

/**
 * OctFormer's relative position bias (models/octformer.py RPE, on by default
 * in its OctreeAttention): for query i and key j of a window, per axis a the
 * offset xyz_i − xyz_j clamped to ±bound indexes row a·(2·bound+1) + offset +
 * bound of `table` [3·(2·bound+1), heads]; the three rows are summed and added
 * to head h's logit. bound = int(0.8·K·√dilation) in the official code; here
 * it is read from the table's rows.
 */
export interface RelativePositionBias {
  /** [3·(2·bound+1), heads] row-major (the official rpe_table). */
  table: Float32Array;
  bound: number;
  /** [N, 3] integer cell coordinates of the tokens at their depth. */
  xyz: Int32Array;
}

/** The bound of an RPE table [3·(2B+1), heads] (ERR_SHAPE if the rows do not have that form). */
export function rpeBound(table: Float32Array, heads: number): number {
  const rows = table.length / heads;
  const r = rows / 3, b = (r - 1) / 2;
  if (!Number.isInteger(rows) || !Number.isInteger(r) || !Number.isInteger(b) || b < 0)
    fail('ERR_SHAPE', `an RPE table must be [3·(2·bound+1), ${heads}], got ${table.length} values`);
  return b;
}

/**
 * Logit bias [n, H, K, K] of windows w0 .. w0+n-1 of the plan (0 where a slot
 * is padding): (table[x-row] + table[y-row]) + table[z-row] in float32, per
 * pair of slots and head, computed natively off the event loop (the
 * octree_rpe_bias kernel; ERR_* codes for bad shapes, positions or windows).
 * `out` [n, H, K, K] float32 is written in place when given (every value).
 */
export async function rpeBias(rpe: RelativePositionBias, heads: number, perm: Tensor, window: number, w0: number, n: number, out?: Tensor): Promise<Tensor> {
  const rows = rpe.table.length / heads;
  if (!Number.isInteger(rows)) fail('ERR_SHAPE', `an RPE table must be [3·(2·bound+1), ${heads}], got ${rpe.table.length} values`);
  if (rpe.xyz.length % 3 !== 0) fail('ERR_SHAPE', `RPE positions must be [N, 3], got ${rpe.xyz.length} values`);
  if (!Number.isSafeInteger(n) || n < 0) fail('ERR_INVALID_ARGUMENT', `the window count must be a non-negative integer, got ${n}`);
  const total = n * heads * window * window;
  if (!Number.isSafeInteger(total) || total > 2 ** 31 - 1)
    fail('ERR_INVALID_ARGUMENT', `an RPE bias of ${n}·${heads}·${window}² values is too large for one array; take fewer windows at a time`);
  const table = Tensor.from(rpe.table, [rows, heads]);
  const xyz = Tensor.from(rpe.xyz, [rpe.xyz.length / 3, 3]);
  const dst = out ?? Tensor.empty([n, heads, window, window]);
  try {
    await withTensors([table, xyz, perm, dst], () => nat().octreeRpeBias({
      table: table.native(), xyz: xyz.native(), perm: perm.native(), out: dst.native(), window, w0, n,
    }));
  } catch (e) {
    if (!out) dst.dispose();
    throw e;
  }
  return dst;
}

/**
 * Windowed multi-head attention of tokens [N, C] (heads·headDim, head-major
 * columns as OctFormer's qkv reshape): softmax(q·kᵀ/√d [+ RPE]) within each
 * window and sample. Returns [N, C].
 */
export async function windowAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, plan: WindowPlan, rope?: Rope3d, rpe?: RelativePositionBias): Promise<Tensor> {
  const [N, C] = q.shape as [number, number];
  if (q.shape.length !== 2 || C % heads !== 0) fail('ERR_SHAPE', `q must be [N, heads·d], got [${q.shape.join(', ')}] for ${heads} heads`);
  const d = C / heads;
  if (rope) {
    const args = { layout: 'blhd' as const, cos: rope.cos, sin: rope.sin, rotaryDim: rope.rotaryDim };
    q = await ropeApply({ x: q.reshape([1, N, heads, d]), ...args }).then((t) => t.reshape([N, C]));
    k = await ropeApply({ x: k.reshape([1, N, heads, d]), ...args }).then((t) => t.reshape([N, C]));
  }
  const W = plan.numWindows, K = plan.window;
  if (!rpe) {
    const shape = [W, K, heads, d];
    const [qw, kw, vw] = await Promise.all([q, k, v].map((t) => gatherRows(t, plan.perm)));
    const ow = await attention({
      q: qw!.reshape(shape), k: kw!.reshape(shape), v: vw!.reshape(shape), layout: 'blhd',
      mask: { segments: { q: plan.segments, k: plan.segments } },
    });
    return scatterRows(ow.reshape([W * K, C]), plan.perm, N);
  }
  if (rpe.xyz.length !== 3 * N) fail('ERR_SHAPE', `RPE positions must be [${N}, 3], got ${rpe.xyz.length} values`);
  if (rpe.table.length !== 3 * (2 * rpe.bound + 1) * heads) fail('ERR_SHAPE', `RPE table must be [${3 * (2 * rpe.bound + 1)}, ${heads}] for bound ${rpe.bound}`);
  // The bias is [windows, H, K, K]: windows go in chunks of at most 2^23 bias
  // values (32 MB), all written into one buffer (fresh pages per chunk would
  // cost about as much as computing the bias).
  const perm = plan.perm.data as Int32Array, seg = plan.segments.data as Int32Array;
  const chunk = Math.max(1, Math.floor((1 << 23) / (heads * K * K)));
  const out = Tensor.zeros([N, C]);
  if (W === 0) return out;
  const biasBuf = Tensor.empty([Math.min(chunk, W), heads, K, K]);
  try {
    for (let w0 = 0; w0 < W; w0 += chunk) {
      const n = Math.min(chunk, W - w0);
      const index = Tensor.from(perm.slice(w0 * K, (w0 + n) * K), [n * K]);
      const segments = Tensor.from(seg.slice(w0 * K, (w0 + n) * K), [n, K]);
      const shape = [n, K, heads, d];
      const bias = n === biasBuf.shape[0] ? biasBuf : Tensor.from((biasBuf.data as Float32Array).subarray(0, n * heads * K * K), [n, heads, K, K]);
      const [, qw, kw, vw] = await Promise.all([rpeBias(rpe, heads, plan.perm, K, w0, n, bias), ...[q, k, v].map((t) => gatherRows(t, index))]);
      const ow = await attention({
        q: qw!.reshape(shape), k: kw!.reshape(shape), v: vw!.reshape(shape), layout: 'blhd',
        mask: [{ segments: { q: segments, k: segments } }, { additive: bias }],
      });
      const flat = ow.reshape([n * K, C]);
      await withTensors([flat, index, out], () => nat().octreeRows({ x: flat.native(), index: index.native(), out: out.native(), scatter: true }));
    }
  } finally {
    biasBuf.dispose();
  }
  return out;
}

/**
 * OctGPT's windowed attention (models/octformer.py OctreeAttention): the
 * window mask of `plan` (same sample, no fillers or padding) and the
 * scale-causal rule: a query of group g sees the keys of groups <= g (group =
 * the token's depth index; buffer tokens share the first depth's group).
 * Groups must not decrease along the tokens (one sample, depth-major order),
 * so inside a window each group is one run of slots and the rule is the fused
 * kernel's block-causal mask over those runs. Windows with the same runs share
 * one attention call. Returns [N, C].
 */
export async function scaleCausalWindowAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, plan: WindowPlan, groups: Int32Array, rope?: Rope3d): Promise<Tensor> {
  const [N, C] = q.shape as [number, number];
  if (q.shape.length !== 2 || C % heads !== 0) fail('ERR_SHAPE', `q must be [N, heads·d], got [${q.shape.join(', ')}] for ${heads} heads`);
  if (groups.length !== N) fail('ERR_SHAPE', `groups must hold one entry per token (${N}), got ${groups.length}`);
  for (let i = 1; i < N; i++) if (groups[i]! < groups[i - 1]!) fail('ERR_INVALID_ARGUMENT', 'groups must not decrease along the tokens (one sample, depth-major order)');
  const d = C / heads;
  if (rope) {
    const args = { layout: 'blhd' as const, cos: rope.cos, sin: rope.sin, rotaryDim: rope.rotaryDim };
    q = await ropeApply({ x: q.reshape([1, N, heads, d]), ...args }).then((t) => t.reshape([N, C]));
    k = await ropeApply({ x: k.reshape([1, N, heads, d]), ...args }).then((t) => t.reshape([N, C]));
  }
  const W = plan.numWindows, K = plan.window;
  const perm = plan.perm.data as Int32Array, seg = plan.segments.data as Int32Array;
  // Runs of equal groups per window; fillers and padding join the run next to them.
  const bySignature = new Map<string, { lengths: number[]; windows: number[] }>();
  const g = new Int32Array(K);
  for (let w = 0; w < W; w++) {
    let prev = -1, first = -1;
    for (let j = 0; j < K; j++) {
      const t = perm[w * K + j]!;
      g[j] = t >= 0 ? groups[t]! : prev;
      prev = g[j]!;
      if (first < 0 && prev >= 0) first = prev;
    }
    for (let j = 0; j < K && g[j]! < 0; j++) g[j] = Math.max(first, 0);  // leading fillers
    const lengths: number[] = [];
    let len = 1;
    for (let j = 1; j < K; j++) {
      if (g[j] !== g[j - 1]) { lengths.push(len); len = 0; }
      len++;
    }
    lengths.push(len);
    const key = lengths.join(',');
    const entry = bySignature.get(key) ?? { lengths, windows: [] };
    entry.windows.push(w);
    bySignature.set(key, entry);
  }
  const out = Tensor.zeros([N, C]);
  for (const { lengths, windows } of bySignature.values()) {
    const n = windows.length;
    const idx = new Int32Array(n * K), sg = new Int32Array(n * K);
    windows.forEach((w, i) => { idx.set(perm.subarray(w * K, w * K + K), i * K); sg.set(seg.subarray(w * K, w * K + K), i * K); });
    const index = Tensor.from(idx, [n * K]), segments = Tensor.from(sg, [n, K]);
    const shape = [n, K, heads, d];
    const [qw, kw, vw] = await Promise.all([q, k, v].map((t) => gatherRows(t, index)));
    const mask: MaskTerm[] = [{ segments: { q: segments, k: segments } }];
    if (lengths.length > 1) mask.push({ blockCausal: lengths });
    const ow = await attention({ q: qw!.reshape(shape), k: kw!.reshape(shape), v: vw!.reshape(shape), layout: 'blhd', mask });
    const flat = ow.reshape([n * K, C]);
    await withTensors([flat, index, out], () => nat().octreeRows({ x: flat.native(), index: index.native(), out: out.native(), scatter: true }));
  }
  return out;
}

// ---- OctGPT 3D rotary embeddings -------------------------------------------

/** Per-head directions: φ in [0, 2π), θ in [0, π/2) (OctGPT draws them with torch.rand). */
export interface RopeDirection { phi: number; theta: number }

/**
 * OctGPT's "mixed" learnable frequencies at initialisation, as the [H, 3F, 3]
 * table ropeTable3d takes (F = headDim/6 magnitudes base^(-6j/headDim)).
 * Per head the three bands of F pairs use the directions
 * (sinθcosφ, sinθsinφ, cosθ), (sinθcos(φ+π/2), sinθsin(φ+π/2), cosθ) and
 * (cosθcosφ, cosθsinφ, -sinθ) (sin(θ+π/2) = cosθ, cos(θ+π/2) = -sinθ).
 */
export function octgptRopeFreqs(headDim: number, directions: readonly RopeDirection[], base = 100): Tensor {
  const F = Math.floor(headDim / 6);
  if (F < 1) fail('ERR_INVALID_ARGUMENT', `3D RoPE needs a head size of at least 6, got ${headDim}`);
  const H = directions.length;
  const out = new Float32Array(H * 3 * F * 3);
  directions.forEach(({ phi, theta }, h) => {
    const dirs = [
      [Math.sin(theta) * Math.cos(phi), Math.sin(theta) * Math.sin(phi), Math.cos(theta)],
      [Math.sin(theta) * Math.cos(phi + Math.PI / 2), Math.sin(theta) * Math.sin(phi + Math.PI / 2), Math.cos(theta)],
      [Math.sin(theta + Math.PI / 2) * Math.cos(phi), Math.sin(theta + Math.PI / 2) * Math.sin(phi), Math.cos(theta + Math.PI / 2)],
    ];
    for (let band = 0; band < 3; band++)
      for (let j = 0; j < F; j++) {
        const mag = Math.pow(base, -(6 * j) / headDim);
        for (let a = 0; a < 3; a++) out[((h * 3 * F) + band * F + j) * 3 + a] = mag * dirs[band]![a]!;
      }
  });
  return Tensor.from(out, [H, 3 * F, 3]);
}

/** OctGPT's parameter `freqs` [3, H·3F] (rows x, y, z) as the [H, 3F, 3] table. */
export function octgptFreqsFromParam(param: Float32Array, heads: number): Tensor {
  const half = param.length / 3 / heads;
  if (!Number.isInteger(half)) fail('ERR_SHAPE', `freqs of ${param.length} values do not split into 3 × ${heads} heads`);
  const out = new Float32Array(param.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let a = 0; a < 3; a++) out[(h * half + j) * 3 + a] = param[a * heads * half + h * half + j]!;
  return Tensor.from(out, [heads, half, 3]);
}

/** Node positions as OctGPT feeds RoPE: cell centres on a `grid` (128) lattice, (xyz + 0.5)·grid/2^d. */
export function octgptPositions(octree: Octree, depth: number, nempty = true, grid = 128): Tensor {
  const xyz = octree.xyz(depth, nempty);
  const s = grid / 2 ** depth;
  const out = new Float32Array(xyz.length);
  for (let i = 0; i < xyz.length; i++) out[i] = (xyz[i]! + 0.5) * s;
  return Tensor.from(out, [xyz.length / 3, 3]);
}

/** cos/sin tables [N, H, 3F] for tokens at `positions` [N, 3] with `freqs` [H, 3F, 3]. */
export function octgptRope(positions: Tensor, freqs: Tensor): Rope3d {
  const t = ropeTable3d(positions, freqs);
  return { ...t, rotaryDim: 2 * freqs.shape[1]! };
}
