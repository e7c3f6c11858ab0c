// Token sampling: CFG, temperature, top-k, top-p, softmax and a multinomial
// draw from a counter-based RNG (Philox4x32-10 keyed by seed, counter (row,
// step)), so one seed gives the same tokens on every run and thread count.
// Exact definition: native/include/tessera/sampling.h. In short, per row:
//   l = u + cfgScale·(l − u)       (with uncond; VAR's (1+t)c − t·u is cfgScale = 1 + t)
//   x = l / max(temperature, 1e-5)
//   top-k keeps x ≥ the k-th largest; top-p keeps the smallest prefix (by x
//   descending, ties by index) whose preceding mass is ≤ topP;
//   p = softmax over the kept entries (0 elsewhere) — written to `probs`;
//   token = first i with Σ_{j≤i} p_j > u, u = philoxUniform(seed, rowOffset + row, step).
import { fail } from '../errors.js';
import { native, type NativeTensor } from '../native.js';
import { Tensor, withTensors } from '../tensor.js';

interface SamplingNative {
  sample(args: Record<string, unknown>): Promise<void>;
  cfgCombine(args: Record<string, unknown>): Promise<void>;
  philoxUniform(seed: number | bigint, row: number | bigint, step: number | bigint): number;
}
const nn = (): SamplingNative => native() as unknown as SamplingNative;

/** Rows [start, start + count) of a [..., V] tensor viewed as [count, V]. */
function rowsOf(t: Tensor, start: number, count: number): NativeTensor {
  const V = t.shape[t.shape.length - 1]!;
  return { ...t.native(), shape: [count, V], strides: [V, 1], offset: start * V };
}

export interface SampleOptions {
  /** [..., V] float32: every row (all dims but the last) is sampled. */
  logits: Tensor;
  /** Unconditional logits, shaped like logits: enables CFG. */
  uncond?: Tensor;
  /** logits holds [cond rows; uncond rows] (VAR's and LlamaGen's 2B batch): one token per pair. */
  cfgHalves?: boolean;
  cfgScale?: number;
  temperature?: number;
  /** 0 = off */
  topK?: number;
  /** 1 (or 0) = off */
  topP?: number;
  seed?: number | bigint;
  /** The decoding step (LlamaGen token index, VAR scale index). */
  step?: number | bigint;
  /** RNG row of the first logits row. */
  rowOffset?: number;
  /** Output int32 [rows]; allocated if absent. */
  tokens?: Tensor;
  /** Optional output [rows, V] float32: the kept probabilities p (speculative decoding). */
  probs?: Tensor;
}

/** Samples one token per row; returns the int32 tokens. */
export async function sample(opts: SampleOptions): Promise<Tensor> {
  const { logits, uncond } = opts;
  if (logits.shape.length < 1) fail('ERR_SHAPE', 'logits must be [..., V]');
  const V = logits.shape[logits.shape.length - 1]!;
  let rows = logits.numel / V;
  let l = rowsOf(logits, 0, rows), u = uncond ? rowsOf(uncond, 0, uncond.numel / V) : undefined;
  if (opts.cfgHalves) {
    if (uncond) fail('ERR_INVALID_ARGUMENT', 'pass either uncond or cfgHalves, not both');
    if (rows % 2 !== 0) fail('ERR_SHAPE', `cfgHalves needs an even number of rows, got ${rows}`);
    rows /= 2;
    l = rowsOf(logits, 0, rows);
    u = rowsOf(logits, rows, rows);
  }
  const guided = u !== undefined;
  const tokens = opts.tokens ?? Tensor.empty([rows], 'int32', logits.device);
  const { probs } = opts;
  await withTensors([logits, uncond, tokens, probs], () => nn().sample({
    logits: l, uncond: u, cfgScale: guided ? opts.cfgScale ?? 1 : 1, temperature: opts.temperature ?? 1,
    topK: opts.topK ?? 0, topP: opts.topP ?? 1, seed: opts.seed ?? 0, step: opts.step ?? 0,
    rowOffset: opts.rowOffset ?? 0, tokens: tokens.native(), probs: probs ? rowsOf(probs, 0, rows) : undefined,
  }));
  return tokens;
}

export interface CfgOptions {
  cond: Tensor;
  uncond: Tensor;
  scale: number;
  /** Shaped like cond; may be cond or uncond itself. */
  out?: Tensor;
}

/** out = uncond + scale·(cond − uncond), float32. */
export async function cfgCombine(opts: CfgOptions): Promise<Tensor> {
  const { cond, uncond } = opts;
  const V = cond.shape[cond.shape.length - 1]!;
  const rows = cond.numel / V;
  const out = opts.out ?? Tensor.empty(cond.shape, 'float32', cond.device);
  await withTensors([cond, uncond, out], () => nn().cfgCombine({
    cond: rowsOf(cond, 0, rows), uncond: rowsOf(uncond, 0, uncond.numel / V), out: rowsOf(out, 0, out.numel / V),
    scale: opts.scale,
  }));
  return out;
}

/** The uniform draw in [0, 1) that sample() uses for (seed, row, step). */
export function philoxUniform(seed: number | bigint, row: number | bigint, step: number | bigint): number {
  return nn().philoxUniform(seed, row, step);
}
