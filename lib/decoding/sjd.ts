// Speculative Jacobi decoding (SJD, arXiv 2410.01699; spec section 2):
// training-free, lossless in distribution. Each pass feeds the last emitted
// token x0 and w − 1 drafts at their true slots, samples y_j ~ p_j from every
// output, and verifies draft i with u < min(1, p_{i−1}(x_i) / q_i(x_i)); the
// first rejection resamples from norm(max(0, p_{i−1} − q_i)); if all pass,
// y_{w−1} is a bonus token. The cache is truncated back to x0 plus the
// accepted drafts. Unaccepted outputs y (with q = their p) become the next
// drafts; the rest are uniform-random tokens with one-hot q (acceptance
// p(x), residual p without x: still exactly p).
//
// A batch moves together by the smallest accepted count m: an image that
// accepted more emits its accepted draft m+1 as its next token (it is a
// valid sample of that position), so every image emits m + 1 tokens.
//
// Verification runs natively (lib/decoding/verify.ts); with `relax` it is
// LANTERN's relaxed acceptance over Jacobi drafts (lossy by design).
//
// Randomness is Philox-keyed per image (seed + b) on separate rows: row 0
// the sampler's draws (step = pass·4096 + slot), row 1 acceptance uniforms,
// row 2 residual draws, row 3 random drafts.
import { TesseraError } from '../errors.js';
import type { LlamaGenGpt } from '../models/llamagen/gpt.js';
import {
  checkClasses, emptyStats, finishStats, GuidedSampler, prefill, resolveSampling,
  type GenerateOptions, type Generated,
} from '../models/llamagen/generate.js';
import { philoxUniform } from '../ops/sampling.js';
import { Tensor } from '../tensor.js';
import { emitVerified, verifyDraft, type Relaxation } from './verify.js';

export interface SjdOptions extends GenerateOptions {
  /** Tokens per pass, x0 included (default 16; 1 is plain decoding). */
  window?: number;
  /** LANTERN's relaxed acceptance (lossy); absent: exact speculative sampling. */
  relax?: Relaxation;
  /**
   * Which tokens are decoded in Jacobi windows. 'full' (default): every pass
   * after the prefill takes min(window, tokens left + 1). 'official': the
   * official SJD LlamaGen script's schedule (test_llamagen.py:
   * jacobi_loop_interval_l = 1, _r = G² − window − 2; the rule in
   * jacobi_iteration_lumina_mgpt.py _sample): the window of pass t is
   * officialSjdWindow of the token count before pass t − 1 (the official
   * loop computes it from a cur_len one pass old), one token for pass 1.
   * Tokens 1 and 2 and the last ~window + 1 tokens are then plain decoding.
   * Same distribution, more passes.
   */
  schedule?: 'full' | 'official';
}

/**
 * The official rule from cur_len n (tokens emitted, token 0 included) of N:
 * min(window, N − window − 1 − n) while 2 ≤ n < N − window − 1, else 1.
 */
export function officialSjdWindow(window: number, n: number, N: number): number {
  const end = N - window - 1;
  return n >= 2 && n < end ? Math.min(window, end - n) : 1;
}

/** Refuses a CFG interval: the speculative loops guide every token (the official SJD ignores cfg_interval too). */
export function refuseCfgInterval(cfgInterval: number | undefined, mode: string): void {
  if (cfgInterval !== undefined && cfgInterval !== -1)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `cfgInterval ${cfgInterval} is not supported by ${mode} decoding (every token is guided); leave it unset or -1, or decode with generateAr`);
}

export const STEP_STRIDE = 4096;
const ROW_ACCEPT = 1, ROW_DRAFT = 3;

/** A draft token and the distribution it came from (undefined: one-hot at the token). */
interface Draft { token: number; q?: Float32Array }

