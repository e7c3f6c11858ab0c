// Class-conditional next-token generation with LlamaGen (spec section 1,
// the official generate()): slot 0 holds the class, then one token per pass
// through the KV cache. CFG runs 2B rows (conditional, then null class) and
// mixes l = l_u + s·(l_c − l_u), only when s > 1 as the official code does
// (s ≤ 1 runs the conditional rows alone). Sampling goes through
// lib/ops/sampling.ts: image b draws from seed + b at step t (its token
// index), so a batch equals its images run one by one.
import { TesseraError } from '../../errors.js';
import { sample } from '../../ops/sampling.js';
import { Tensor } from '../../tensor.js';
import type { GptState, LlamaGenGpt } from './gpt.js';

export interface SamplingOptions {
  /** Guidance scale; > 1 enables CFG. Default 2.0 (the FID protocol of B and L). */
  cfg?: number;
  /** Keep the k largest logits (0 = off; 1 = greedy). Default 2000 (the official sample script). */
  topK?: number;
  /**
   * Nucleus mass; 1 = off. Default 1. 0 keeps only the most likely token, as
   * the official filter does (it runs for any top_p < 1: at 0 only the first
   * entry of the descending sort survives), unlike VAR's sampler where 0 is off.
   */
  topP?: number;
  /** Logit divisor. Default 1. */
  temperature?: number;
  /** Image b draws from seed + b. Default 0. */
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** One class per image; -1 is the null class. */
  classes: readonly number[];
  /** Token grid side (image side / the tokenizer's downsampling). */
  grid: number;
  /** Progress: tokens done of total (per image). */
  onProgress?: (done: number, total: number) => void;
  /** Per image, [V] added to the logits before sampling (the watermark's green-list bias; lib/watermark). */
  logitBias?: readonly (Float32Array | undefined)[];
  /**
   * The official cfg_interval (sample_c2i.py --cfg-interval; plain decoding
   * only): with cfg > 1, decode step i (token i + 1) is guided only while
   * i <= cfgInterval, later tokens take the conditional logits (both halves
   * still run). -1 (default) or below: every token is guided. The class-slot
   * token (prefill) is always guided.
   */
  cfgInterval?: number;
}

/** Tokens 0..n−1 are guided under cfgInterval (the official decode_n_tokens' cfg_flag), of N. */
export function guidedTokenCount(cfgInterval: number | undefined, N: number): number {
  const c = cfgInterval ?? -1;
  if (!Number.isFinite(c)) throw new TesseraError('ERR_INVALID_ARGUMENT', `cfg interval must be a finite number (-1 = off), got ${c}`);
  return c > -1 ? Math.min(N, Math.floor(c) + 2) : N;
}

/** Counters of one generation, named as vLLM's spec-decode metrics. */
export interface DecodeStats {
  /** Passes through the GPT (prefill included). */
  forwardPasses: number;
  /** Tokens per image. */
  tokens: number;
  /** Verification passes that carried drafts (vllm:spec_decode_num_drafts). */
  numDrafts: number;
  /** Draft tokens proposed (vllm:spec_decode_num_draft_tokens). */
  numDraftTokens: number;
  /** Draft tokens accepted (vllm:spec_decode_num_accepted_tokens). */
  numAcceptedTokens: number;
  /** Accepted tokens by draft position (vllm:spec_decode_num_accepted_tokens_per_pos); speculative modes only. */
  numAcceptedTokensPerPos?: number[];
  /** numAcceptedTokens / numDraftTokens (0 without drafts). */
  acceptanceRate: number;
  /** 1 + numAcceptedTokens / numDrafts: tokens emitted per verification pass. */
  meanAcceptanceLength: number;
  /** Tokens emitted per forward pass over the whole image. */
  tokensPerPass: number;
  /** Passes through the draft model (draft-model modes only). */
  draftForwardPasses?: number;
}

export type ResolvedSampling = Required<SamplingOptions>;

