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

export interface SjdOptions extends GenerateOptions {
  /** Tokens per pass, x0 included (default 16; 1 is plain decoding). */
  window?: number;
}

const STEP_STRIDE = 4096;
const ROW_ACCEPT = 1, ROW_RESIDUAL = 2, ROW_DRAFT = 3;

/** A draft token and the distribution it came from (undefined: one-hot at the token). */
interface Draft { token: number; q?: Float32Array }

/** Index of the first cumulative weight above u·Σw (the last positive one if rounding leaves none). */
function drawFrom(w: Float64Array, u: number): number {
  let total = 0;
  for (const x of w) total += x;
  let acc = 0, last = -1;
  for (let i = 0; i < w.length; i++) {
    if (w[i]! <= 0) continue;
    acc += w[i]!;
    last = i;
    if (acc > u * total) return i;
  }
  return last;
}

export async function generateSjd(model: LlamaGenGpt, options: SjdOptions): Promise<Generated> {
  const { classes, grid } = options;
  checkClasses(classes, model.config.classes);
  const s = resolveSampling(options, model.config.vocabulary);
  const window = options.window ?? 16;
  if (!Number.isInteger(window) || window < 1 || window >= STEP_STRIDE)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `window must be an integer in 1..${STEP_STRIDE - 1}, got ${window}`);
  const V = model.config.vocabulary, B = classes.length, N = grid * grid;
  const sampler = new GuidedSampler(s, B, V);
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

    for (let pass = 1; out[0]!.length < N; pass++) {
      const k = out[0]!.length - 1;  // x0 = token k, not yet cached
      const w = Math.min(window, N - k);
      const step = pass * STEP_STRIDE;
      // Top up each image's drafts for tokens k+1..k+w−1 with uniform-random tokens.
      for (let b = 0; b < B; b++) {
        const d = drafts[b]!;
        d.length = Math.min(d.length, w - 1);
        while (d.length < w - 1)
          d.push({ token: Math.min(V - 1, Math.floor(philoxUniform(s.seed + b, ROW_DRAFT, step + d.length) * V)) });
      }
      const feed = new Int32Array(B * w);
      for (let b = 0; b < B; b++) {
        feed[b * w] = out[b]![k]!;
        drafts[b]!.forEach((d, i) => { feed[b * w + 1 + i] = d.token; });
      }
      const logits = await model.forward(state, await model.tokenEmbeddings(sampler.feed(feed)), w);
      stats.forwardPasses++;
      const probs = Tensor.empty([B * w, V]);
      const y = await sampler.draw(logits, w, (j) => step + j, probs);
      logits.dispose();
      const p = probs.data as Float32Array;
      const pRow = (b: number, j: number): Float32Array => p.subarray((b * w + j) * V, (b * w + j + 1) * V);

      // Verify: accepted[b] drafts, and the token that follows them.
      const accepted: number[] = [], next: number[] = [];
      for (let b = 0; b < B; b++) {
        let a = 0, tok = -1;
        for (let i = 1; i < w; i++) {
          const { token: x, q } = drafts[b]![i - 1]!;
          const pi = pRow(b, i - 1);
          const qx = q ? q[x]! : 1;
          const u = philoxUniform(s.seed + b, ROW_ACCEPT, step + i);
          if (u < Math.min(1, pi[x]! / qx)) { a++; continue; }
          const r = new Float64Array(V);
          for (let v = 0; v < V; v++) r[v] = Math.max(0, pi[v]! - (q ? q[v]! : v === x ? 1 : 0));
          tok = drawFrom(r, philoxUniform(s.seed + b, ROW_RESIDUAL, step + i));
          if (tok < 0) tok = drawFrom(Float64Array.from(pi), philoxUniform(s.seed + b, ROW_RESIDUAL, step + i));
          break;
        }
        if (tok < 0 && k + w < N) tok = y[b * w + w - 1]!;  // all accepted: the bonus token
        accepted.push(a);
        next.push(tok);
      }
      const m = Math.min(...accepted);
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < m; i++) out[b]!.push(drafts[b]![i]!.token);
        // An image past m emits its accepted draft m+1; the others their residual/bonus token.
        const after = accepted[b]! > m ? drafts[b]![m]!.token : next[b]!;
        if (k + m + 1 < N) out[b]!.push(after);
        stats.numAcceptedTokens += m + (accepted[b]! > m ? 1 : 0);
      }
      if (w > 1) { stats.numDrafts += B; stats.numDraftTokens += B * (w - 1); }
      // Keep x0 and the m accepted drafts in the cache (slots up to 1 + k + m).
      await state.truncate(2 + k + m);
      // Outputs for tokens beyond the new x0 become the next drafts (q = their p).
      for (let b = 0; b < B; b++)
        drafts[b] = Array.from({ length: w - 1 - m }, (_, i) => {
          const j = m + 1 + i;
          return { token: y[b * w + j]!, q: Float32Array.from(pRow(b, j)) };
        });
      probs.dispose();
      options.onProgress?.(out[0]!.length, N);
    }
  } finally {
    state.dispose();
  }
  return { tokens: out, stats: finishStats(stats) };
}
