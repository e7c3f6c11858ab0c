// Class-conditional next-scale generation (spec/var.md section 3,
// autoregressive_infer_cfg): 2B rows (conditional, then null class) through
// the transformer per scale with KV caches, CFG with the official linear
// ramp, top-k/top-p/temperature sampling (or more_smooth's soft latents),
// residual f_hat updates, decode. Zero-shot editing (edit.ts) runs the same
// loop with source tokens teacher-forced where its mask keeps them.
import { TesseraError } from '../../errors.js';
import { native } from '../../native.js';
import { cfgCombine, sample } from '../../ops/sampling.js';
import { Tensor } from '../../tensor.js';
import { profileStage, timed, varProfile } from './profile.js';
import { smoothLatent } from './smooth.js';
import { disposeConditioning, VarCache, type VarTransformer } from './transformer.js';
import type { Vqvae } from './vqvae.js';

export interface GenerateOptions {
  /** One class id per image; < 0 means the null class (unconditional). */
  classes: readonly number[];
  /** Guidance at the last scale; scale si uses cfg·si/(SN−1). Default 1.5. */
  cfg?: number;
  /** Keep the k largest logits (0 = off; 1 = greedy). Default 900. */
  topK?: number;
  /** Nucleus mass (0 or 1 = off). Default 0.96. */
  topP?: number;
  /** Logit divisor before filtering. Default 1. */
  temperature?: number;
  /** Image b of the batch draws from seed + b, so a batch equals its seeds run one by one. Default 0. */
  seed?: number;
  /**
   * The official more_smooth (visualisation only, not for FID): each scale's
   * latent is a Gumbel-softmax mix of the codebook over the kept entries
   * (smooth.ts). Tokens are still sampled and reported. Default false.
   */
  moreSmooth?: boolean;
  /** Called after each scale (progress). */
  onScale?: (si: number, scales: number) => void;
}

export interface Generated {
  /** [B, 3, H, W] float32 in [0, 1]. */
  images: Tensor;
  /** tokens[b][si]: image b's token ids at scale si, row-major. */
  tokens: number[][][];
}

/**
 * Source tokens to keep (zero-shot editing, spec section 3.8): per scale si,
 * ids[si] [B·pn²] (row-major per image) and keep[si] [pn²] (1 = keep). Kept
 * positions take the source code's embedding in place of the prediction
 * (h = gt·m + pred·(1−m)) before the Phi/f_hat update, so they reach the
 * next scale's input and the KV caches; reported tokens are the source ids there.
 */
export interface KeptTokens {
  ids: readonly Int32Array[];
  keep: readonly Uint8Array[];
}

export function checkGenerateOptions(o: GenerateOptions, classes: number): Required<Omit<GenerateOptions, 'onScale'>> {
  const r = {
    classes: o.classes, cfg: o.cfg ?? 1.5, topK: o.topK ?? 900, topP: o.topP ?? 0.96,
    temperature: o.temperature ?? 1, seed: o.seed ?? 0, moreSmooth: o.moreSmooth ?? false,
  };
  const bad = (m: string): never => { throw new TesseraError('ERR_INVALID_ARGUMENT', m); };
  if (r.classes.length === 0) bad('give at least one class');
  for (const c of r.classes) if (!Number.isInteger(c) || c >= classes) bad(`class ${c} is not a class id of this model (0..${classes - 1}, or -1 for none)`);
  if (!Number.isFinite(r.cfg) || r.cfg < 0) bad(`cfg must be a finite number >= 0, got ${r.cfg}`);
  if (!Number.isInteger(r.topK) || r.topK < 0) bad(`top-k must be an integer >= 0 (0 = off), got ${r.topK}`);
  if (!Number.isFinite(r.topP) || r.topP < 0 || r.topP > 1) bad(`top-p must be in [0, 1] (0 or 1 = off), got ${r.topP}`);
  if (!Number.isFinite(r.temperature) || r.temperature <= 0) bad(`temperature must be > 0, got ${r.temperature}`);
  if (!Number.isSafeInteger(r.seed) || r.seed < 0) bad(`seed must be a non-negative integer, got ${r.seed}`);
  return r;
}

export async function generate(vae: Vqvae, model: VarTransformer, options: GenerateOptions, kept?: KeptTokens): Promise<Generated> {
  const o = checkGenerateOptions(options, model.config.classes);
  const { schedule, vocabulary: V, latentChannels: Cvae } = model.config;
  const SN = schedule.length, B = o.classes.length, last = schedule[SN - 1]!;
  if (kept && (kept.ids.length !== SN || kept.keep.length !== SN))
    throw new TesseraError('ERR_SHAPE', `kept tokens need ${SN} scales, got ${kept.ids.length} ids and ${kept.keep.length} masks`);
  profileStage('s0');
  const cond = await timed('condition', () => model.condition(o.classes));
  const cache = new VarCache(model.config, 2 * B);
  const fHat = Tensor.zeros([B, Cvae, last, last]);
  const tokens: number[][][] = o.classes.map(() => []);
  try {
    let x = model.startTokens(cond);
    for (let si = 0; si < SN; si++) {
      const pn = schedule[si]!, n = pn * pn;
      profileStage(`s${si}`);
      const logits = await model.forwardScale(x, cond, cache);
      x.dispose();
      const ids = new Int32Array(B * n);
      const h = await timed('sampling', () => sampleScale(vae, logits, o, { si, SN, B, n, V, ids }));
      logits.dispose();
      if (kept) keepSource(vae, h, ids, kept.ids[si]!, kept.keep[si]!, Cvae, n);
      for (let b = 0; b < B; b++) tokens[b]!.push(Array.from(ids.subarray(b * n, (b + 1) * n)));
      (await timed('vq: phi + f_hat', () => vae.addScale(si, schedule, fHat, h))).dispose();
      h.dispose();
      options.onScale?.(si, SN);
      if (si === SN - 1) break;
      const next = await timed('vq: area resize', () => vae.nextInput(fHat, schedule[si + 1]!));
      x = await model.scaleInput(si + 1, next);
      next.dispose();
    }
    // The KV caches (2B rows × all tokens × C × 2 per block: 178 MB for d16 at
    // B = 1) are not needed by the decoder: free them, and hand the pool's
    // cached blocks back to the system, before the decoder's 256² maps (the
    // pool reuses blocks only of the same size class, so otherwise they would
    // sit idle under the decoder's peak).
    cache.dispose();
    native().hostPoolTrim();
    profileStage('decode');
    const images = await decodeEach(vae, fHat);
    const prof = varProfile();
    if (prof && process.env.TESSERA_VAR_PROFILE === '1') process.stderr.write(`${prof.report()}\n`);
    return { images, tokens };
  } finally {
    fHat.dispose();
    cache.dispose();
    disposeConditioning(cond);
    native().hostPoolTrim();  // the decoder's maps likewise, before a next generation's caches
  }
}

