// Keyed green lists for lexical-bias watermarking (spec section 6, KGW
// conventions; LBW's per-image list drawn from a pool). Exact construction:
//   key64  = the first 8 bytes of SHA-256(UTF-8 key), little-endian;
//   pool index of an image sampled with seed s:
//            j = ⌊philox_uniform(key64, 0, s) · P⌋           (P = pool size);
//   green list j = the ⌊γ·V⌋ token ids with the smallest scores
//            philox_uniform(key64, 1 + j, v), ties by lower id.
// Generation adds δ to the green logits of each image (after CFG, before
// temperature and top-k/top-p: GuidedSampler adds it to both CFG halves).
// Detection does not know s, so it tests all P lists (lib/watermark/ztest.ts).
import { createHash } from 'node:crypto';

import { TesseraError } from '../errors.js';
import { philoxUniform } from '../ops/sampling.js';

export interface WatermarkOptions {
  key: string;
  /** Green fraction γ (default 0.25). */
  gamma?: number;
  /** Logit bias δ on green tokens (default 2). */
  delta?: number;
  /** Green lists in the keyed pool, P (default 16). */
  pool?: number;
}

export type ResolvedWatermark = Required<WatermarkOptions> & { key64: bigint };

export const WATERMARK_DEFAULTS = { gamma: 0.25, delta: 2, pool: 16 } as const;

export function resolveWatermark(o: WatermarkOptions): ResolvedWatermark {
  const r = { key: o.key, gamma: o.gamma ?? WATERMARK_DEFAULTS.gamma, delta: o.delta ?? WATERMARK_DEFAULTS.delta, pool: o.pool ?? WATERMARK_DEFAULTS.pool };
  const bad = (m: string): never => { throw new TesseraError('ERR_INVALID_ARGUMENT', m); };
  if (typeof r.key !== 'string' || r.key.length === 0) bad('the watermark key must be a non-empty string');
  if (!(r.gamma > 0 && r.gamma < 1)) bad(`watermark gamma must be in (0, 1), got ${r.gamma}`);
  if (!Number.isFinite(r.delta) || r.delta < 0) bad(`watermark delta must be a finite number >= 0, got ${r.delta}`);
  if (!Number.isInteger(r.pool) || r.pool < 1 || r.pool > 65536) bad(`watermark pool must be an integer in 1..65536, got ${r.pool}`);
  return { ...r, key64: createHash('sha256').update(r.key, 'utf8').digest().readBigUInt64LE(0) };
}

/** The pool index of the image sampled with `seed`. */
export function poolIndex(w: ResolvedWatermark, seed: number): number {
  return Math.min(w.pool - 1, Math.floor(philoxUniform(w.key64, 0, seed) * w.pool));
}

/** Green list `j` over V tokens: 1 = green. */
export function greenList(w: ResolvedWatermark, j: number, vocabulary: number): Uint8Array {
  const scores = Float64Array.from({ length: vocabulary }, (_, v) => philoxUniform(w.key64, 1 + j, v));
  const order = Array.from({ length: vocabulary }, (_, v) => v).sort((a, b) => scores[a]! - scores[b]! || a - b);
  const green = new Uint8Array(vocabulary);
  for (const v of order.slice(0, Math.floor(w.gamma * vocabulary))) green[v] = 1;
  return green;
}

/** Per image (seed + b), the logit bias: δ on its green list, 0 elsewhere. */
export function watermarkBias(w: ResolvedWatermark, vocabulary: number, seed: number, images: number): Float32Array[] {
  return Array.from({ length: images }, (_, b) => {
    const green = greenList(w, poolIndex(w, seed + b), vocabulary);
    return Float32Array.from(green, (g) => g * w.delta);
  });
}