export function resolveSampling(o: SamplingOptions, vocabulary: number): ResolvedSampling {
  const r = { cfg: o.cfg ?? 2.0, topK: o.topK ?? 2000, topP: o.topP ?? 1, temperature: o.temperature ?? 1, seed: o.seed ?? 0 };
  const bad = (m: string): never => { throw new TesseraError('ERR_INVALID_ARGUMENT', m); };
  if (!Number.isFinite(r.cfg) || r.cfg < 0) bad(`cfg must be a finite number >= 0, got ${r.cfg}`);
  if (!Number.isInteger(r.topK) || r.topK < 0) bad(`top-k must be an integer >= 0 (0 = off), got ${r.topK}`);
  if (!Number.isFinite(r.topP) || r.topP < 0 || r.topP > 1) bad(`top-p must be in [0, 1] (1 = off; 0 keeps only the most likely token), got ${r.topP}`);
  if (!Number.isFinite(r.temperature) || r.temperature < 0) bad(`temperature must be a finite number >= 0, got ${r.temperature}`);
  // The official sampler divides the logits by max(temperature, 1e-5): 0 is (near-)greedy.
  r.temperature = Math.max(r.temperature, 1e-5);
  if (!Number.isSafeInteger(r.seed) || r.seed < 0) bad(`seed must be a non-negative integer, got ${r.seed}`);
  if (r.topK >= vocabulary) r.topK = 0;  // keeping every token is no filter
  // The official top_k_top_p_filtering at top_p = 0 keeps the first entry of the descending
  // sort alone (the shift keeps one token): greedy. Tessera's sampler treats 0 as off.
  if (r.topP === 0) { r.topK = 1; r.topP = 1; }
  return r;
}

export function checkClasses(classes: readonly number[], count: number): void {
  if (classes.length === 0) throw new TesseraError('ERR_INVALID_ARGUMENT', 'give at least one class');
  for (const c of classes)
    if (!Number.isInteger(c) || c < -1 || c >= count)
      throw new TesseraError('ERR_INVALID_ARGUMENT', `class ${c} is not a class id of this model (0..${count - 1}, or -1 for none)`);
}

/**
 * Samples the rows of one forward pass. `logits` [rows·n, V] with rows = B
 * (or 2B under CFG: conditional rows first); slot j of image b uses RNG
 * (seed + b, step firstStep + j). `probs`, if given ([B·n, V]), receives the
 * processed distributions (speculative decoding's p).
 */
export class GuidedSampler {
  readonly guided: boolean;

  /**
   * `bias[b]`, if given, is added to every logits row of image b (both CFG
   * halves, so the guided logits u + s(c − u) gain exactly the bias).
   */
  constructor(readonly s: ResolvedSampling, readonly images: number, readonly vocabulary: number,
    readonly bias?: readonly (Float32Array | undefined)[]) {
    this.guided = s.cfg > 1;
  }

  get rows(): number { return this.guided ? 2 * this.images : this.images; }

  /** Tokens [B·n] (image-major) for slots j of every image; step(b, j) names the RNG step. */
  async draw(logits: Tensor, n: number, step: (j: number) => number, probs?: Tensor): Promise<Int32Array> {
    const B = this.images, V = this.vocabulary;
    const all = logits.data as Float32Array;
    const row = (r: number): Tensor => Tensor.from(all.subarray(r * V, (r + 1) * V), [1, V]);
    const out = new Int32Array(B * n);
    const p = probs?.data as Float32Array | undefined;
    for (let b = 0; b < B; b++) {
      const bias = this.bias?.[b];
      if (!bias) continue;
      for (const r0 of this.guided ? [b * n, (B + b) * n] : [b * n])
        for (let r = r0; r < r0 + n; r++) for (let v = 0; v < V; v++) all[r * V + v] += bias[v]!;
    }
    for (let b = 0; b < B; b++)
      for (let j = 0; j < n; j++) {
        const probRow = p ? Tensor.from(p.subarray((b * n + j) * V, (b * n + j + 1) * V), [1, V]) : undefined;
        const tok = await sample({
          logits: row(b * n + j), uncond: this.guided ? row((B + b) * n + j) : undefined, cfgScale: this.s.cfg,
          temperature: this.s.temperature, topK: this.s.topK, topP: this.s.topP,
          seed: this.s.seed + b, step: step(j), probs: probRow,
        });
        out[b * n + j] = (tok.data as Int32Array)[0]!;
        tok.dispose();
      }
    return out;
  }

  /** Inputs for every row from per-image tokens [B·n]: the null-class half is fed the same tokens. */
  feed(tokens: Int32Array): Int32Array {
    if (!this.guided) return tokens;
    const both = new Int32Array(2 * tokens.length);
    both.set(tokens);
    both.set(tokens, tokens.length);
    return both;
  }

