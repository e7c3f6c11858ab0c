// Standard speculative sampling with a smaller LlamaGen as the drafter
// (Leviathan et al.; spec section 8). Each round the drafter proposes
// L = window − 1 tokens autoregressively from its own processed distribution
// q (same CFG, temperature, top-k/top-p and logit bias as the target), the
// target scores x0 and the L drafts in one pass, and verify_draft accepts
// draft i while u < min(1, p_i(x)/q_i(x)), replacing the first rejection from
// norm(max(0, p − q)); if all pass, the target's sample after the last draft
// is the bonus token. Lossless: the tokens follow the target's distribution.
// With `relax` the acceptance is LANTERN's (lossy by design).
//
// Caches: the target keeps x0 and the accepted drafts (truncate); the drafter
// keeps whatever prefix of them it has cached and, next round, first feeds
// the emitted tokens it has not seen, in one pass.
//
// Randomness per image (key seed + b): the target samples on Philox row 0 at
// step round·4096 + slot, the drafter on row 0 at round·4096 + 2048 + i, the
// acceptance on rows 1 and 2 (lib/decoding/sjd.ts uses the same layout).
import { TesseraError } from '../errors.js';
import type { LlamaGenGpt } from '../models/llamagen/gpt.js';
import {
  checkClasses, emptyStats, finishStats, GuidedSampler, prefill, resolveSampling,
  type GenerateOptions, type Generated,
} from '../models/llamagen/generate.js';
import { Tensor } from '../tensor.js';
import { refuseCfgInterval, STEP_STRIDE } from './sjd.js';
import { emitVerified, verifyDraft, type Relaxation } from './verify.js';

export interface DraftModelOptions extends GenerateOptions {
  /** Tokens per target pass, x0 included: window − 1 drafts (default 5). */
  window?: number;
  relax?: Relaxation;
}

const ROW_ACCEPT = 1, DRAFT_STEPS = STEP_STRIDE / 2;

export async function generateWithDraft(model: LlamaGenGpt, drafter: LlamaGenGpt, options: DraftModelOptions): Promise<Generated> {
  const { classes, grid } = options;
  checkClasses(classes, model.config.classes);
  const V = model.config.vocabulary, B = classes.length, N = grid * grid;
  if (drafter.config.vocabulary !== V || drafter.config.classes !== model.config.classes)
    throw new TesseraError('ERR_INVALID_ARGUMENT',
      `the draft model predicts ${drafter.config.vocabulary} tokens for ${drafter.config.classes} classes, the target ${V} for ${model.config.classes}`);
  const s = resolveSampling(options, V);
  refuseCfgInterval(options.cfgInterval, 'draft-model');
  const window = options.window ?? 5;
  if (!Number.isInteger(window) || window < 1 || window > DRAFT_STEPS)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `window must be an integer in 1..${DRAFT_STEPS}, got ${window}`);
  const sampler = new GuidedSampler(s, B, V, options.logitBias);
  const state = model.newState(sampler.rows, grid), dstate = drafter.newState(sampler.rows, grid);
  const stats = { ...emptyStats(N), draftForwardPasses: 0 };
  const out: number[][] = classes.map(() => []);
  try {
    const first = await prefill(model, state, sampler, classes);
    const t0 = await sampler.draw(first, 1, () => 0);
    first.dispose();
    (await prefill(drafter, dstate, sampler, classes)).dispose();
    stats.forwardPasses++;
    stats.draftForwardPasses++;
    for (let b = 0; b < B; b++) out[b]!.push(t0[b]!);
    options.onProgress?.(1, N);

    for (let round = 1; out[0]!.length < N; round++) {
      const k = out[0]!.length - 1;  // x0 = token k, in neither cache yet
      const w = Math.min(window, N - k), L = w - 1;
      const step = round * STEP_STRIDE;
      const drafts = new Int32Array(B * L), q = new Float32Array(B * L * V);
      if (L > 0) {
        // Feed the drafter every emitted token it lacks (slot t + 1 holds token t), then one draft per pass.
        let feed: Int32Array = new Int32Array(B * (k + 2 - dstate.length));
        let n = feed.length / B;
        for (let b = 0; b < B; b++) for (let i = 0; i < n; i++) feed[b * n + i] = out[b]![dstate.length - 1 + i]!;
        for (let i = 0; i < L; i++) {
          const logits = await drafter.forward(dstate, await drafter.tokenEmbeddings(sampler.feed(feed)), n);
          stats.draftForwardPasses++;
          const last = lastSlots(logits, sampler.rows, n, V);
          logits.dispose();
          const qi = Tensor.empty([B, V]);
          const d = await sampler.draw(last, 1, () => step + DRAFT_STEPS + i, qi);
          last.dispose();
          for (let b = 0; b < B; b++) {
            drafts[b * L + i] = d[b]!;
            q.set((qi.data as Float32Array).subarray(b * V, (b + 1) * V), (b * L + i) * V);
          }
          qi.dispose();
          feed = d;
          n = 1;
        }
      }
      const feed = new Int32Array(B * w);
      for (let b = 0; b < B; b++) {
        feed[b * w] = out[b]![k]!;
        feed.set(drafts.subarray(b * L, (b + 1) * L), b * w + 1);
      }
      const logits = await model.forward(state, await model.tokenEmbeddings(sampler.feed(feed)), w);
      stats.forwardPasses++;
      const probs = Tensor.empty([B * w, V]);
      const y = await sampler.draw(logits, w, (j) => step + j, probs);
      logits.dispose();
      const verdict = await verifyDraft({
        images: B, length: L, vocabulary: V, p: probs.data as Float32Array, pRowStride: w, q, drafts, relax: options.relax,
        seed: s.seed, rngRow: ROW_ACCEPT, step: step + 1,
      });
      probs.dispose();
      const m = emitVerified(out, drafts, L, verdict, (b) => y[b * w + w - 1]!, N, stats);
      await state.truncate(2 + k + m);
      await dstate.truncate(Math.min(dstate.length, 2 + k + m));
      options.onProgress?.(out[0]!.length, N);
    }
  } finally {
    state.dispose();
    dstate.dispose();
  }
  return { tokens: out, stats: finishStats(stats) };
}

/** The last of n slots of every row: logits [rows·n, V] → [rows, V]. */
function lastSlots(logits: Tensor, rows: number, n: number, V: number): Tensor {
  if (n === 1) return Tensor.from((logits.data as Float32Array).slice(), [rows, V]);
  const src = logits.data as Float32Array, dst = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) dst.set(src.subarray((r * n + n - 1) * V, (r * n + n) * V), r * V);
  return Tensor.from(dst, [rows, V]);
}