export async function generateSjd(model: LlamaGenGpt, options: SjdOptions): Promise<Generated> {
  const { classes, grid } = options;
  checkClasses(classes, model.config.classes);
  const s = resolveSampling(options, model.config.vocabulary);
  const window = options.window ?? 16;
  if (!Number.isInteger(window) || window < 1 || window >= STEP_STRIDE)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `window must be an integer in 1..${STEP_STRIDE - 1}, got ${window}`);
  const schedule = options.schedule ?? 'full';
  if (schedule !== 'full' && schedule !== 'official')
    throw new TesseraError('ERR_INVALID_ARGUMENT', `schedule must be 'full' or 'official', got ${String(schedule)}`);
  refuseCfgInterval(options.cfgInterval, 'SJD');
  const V = model.config.vocabulary, B = classes.length, N = grid * grid;
  const sampler = new GuidedSampler(s, B, V, options.logitBias);
  const state = model.newState(sampler.rows, grid);
  const stats = emptyStats(N);
  const out: number[][] = classes.map(() => []);
  const drafts: Draft[][] = classes.map(() => []);
  try {
    const first = await prefill(model, state, sampler, classes);
    const t0 = await sampler.draw(first, 1, () => 0);
    first.dispose();
    stats.forwardPasses++;
    for (let b = 0; b < B; b++) out[b]!.push(t0[b]!);
    options.onProgress?.(1, N);

    const emitted = [1];  // tokens emitted after pass t (0: the prefill)
    for (let pass = 1; out[0]!.length < N; pass++) {
      const k = out[0]!.length - 1;  // x0 = token k, not yet cached
      const w = Math.min(N - k, schedule === 'full' ? window : pass === 1 ? 1 : officialSjdWindow(window, emitted[pass - 2]!, N));
      const L = w - 1;
      const step = pass * STEP_STRIDE;
      // Top up each image's drafts for tokens k+1..k+w−1 with uniform-random tokens.
      for (let b = 0; b < B; b++) {
        const d = drafts[b]!;
        d.length = Math.min(d.length, L);
        while (d.length < L)
          d.push({ token: Math.min(V - 1, Math.floor(philoxUniform(s.seed + b, ROW_DRAFT, step + d.length) * V)) });
      }
      const feed = new Int32Array(B * w), tokens = new Int32Array(B * L), q = new Float32Array(B * L * V);
      for (let b = 0; b < B; b++) {
        feed[b * w] = out[b]![k]!;
        drafts[b]!.forEach((d, i) => {
          feed[b * w + 1 + i] = d.token;
          tokens[b * L + i] = d.token;
          if (d.q) q.set(d.q, (b * L + i) * V); else q[(b * L + i) * V + d.token] = 1;
        });
      }
      const logits = await model.forward(state, await model.tokenEmbeddings(sampler.feed(feed)), w);
      stats.forwardPasses++;
      const probs = Tensor.empty([B * w, V]);
      const y = await sampler.draw(logits, w, (j) => step + j, probs);
      logits.dispose();
      const p = probs.data as Float32Array;
      // Draft i (token k+1+i) is verified against p_i, the output of slot i.
      const verdict = await verifyDraft({
        images: B, length: L, vocabulary: V, p, pRowStride: w, q, drafts: tokens, relax: options.relax,
        seed: s.seed, rngRow: ROW_ACCEPT, step: step + 1,
      });
      const m = emitVerified(out, tokens, L, verdict, (b) => y[b * w + w - 1]!, N, stats);
      // Keep x0 and the m accepted drafts in the cache (slots up to 1 + k + m).
      await state.truncate(2 + k + m);
      // Outputs for tokens beyond the new x0 become the next drafts (q = their p).
      for (let b = 0; b < B; b++)
        drafts[b] = Array.from({ length: w - 1 - m }, (_, i) => {
          const j = m + 1 + i;
          return { token: y[b * w + j]!, q: p.slice((b * w + j) * V, (b * w + j + 1) * V) };
        });
      probs.dispose();
      emitted.push(out[0]!.length);
      options.onProgress?.(out[0]!.length, N);
    }
  } finally {
    state.dispose();
  }
  return { tokens: out, stats: finishStats(stats) };
}