  /** Slot-0 class ids for every row. */
  classRows(classes: readonly number[]): number[] {
    return this.guided ? [...classes, ...classes.map(() => -1)] : [...classes];
  }
}

/** Runs slot 0 (the class) and returns its logits [rows, V]. */
export async function prefill(model: LlamaGenGpt, state: GptState, sampler: GuidedSampler, classes: readonly number[]): Promise<Tensor> {
  const x = await model.classEmbeddings(sampler.classRows(classes));
  return model.forward(state, x, 1);
}

export function emptyStats(tokens: number): DecodeStats {
  return {
    forwardPasses: 0, tokens, numDrafts: 0, numDraftTokens: 0, numAcceptedTokens: 0,
    acceptanceRate: 0, meanAcceptanceLength: 1, tokensPerPass: 0,
  };
}

export function finishStats(s: DecodeStats): DecodeStats {
  s.acceptanceRate = s.numDraftTokens > 0 ? s.numAcceptedTokens / s.numDraftTokens : 0;
  s.meanAcceptanceLength = s.numDrafts > 0 ? 1 + s.numAcceptedTokens / s.numDrafts : 1;
  s.tokensPerPass = s.forwardPasses > 0 ? s.tokens / s.forwardPasses : 0;
  return s;
}

export interface Generated {
  /** tokens[b]: image b's G² token ids in raster order. */
  tokens: number[][];
  stats: DecodeStats;
}

/**
 * Plain autoregressive decoding: G² passes (the class slot, then G² − 1
 * tokens). After the prefill the whole loop runs natively (LlamaGenGpt.decode):
 * the same draws as GuidedSampler.draw per step (test/llamagen.test.ts
 * compares it with that loop token for token).
 */
export async function generateAr(model: LlamaGenGpt, options: GenerateOptions): Promise<Generated> {
  const { classes, grid } = options;
  checkClasses(classes, model.config.classes);
  const s = resolveSampling(options, model.config.vocabulary);
  const B = classes.length, N = grid * grid, V = model.config.vocabulary;
  const sampler = new GuidedSampler(s, B, V, options.logitBias);
  const state = model.newState(sampler.rows, grid);
  const stats = emptyStats(N);
  let bias: Float32Array | undefined;
  if (options.logitBias?.some((b) => b !== undefined)) {
    bias = new Float32Array(B * V);
    options.logitBias.forEach((b, i) => {
      if (b === undefined || i >= B) return;
      if (b.length !== V) throw new TesseraError('ERR_SHAPE', `logitBias[${i}] must hold ${V} entries, got ${b.length}`);
      bias!.set(b, i * V);
    });
  }
  // With a cfg interval, the guided tokens run first; the rest continue from
  // the same caches with scale 1 (u + 1·(c − u): the conditional logits).
  const guidedN = sampler.guided ? guidedTokenCount(options.cfgInterval, N) : N;
  const tokens = new Int32Array(B * N);
  try {
    let logits = await prefill(model, state, sampler, classes);
    for (const [first, steps, cfg] of [[0, guidedN, s.cfg], [guidedN, N - guidedN, 1]] as const) {
      if (steps === 0) continue;
      try {
        if (first > 0) {  // feed the last guided token: its logits start the unguided part
          const last = Int32Array.from(classes, (_, b) => tokens[b * N + first - 1]!);
          const x = await model.tokenEmbeddings(sampler.feed(last));
          logits.dispose();
          logits = await model.forward(state, x, 1);
          x.dispose();
        }
        const part = await model.decode(state, logits, {
          images: B, steps, cfg, temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed,
          firstStep: first, bias, onStep: options.onProgress && ((done) => options.onProgress!(first + done, N)),
        });
        for (let b = 0; b < B; b++) tokens.set(part.subarray(b * steps, (b + 1) * steps), b * N + first);
      } catch (e) {
        logits.dispose();
        throw e;
      }
    }
    logits.dispose();
    stats.forwardPasses = N;
  } finally {
    state.dispose();
  }
  return { tokens: classes.map((_, b) => Array.from(tokens.subarray(b * N, (b + 1) * N))), stats: finishStats(stats) };
}
