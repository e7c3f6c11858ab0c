// VAR's more_smooth option (spec/var.md section 3.4, official
// gumbel_softmax_with_rng): instead of the sampled code, a scale's latent is
// the soft mix h = softmax((x·(1+ratio) + G)/τ) @ E over the entries that
// top-k/top-p kept, τ = max(0.27·(1 − 0.95·ratio), 0.005), G Gumbel noise.
// The noise comes from the sampler's Philox generator on its own counter
// range, so one seed still gives one image; the official code draws it from
// the torch generator instead (the distributions agree, the draws cannot).
import { matmul } from '../../ops/gemm.js';
import { philoxUniform } from '../../ops/sampling.js';
import { Tensor } from '../../tensor.js';

/** RNG rows at and above this hold the Gumbel draws: row = GUMBEL_ROWS + t·V + v (sampling uses rows < L). */
export const GUMBEL_ROWS = 2 ** 32;

/** The Gumbel temperature at ratio = si/(SN−1) ("refer to mask-git" in the official code). */
export function gumbelTau(ratio: number): number {
  return Math.max(0.27 * (1 - ratio * 0.95), 0.005);
}

/** −log(E), E = −log(1 − U) ~ Exp(1), from philoxUniform(seed, row, step). */
export function gumbel(seed: number, row: number, step: number): number {
  const e = -Math.log1p(-philoxUniform(seed, row, step));
  return -Math.log(Math.max(e, Number.MIN_VALUE));  // U = 0 gives E = 0: the limit is a very large draw
}

export interface SmoothRows {
  /** Guided, temperature-divided logits x [n, V] (the sampler's step 1). */
  logits: Float64Array;
  /** The sampler's kept probabilities [n, V]; 0 marks an entry top-k/top-p dropped. */
  probs: Float32Array;
  /** Codebook [V, Cvae]. */
  codebook: Tensor;
  n: number;
  ratio: number;
  seed: number;
  step: number;
}

/** The soft latent rows [n, Cvae] (token-major) for one image at one scale. */
export async function smoothLatent(r: SmoothRows): Promise<Tensor> {
  const V = r.codebook.shape[0]!;
  const tau = gumbelTau(r.ratio), gain = 1 + r.ratio;
  const y = Tensor.empty([r.n, V]);
  const yd = y.data as Float32Array;
  const z = new Float64Array(V);
  for (let t = 0; t < r.n; t++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      const i = t * V + v;
      // Dropped entries are −inf in the official code: they get no weight (and no draw).
      z[v] = r.probs[i]! > 0 ? (r.logits[i]! * gain + gumbel(r.seed, GUMBEL_ROWS + i, r.step)) / tau : -Infinity;
      if (z[v]! > max) max = z[v]!;
    }
    let sum = 0;
    for (let v = 0; v < V; v++) { z[v] = Math.exp(z[v]! - max); sum += z[v]!; }
    for (let v = 0; v < V; v++) yd[t * V + v] = z[v]! / sum;
  }
  const h = await matmul({ a: y, b: r.codebook });
  y.dispose();
  return h;
}