export /**
 * (decode(f_hat) + 1)/2 one image at a time: the decoder's 256² activations
 * (~40 MB per 160-channel map per image) then stay those of one image, so a
 * batch of 8 peaks gigabytes lower at the same speed.
 */
async function decodeEach(vae: Vqvae, fHat: Tensor): Promise<Tensor> {
  const [B, C, h, w] = fHat.shape as [number, number, number, number];
  const src = fHat.data as Float32Array;
  let out: Tensor | undefined;
  for (let b = 0; b < B; b++) {
    const img = await vae.decode(Tensor.from(src.subarray(b * C * h * w, (b + 1) * C * h * w), [1, C, h, w]));
    const [, , H, W] = img.shape as [number, number, number, number];
    out ??= Tensor.empty([B, 3, H, W]);
    const d = img.data as Float32Array, o = out.data as Float32Array;
    for (let i = 0; i < d.length; i++) o[b * d.length + i] = (d[i]! + 1) / 2;
    img.dispose();
  }
  return out!;
}

interface ScaleStep { si: number; SN: number; B: number; n: number; V: number; ids: Int32Array }

/**
 * Samples scale si's tokens into `ids` from logits [2B, n, V] (cond rows,
 * then uncond) and returns the latent h [B, Cvae, pn, pn]: the codes'
 * embeddings, or more_smooth's soft mix.
 */
export async function sampleScale(vae: Vqvae, logits: Tensor, o: ReturnType<typeof checkGenerateOptions>, s: ScaleStep): Promise<Tensor> {
  const { si, SN, B, n, V, ids } = s;
  const all = logits.data as Float32Array;
  const rows = (r: number): Tensor => Tensor.from(all.subarray(r * n * V, (r + 1) * n * V), [n, V]);
  const ratio = si / (SN - 1);
  // (1+t)·cond − t·uncond = uncond + (1+t)·(cond − uncond), t = cfg·ratio.
  const cfgScale = 1 + o.cfg * ratio;
  const pn = Math.round(Math.sqrt(n)), Cvae = vae.config.latentChannels;
  const soft = o.moreSmooth ? Tensor.empty([B, Cvae, pn, pn]) : undefined;
  for (let b = 0; b < B; b++) {
    const probs = soft ? Tensor.empty([n, V]) : undefined;
    const picked = await sample({
      logits: rows(b), uncond: rows(B + b), cfgScale, temperature: o.temperature, topK: o.topK, topP: o.topP,
      seed: o.seed + b, step: si, rowOffset: 0, probs,
    });
    ids.set(picked.data as Int32Array, b * n);
    picked.dispose();
    if (soft && probs) {
      const guided = await cfgCombine({ cond: rows(b), uncond: rows(B + b), scale: cfgScale });
      // The sampler's x = l / max(T, 1e-5), in float64 as it computes it.
      const T = Math.max(o.temperature, 1e-5);
      const x = Float64Array.from(guided.data as Float32Array, (l) => l / T);
      guided.dispose();
      const h = await smoothLatent({
        logits: x, probs: probs.data as Float32Array, codebook: vae.codebook(), n, ratio, seed: o.seed + b, step: si,
      });
      probs.dispose();
      const hd = h.data as Float32Array, sd = soft.data as Float32Array;
      for (let t = 0; t < n; t++) for (let c = 0; c < Cvae; c++) sd[(b * Cvae + c) * n + t] = hd[t * Cvae + c]!;
      h.dispose();
    }
  }
  return soft ?? vae.embed(ids, B, pn);
}

/** Kept positions: h = E[source id] and the reported id is the source's (h = gt·m + pred·(1−m)). */
export function keepSource(vae: Vqvae, h: Tensor, ids: Int32Array, src: Int32Array, keep: Uint8Array, Cvae: number, n: number): void {
  const E = vae.codebook().data as Float32Array, hd = h.data as Float32Array;
  const B = ids.length / n;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < n; t++) {
      if (!keep[t]) continue;
      const id = src[b * n + t]!;
      ids[b * n + t] = id;
      for (let c = 0; c < Cvae; c++) hd[(b * Cvae + c) * n + t] = E[id * Cvae + c]!;
    }
}
