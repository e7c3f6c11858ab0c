// Class-conditional next-scale generation (spec/var.md section 3,
// autoregressive_infer_cfg): 2B rows (conditional, then null class) through
// the transformer per scale with KV caches, CFG with the official linear
// ramp, top-k/top-p/temperature sampling, residual f_hat updates, decode.
import { TesseraError } from '../../errors.js';
import { sample } from '../../ops/sampling.js';
import { Tensor } from '../../tensor.js';
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
  /** Called after each scale (progress). */
  onScale?: (si: number, scales: number) => void;
}

export interface Generated {
  /** [B, 3, H, W] float32 in [0, 1]. */
  images: Tensor;
  /** tokens[b][si]: image b's token ids at scale si, row-major. */
  tokens: number[][][];
}

export function checkGenerateOptions(o: GenerateOptions, classes: number): Required<Omit<GenerateOptions, 'onScale'>> {
  const r = {
    classes: o.classes, cfg: o.cfg ?? 1.5, topK: o.topK ?? 900, topP: o.topP ?? 0.96,
    temperature: o.temperature ?? 1, seed: o.seed ?? 0,
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

export async function generate(vae: Vqvae, model: VarTransformer, options: GenerateOptions): Promise<Generated> {
  const o = checkGenerateOptions(options, model.config.classes);
  const { schedule, vocabulary: V, latentChannels: Cvae } = model.config;
  const SN = schedule.length, B = o.classes.length, last = schedule[SN - 1]!;
  const cond = await model.condition(o.classes);
  const cache = new VarCache(model.config, 2 * B);
  const fHat = Tensor.zeros([B, Cvae, last, last]);
  const tokens: number[][][] = o.classes.map(() => []);
  try {
    let x = model.startTokens(cond);
    for (let si = 0; si < SN; si++) {
      const pn = schedule[si]!, n = pn * pn;
      const logits = await model.forwardScale(x, cond, cache);
      x.dispose();
      const all = logits.data as Float32Array;
      const ids = new Int32Array(B * n);
      // (1+t)·cond − t·uncond = uncond + (1+t)·(cond − uncond), t = cfg·si/(SN−1).
      const cfgScale = 1 + o.cfg * si / (SN - 1);
      for (let b = 0; b < B; b++) {
        const rows = (r: number): Tensor => Tensor.from(all.subarray(r * n * V, (r + 1) * n * V), [n, V]);
        const picked = await sample({
          logits: rows(b), uncond: rows(B + b), cfgScale, temperature: o.temperature, topK: o.topK, topP: o.topP,
          seed: o.seed + b, step: si, rowOffset: 0,
        });
        const p = picked.data as Int32Array;
        ids.set(p, b * n);
        tokens[b]!.push(Array.from(p));
        picked.dispose();
      }
      logits.dispose();
      const h = await vae.embed(ids, B, pn);
      (await vae.addScale(si, schedule, fHat, h)).dispose();
      h.dispose();
      options.onScale?.(si, SN);
      if (si === SN - 1) break;
      const next = await vae.nextInput(fHat, schedule[si + 1]!);
      x = await model.scaleInput(si + 1, next);
      next.dispose();
    }
    const img = await vae.decode(fHat);
    const d = img.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = (d[i]! + 1) / 2;
    return { images: img, tokens };
  } finally {
    fHat.dispose();
    cache.dispose();
    disposeConditioning(cond);
  }
}
