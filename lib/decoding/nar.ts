// Next-neighbour decoding (NAR, spec section 5): one anti-diagonal
// d = r + c per pass, 2G − 1 passes for a G×G grid instead of G². Needs a
// checkpoint with NAR's vertical head (LlamaGenGpt.forwardNar): the
// horizontal head (norm/output) of cell (r, c) predicts (r, c+1), the
// vertical head (block n_layer, medusa_norm/medusa_output) predicts (r+1, c).
// - Pass 0 feeds the class: (0, 0) comes from the mean of both heads' logits.
// - Pass 1 + d feeds diagonal d in row order (KV slots appended in that
//   order, RoPE rows = raster slots; unmasked attention over the cache is the
//   "distance ≤ d plus the condition" mask) and yields diagonal d + 1: (0, d+1)
//   from the right head of (0, d), (d+1, 0) from the down head of (d, 0), and
//   interior cells from the mean of the right logits of the left cell and the
//   down logits of the cell above.
// Means are over raw logits of every CFG row, so guidance, top-k/top-p,
// temperature and the watermark bias then apply as in plain decoding; cell
// (r, c) of image b draws from RNG (seed + b, step r·G + c).
import { TesseraError } from '../errors.js';
import {
  checkClasses, emptyStats, finishStats, GuidedSampler, resolveSampling,
  type GenerateOptions, type Generated,
} from '../models/llamagen/generate.js';
import type { LlamaGenGpt } from '../models/llamagen/gpt.js';
import { Tensor } from '../tensor.js';

export const NAR_HEAD_KEYS = 'layers.{n_layer}.*, medusa_norm.weight, medusa_output.weight';

export async function generateNar(model: LlamaGenGpt, options: GenerateOptions): Promise<Generated> {
  if (!model.hasVerticalHead)
    throw new TesseraError('ERR_INVALID_ARGUMENT',
      `--decode nar needs a NAR checkpoint with the vertical head (${NAR_HEAD_KEYS}); this one has only the horizontal head`);
  const { classes, grid: G } = options;
  checkClasses(classes, model.config.classes);
  const s = resolveSampling(options, model.config.vocabulary);
  const V = model.config.vocabulary, B = classes.length, N = G * G;
  const sampler = new GuidedSampler(s, B, V, options.logitBias);
  const rows = sampler.rows;
  const state = model.newState(rows, G);
  const stats = emptyStats(N);
  const tokens = new Int32Array(B * N);
  let done = 0;
  const emit = (cells: readonly [number, number][], picked: Int32Array): void => {
    const m = cells.length;
    for (let b = 0; b < B; b++) cells.forEach(([r, c], j) => { tokens[b * N + r * G + c] = picked[b * m + j]!; });
    done += m;
    options.onProgress?.(done, N);
  };
  const diagonal = (d: number): [number, number][] => {
    const cells: [number, number][] = [];
    for (let r = Math.max(0, d - G + 1); r <= Math.min(d, G - 1); r++) cells.push([r, d - r]);
    return cells;
  };
  try {
    // Pass 0: the class slot; (0, 0) from the mean of both heads.
    {
      const { right, down } = await model.forwardNar(state, await model.classEmbeddings(sampler.classRows(classes)), Int32Array.of(0));
      const a = right.data as Float32Array, z = down.data as Float32Array;
      for (let i = 0; i < a.length; i++) a[i] = (a[i]! + z[i]!) / 2;
      down.dispose();
      const picked = await sampler.draw(right, 1, () => 0);
      right.dispose();
      stats.forwardPasses++;
      emit([[0, 0]], picked);
    }
    for (let d = 0; d + 1 <= 2 * G - 2; d++) {
      const fed = diagonal(d), n = fed.length;
      const ids = new Int32Array(B * n);
      for (let b = 0; b < B; b++) fed.forEach(([r, c], j) => { ids[b * n + j] = tokens[b * N + r * G + c]!; });
      const slots = Int32Array.from(fed, ([r, c]) => 1 + r * G + c);
      const { right, down } = await model.forwardNar(state, await model.tokenEmbeddings(sampler.feed(ids)), slots);
      stats.forwardPasses++;
      const R = right.data as Float32Array, D = down.data as Float32Array;
      const next = diagonal(d + 1), m = next.length;
      const at = (r: number): number => r - fed[0]![0];  // index in `fed` of the cell in row r
      const logits = Tensor.empty([rows * m, V]);
      const L = logits.data as Float32Array;
      for (let row = 0; row < rows; row++)
        next.forEach(([r, c], j) => {
          const o = (row * m + j) * V;
          const left = c >= 1 ? (row * n + at(r)) * V : -1;       // (r, c−1) is on diagonal d
          const up = r >= 1 ? (row * n + at(r - 1)) * V : -1;     // (r−1, c) is on diagonal d
          if (left >= 0 && up >= 0) for (let v = 0; v < V; v++) L[o + v] = (R[left + v]! + D[up + v]!) / 2;
          else if (left >= 0) L.set(R.subarray(left, left + V), o);
          else L.set(D.subarray(up, up + V), o);
        });
      right.dispose(); down.dispose();
      const picked = await sampler.draw(logits, m, (j) => next[j]![0] * G + next[j]![1]);
      logits.dispose();
      emit(next, picked);
    }
  } finally {
    state.dispose();
  }
  return { tokens: classes.map((_, b) => Array.from(tokens.subarray(b * N, (b + 1) * N))), stats: finishStats(stats) };
}
