// Draft verification for every speculative mode, through the native
// verify_draft (exact rule in native/include/tessera/speculative.h): accept
// draft j while u < min(1, p̃(x)/q(x)), replace the first rejected one from
// norm(max(0, p − q')); p̃(x) = p(x) and q' = q unless LANTERN's relaxation
// is on (then p̃(x) adds the neighbours' mass and q' drops x's k + 1 nearest). Also the
// codebook neighbour table LANTERN walks, and the batch bookkeeping shared by
// the Jacobi and draft-model loops.
import { fail } from '../errors.js';
import { native, type NativeTensor } from '../native.js';
import type { DecodeStats } from '../models/llamagen/generate.js';
import { Tensor, withTensors } from '../tensor.js';

interface SpeculativeNative {
  verifyDraft(args: Record<string, unknown>): Promise<void>;
  codebookNeighbours(args: Record<string, unknown>): Promise<void>;
}
const spec = (): SpeculativeNative => native() as unknown as SpeculativeNative;

const cpu = (data: Float32Array | Int32Array, shape: number[], strides?: number[]): NativeTensor =>
  ({ data, dtype: data instanceof Float32Array ? 'float32' : 'int32', shape, strides, device: 'cpu' });

/** For each code, its nearest other codes (closest first; −1 past the radius). */
export interface NeighbourTable {
  /** [vocabulary, width] */
  ids: Int32Array;
  width: number;
  vocabulary: number;
}

/**
 * LANTERN's relaxed acceptance (spec section 3): walk k neighbours while their
 * p-mass stays ≤ delta (delta > 1: LANTERN++'s λ, mass ≤ (λ − 1)·p(x)); a
 * rejection zeroes q on the first k + 1 neighbours (native verify_draft).
 */
export interface Relaxation {
  table: NeighbourTable;
  k: number;
  delta: number;
}

/** The `width` nearest codes of every code of `codebook` [V, D] by L2 (native GEMM + float64 ranking). */
export async function codebookNeighbours(codebook: Tensor, width: number, maxDistance = Infinity): Promise<NeighbourTable> {
  const [V, D] = codebook.shape as [number, number];
  if (codebook.shape.length !== 2) fail('ERR_SHAPE', `codebook must be [V, D], got [${codebook.shape.join(', ')}]`);
  if (!Number.isInteger(width) || width < 1 || width >= V) fail('ERR_INVALID_ARGUMENT', `neighbour count must be in 1..${V - 1}, got ${width}`);
  const ids = new Int32Array(V * width);
  await withTensors([codebook], () => spec().codebookNeighbours({
    codebook: { ...codebook.native(), shape: [V, D] }, out: cpu(ids, [V, width]), maxDistance,
  }));
  return { ids, width, vocabulary: V };
}

export interface VerifyInput {
  images: number;
  /** Drafts per image, L. */
  length: number;
  vocabulary: number;
  /** Target rows: image b's draft j reads row b·pRowStride + j (each row V floats). */
  p: Float32Array;
  pRowStride: number;
  /** [B, L, V] proposal rows; absent: every draft is deterministic (one-hot q). */
  q?: Float32Array;
  /** [B, L] */
  drafts: Int32Array;
  relax?: Relaxation;
  /** Image b uses Philox key seed + b; uniforms on rngRow, residual draws on rngRow + 1; draft j at step + j. */
  seed: number;
  rngRow: number;
  step: number;
}

export interface Verdict {
  /** Drafts accepted per image before the first rejection. */
  accepted: Int32Array;
  /** The replacement token per image; −1 when every draft was accepted. */
  next: Int32Array;
  /** [B, L, 2]: acceptance probability and LANTERN's moved mass per examined draft (−1 after a rejection). */
  stats: Float32Array;
}

export async function verifyDraft(v: VerifyInput): Promise<Verdict> {
  const { images: B, length: L, vocabulary: V } = v;
  const out = { accepted: new Int32Array(B), next: new Int32Array(B), stats: new Float32Array(B * L * 2) };
  if (L === 0) { out.next.fill(-1); return out; }
  const relax = v.relax;
  await spec().verifyDraft({
    p: cpu(v.p, [B, L, V], [v.pRowStride * V, V, 1]), q: v.q ? cpu(v.q, [B, L, V]) : undefined,
    drafts: cpu(v.drafts, [B, L]), neighbours: relax ? cpu(relax.table.ids, [relax.table.vocabulary, relax.table.width]) : undefined,
    lanternK: relax?.k ?? 0, lanternDelta: relax?.delta ?? 0, seed: v.seed, rngRow: v.rngRow, step: v.step,
    accepted: cpu(out.accepted, [B]), next: cpu(out.next, [B]), stats: cpu(out.stats, [B, L, 2]),
  });
  return out;
}

/**
 * Emits one verification pass for the batch. The batch moves by the smallest
 * accepted count m: an image that accepted more emits its accepted draft m+1
 * (a valid sample of that position), the others their replacement, or the
 * bonus token when all were accepted. Every image emits m + 1 tokens (m at the
 * grid's end). Returns m; counts drafts and accepted tokens in vLLM's names.
 */
export function emitVerified(
  out: number[][], drafts: Int32Array, L: number, verdict: Verdict, bonus: (b: number) => number, total: number, stats: DecodeStats,
): number {
  const B = out.length;
  const m = Math.min(...verdict.accepted);
  const k = out[0]!.length - 1;
  for (let b = 0; b < B; b++) {
    const a = verdict.accepted[b]!;
    for (let i = 0; i < m; i++) out[b]!.push(drafts[b * L + i]!);
    const after = a > m ? drafts[b * L + m]! : verdict.next[b]! >= 0 ? verdict.next[b]! : bonus(b);
    if (k + m + 1 < total) out[b]!.push(after);
    const used = m + (a > m ? 1 : 0);
    stats.numAcceptedTokens += used;
    const perPos = (stats.numAcceptedTokensPerPos ??= []);
    for (let i = 0; i < used; i++) perPos[i] = (perPos[i] ?? 0) + 1;
  }
  if (L > 0) { stats.numDrafts += B; stats.numDraftTokens += B * L; }
  return m;
}
