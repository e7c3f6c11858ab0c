// Steps several LlamaGen requests through one GPT forward per token. Rows
// are laid out request by request (each request's own [cond, uncond] rows,
// or cond rows alone when its cfg <= 1), so a request's logits are one
// contiguous block and its GuidedSampler draws exactly as generateAr does
// alone. Every GPT linear uses a packed weight, so rows never change kernel
// with the batch size; the server tests check tokens for equality.
//
// Speculative (SJD) requests run one per cohort through generateSjd: a
// shared cache moves every row by the smallest accepted count, which would
// change a request's tokens depending on its neighbours.
import { generateSjd } from '../decoding/sjd.js';
import {
  checkClasses, emptyStats, finishStats, GuidedSampler, resolveSampling,
  type DecodeStats, type Generated, type SamplingOptions,
} from '../models/llamagen/generate.js';
import type { LlamaGenGpt } from '../models/llamagen/gpt.js';
import { Tensor } from '../tensor.js';
import type { Settled } from './var-cohort.js';

export interface LlamaGenWork {
  classes: readonly number[];
  grid: number;
  sampling: SamplingOptions;
  decode: 'ar' | 'sjd';
  /** SJD tokens per pass. */
  window?: number;
  signal: AbortSignal;
  /** Tokens done of total; `stats` so far for SJD (acceptance). */
  onStep?: (done: number, total: number, stats?: Partial<DecodeStats>) => void;
}

interface Member { work: LlamaGenWork; sampler: GuidedSampler; tokens: Int32Array; slot: number; rowOffset: number }

/** Runs one SJD request; an abort ends it at the next pass. */
async function runSjd(model: LlamaGenGpt, w: LlamaGenWork): Promise<Settled<Generated>> {
  const N = w.grid * w.grid, window = w.window ?? 16;
  // Running acceptance for progress events (exact for one image): a pass
  // starting at token k verifies min(window, N − k) − 1 drafts and emits
  // one token more than it accepts.
  let prev = 0, passes = 0, drafts = 0, accepted = 0;
  try {
    const value = await generateSjd(model, {
      classes: w.classes, grid: w.grid, ...w.sampling, window,
      onProgress: (done, total) => {
        w.signal.throwIfAborted();
        if (prev > 0) {
          passes++;
          drafts += Math.min(window, N - (prev - 1)) - 1;
          accepted += done - prev - 1;
        }
        prev = done;
        w.onStep?.(done, total, { forwardPasses: passes + 1, numDraftTokens: drafts, numAcceptedTokens: accepted,
          acceptanceRate: drafts > 0 ? accepted / drafts : 0 });
      },
    });
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Runs `works` (all AR on one grid, or a single SJD request) as one cohort. */
export async function runLlamaGenCohort(model: LlamaGenGpt, works: readonly LlamaGenWork[],
  onStep?: (images: number, seconds: number) => void): Promise<Settled<Generated>[]> {
  if (works.length === 1 && works[0]!.decode === 'sjd') return [await runSjd(model, works[0]!)];
  const V = model.config.vocabulary, grid = works[0]!.grid, N = grid * grid;
  const results: Settled<Generated>[] = new Array(works.length);
  const members: Member[] = [];
  let rows = 0;
  works.forEach((work, slot) => {
    try {
      if (work.decode !== 'ar' || work.grid !== grid) throw new Error('internal: an AR cohort takes AR requests of one grid');
      checkClasses(work.classes, model.config.classes);
      const sampler = new GuidedSampler(resolveSampling(work.sampling, V), work.classes.length, V);
      members.push({ work, sampler, tokens: new Int32Array(work.classes.length * N), slot, rowOffset: rows });
      rows += sampler.rows;
    } catch (error) {
      results[slot] = { ok: false, error };
    }
  });
  if (members.length === 0) return results;
  const images = members.reduce((a, m) => a + m.sampler.images, 0);
  const state = model.newState(rows, grid);
  try {
    let t0 = performance.now();
    let logits = await model.forward(state, await model.classEmbeddings(members.flatMap((m) => m.sampler.classRows(m.work.classes))), 1);
    for (let t = 0; t < N; t++) {
      onStep?.(images, (performance.now() - t0) / 1000);
      const all = logits.data as Float32Array;
      const feed = new Int32Array(rows);
      for (const m of members) {
        if (results[m.slot]) continue;  // cancelled: its rows ride along, fed token 0, until the cohort ends
        if (m.work.signal.aborted) { results[m.slot] = { ok: false, error: m.work.signal.reason }; continue; }
        const view = Tensor.from(all.subarray(m.rowOffset * V, (m.rowOffset + m.sampler.rows) * V), [m.sampler.rows, V]);
        let picked: Awaited<ReturnType<GuidedSampler['draw']>>;
        try {
          picked = await m.sampler.draw(view, 1, () => t);
        } catch (error) {
          results[m.slot] = { ok: false, error };  // its own settings failed: it rides along like a cancelled one
          continue;
        }
        const B = m.sampler.images;
        for (let b = 0; b < B; b++) m.tokens[b * N + t] = picked[b]!;
        feed.set(m.sampler.feed(picked), m.rowOffset);
        m.work.onStep?.(t + 1, N);
      }
      logits.dispose();
      if (t === N - 1 || members.every((m) => results[m.slot])) break;
      t0 = performance.now();
      logits = await model.forward(state, await model.tokenEmbeddings(feed), 1);
    }
    for (const m of members) {
      if (results[m.slot]) continue;
      const stats = emptyStats(N);
      stats.forwardPasses = N;
      const B = m.sampler.images;
      results[m.slot] = { ok: true, value: { tokens: Array.from({ length: B }, (_, b) => Array.from(m.tokens.subarray(b * N, (b + 1) * N))), stats: finishStats(stats) } };
    }
  } catch (error) {
    for (const m of members) if (!results[m.slot]) results[m.slot] = { ok: false, error };
  } finally {
    state.dispose();
  }
  return results;
}
