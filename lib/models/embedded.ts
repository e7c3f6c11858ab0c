// Tessera's embedded default model (issue 8): a tiny VAR trained by
// scripts/train/ on the procedural shapes set, shipped in models/tiny-var/
// with its class names, recommended sampling settings and the small CNN that
// judges samples. `tessera generate` with no model flags runs it and writes a
// labelled grid, one row per class.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TesseraError } from '../errors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { writeImage } from '../io/image.js';
import { conv2d } from '../ops/conv.js';
import { linear } from '../ops/gemm.js';
import { Tensor } from '../tensor.js';
import { WeightReader } from './var/weights.js';
import { generate } from './var/generate.js';
import { loadVar } from './var/load.js';
import { generateLantern, LANTERN_DELTA, vqNeighbourTable } from '../decoding/lantern.js';
import { generateSjd } from '../decoding/sjd.js';
import { generateWithDraft } from '../decoding/draft.js';
import type { NeighbourTable } from '../decoding/verify.js';
import { checkPair } from './llamagen/config.js';
import { generateAr, type DecodeStats, type Generated } from './llamagen/generate.js';
import { LlamaGenGpt } from './llamagen/gpt.js';
import { LlamaGenVq, toUnitRange } from './llamagen/vq.js';

export interface EmbeddedModel {
  dir: string;
  tokenizer: string;
  weights: string;
  classifier: string;
  classes: string[];
  imageSize: number;
  /** Sampling settings the model was evaluated with (model.json). */
  sampling: { cfg: number; topK: number; topP: number };
}

/** models/<name> (default tiny-var) of this package: the first ancestor of this file that holds it (lib/ in tests, dist/lib/ installed). */
export function embeddedModelDir(name = 'tiny-var'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'models', name);
    if (existsSync(join(candidate, 'model.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new TesseraError('ERR_IO', `the embedded model (models/${name}/model.json) is not in this package`);
    dir = up;
  }
}

export function embeddedModel(dir = embeddedModelDir()): EmbeddedModel {
  const meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    classes: string[]; image_size: number; sampling: { cfg: number; top_k: number; top_p: number }; classifier?: string;
  };
  return {
    // The judge for the model's image size (model.json `classifier`; classifier.safetensors is the 32×32 one).
    dir, tokenizer: join(dir, 'vae.pth'), weights: join(dir, 'var.pth'), classifier: resolve(dir, meta.classifier ?? 'classifier.safetensors'),
    classes: meta.classes, imageSize: meta.image_size,
    sampling: { cfg: meta.sampling.cfg, topK: meta.sampling.top_k, topP: meta.sampling.top_p },
  };
}

/** A class id from `--class`: an id, or a name (case-insensitive; '-' or '_' may stand for spaces). */
export function resolveClass(spec: string, classes: readonly string[]): number {
  const t = spec.trim();
  if (/^\d+$/.test(t)) {
    const id = Number(t);
    if (id < classes.length) return id;
  }
  const name = t.toLowerCase().replace(/[-_]/g, ' ');
  const id = classes.indexOf(name);
  if (id < 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `--class ${spec}: not one of 0..${classes.length - 1} or ${classes.join(', ')}`);
  return id;
}

const CLASSIFIER_LAYERS = [['conv0', 1], ['conv1', 2], ['conv2', 2], ['conv3', 2]] as const;

/**
 * scripts/train/train_classifier.py's CNN on lib/ops: four 3×3 convs with
 * ReLU (stride 1, 2, 2, 2, padding 1), global mean, linear. Input images are
 * [B, 3, H, W] in [0, 1], as generate() returns them.
 */
export async function classify(classifierPath: string, images: Tensor): Promise<number[]> {
  const file = openCheckpoint(classifierPath);
  try {
    const w = new WeightReader(file.tensors, classifierPath);
    let x = Tensor.from(Float32Array.from(images.data as Float32Array, (v) => 2 * v - 1), images.shape);
    for (const [name, stride] of CLASSIFIER_LAYERS) {
      const y = await conv2d({ x, weight: w.f32(`${name}.weight`), bias: w.f32(`${name}.bias`), stride, padding: 1 });
      x.dispose();
      const d = y.data as Float32Array;
      for (let i = 0; i < d.length; i++) if (d[i]! < 0) d[i] = 0;
      x = y;
    }
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const pooled = new Float32Array(B * C), d = x.data as Float32Array;
    for (let i = 0; i < B * C; i++) {
      let s = 0;
      for (let p = 0; p < H * W; p++) s += d[i * H * W + p]!;
      pooled[i] = s / (H * W);
    }
    x.dispose();
    const logits = await linear({ x: Tensor.from(pooled, [B, C]), weight: w.f32('fc.weight'), bias: w.f32('fc.bias') });
    const l = logits.data as Float32Array, K = logits.shape[1]!, out: number[] = [];
    for (let b = 0; b < B; b++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (l[b * K + k]! > l[b * K + best]!) best = k;
      out.push(best);
    }
    logits.dispose();
    return out;
  } finally {
    file.close();
  }
}

export interface EmbeddedRun {
  /** Class ids, one row each. */
  classes: number[];
  perRow: number;
  seed: number;
  cfg?: number;
  topK?: number;
  topP?: number;
}

/** Samples of the embedded model: images [rows·perRow, 3, H, W] in [0, 1], row-major; image i draws from seed + i. */
export async function generateEmbedded(model: EmbeddedModel, run: EmbeddedRun): Promise<Tensor> {
  const pipe = await loadVar(model.tokenizer, model.weights);
  try {
    const classes = run.classes.flatMap((c) => new Array<number>(run.perRow).fill(c));
    const result = await generate(pipe.vae, pipe.model, {
      classes, seed: run.seed, cfg: run.cfg ?? model.sampling.cfg, topK: run.topK ?? model.sampling.topK, topP: run.topP ?? model.sampling.topP,
    });
    return result.images;
  } finally {
    pipe.close();
  }
}

// A 5×7 bitmap font (rows top to bottom, bit 4 = left column), so the grid's
// labels need no system fonts.
const FONT: Record<string, readonly number[]> = {
  a: [0, 0, 14, 1, 15, 17, 15], b: [16, 16, 22, 25, 17, 17, 30], c: [0, 0, 14, 16, 16, 17, 14], d: [1, 1, 13, 19, 17, 17, 15],
  e: [0, 0, 14, 17, 31, 16, 14], f: [6, 9, 8, 28, 8, 8, 8], g: [0, 15, 17, 17, 15, 1, 14], h: [16, 16, 22, 25, 17, 17, 17],
  i: [4, 0, 12, 4, 4, 4, 14], j: [2, 0, 6, 2, 2, 18, 12], k: [16, 16, 18, 20, 24, 20, 18], l: [12, 4, 4, 4, 4, 4, 14],
  m: [0, 0, 26, 21, 21, 17, 17], n: [0, 0, 22, 25, 17, 17, 17], o: [0, 0, 14, 17, 17, 17, 14], p: [0, 0, 30, 17, 30, 16, 16],
  q: [0, 0, 13, 19, 15, 1, 1], r: [0, 0, 22, 25, 16, 16, 16], s: [0, 0, 14, 16, 14, 1, 30], t: [8, 8, 28, 8, 8, 9, 6],
  u: [0, 0, 17, 17, 17, 19, 13], v: [0, 0, 17, 17, 17, 10, 4], w: [0, 0, 17, 17, 21, 21, 10], x: [0, 0, 17, 10, 4, 10, 17],
  y: [0, 0, 17, 17, 15, 1, 14], z: [0, 0, 31, 2, 4, 8, 31], '0': [14, 17, 19, 21, 25, 17, 14], '1': [4, 12, 4, 4, 4, 4, 14],
  '2': [14, 17, 1, 2, 4, 8, 31], '3': [31, 2, 4, 2, 1, 17, 14], '4': [2, 6, 10, 18, 31, 2, 2], '5': [31, 16, 30, 1, 1, 17, 14],
  '6': [6, 8, 16, 30, 17, 17, 14], '7': [31, 1, 2, 4, 8, 8, 8], '8': [14, 17, 17, 14, 17, 17, 14], '9': [14, 17, 17, 15, 1, 2, 12],
  '-': [0, 0, 0, 31, 0, 0, 0],
};

/**
 * A grid image [1, 3, H, W] in [0, 1]: row r holds images r·perRow.. (each
 * upscaled `zoom`× by pixel repetition) after its label, drawn in the bitmap
 * font at 2× on a dark background.
 */
export function labelledGrid(images: Tensor, labels: readonly string[], perRow: number, zoom = 2): Tensor {
  const [, , h, w] = images.shape as [number, number, number, number];
  const gap = 4, font = 2, cell = h * zoom;
  const labelW = Math.max(...labels.map((l) => l.length)) * 6 * font + 2 * gap;
  const W = labelW + perRow * (w * zoom + gap), H = labels.length * (cell + gap) + gap;
  const out = new Float32Array(3 * H * W).fill(0.12), src = images.data as Float32Array;
  const put = (x: number, y: number, c: number, v: number): void => { out[(c * H + y) * W + x] = v; };
  labels.forEach((label, r) => {
    const top = gap + r * (cell + gap);
    [...label.toLowerCase()].forEach((ch, k) => {
      const glyph = FONT[ch] ?? [];
      glyph.forEach((bits, gy) => {
        for (let gx = 0; gx < 5; gx++) {
          if (!((bits >> (4 - gx)) & 1)) continue;
          for (let dy = 0; dy < font; dy++) for (let dx = 0; dx < font; dx++)
            for (let c = 0; c < 3; c++) put(gap + (k * 6 + gx) * font + dx, top + (cell - 7 * font) / 2 + gy * font + dy, c, 0.9);
        }
      });
    });
    for (let j = 0; j < perRow; j++) {
      const b = r * perRow + j, left = labelW + j * (w * zoom + gap);
      for (let c = 0; c < 3; c++) for (let y = 0; y < cell; y++) for (let x = 0; x < w * zoom; x++)
        put(left + x, top + y, c, src[((b * 3 + c) * h + Math.floor(y / zoom)) * w + Math.floor(x / zoom)]!);
    }
  });
  return Tensor.from(out, [1, 3, H, W]);
}

/**
 * `tessera generate` without --tokenizer/--weights: the embedded model, every
 * class (or --class's) in rows of --batch samples (default 8), as one PNG.
 */
export async function runEmbeddedGenerate(flags: Map<string, string | true>, num: (name: string, fallback: number, integer?: boolean) => number): Promise<number> {
  const model = embeddedModel();
  const spec = flags.get('class');
  const classes = typeof spec === 'string' ? [resolveClass(spec, model.classes)] : model.classes.map((_, i) => i);
  const out = flags.get('out');
  const path = resolve(typeof out === 'string' ? out : 'tessera-samples.png');
  const perRow = num('batch', 8, true);
  if (perRow < 1 || perRow > 64) throw new TesseraError('ERR_INVALID_ARGUMENT', `--batch (samples per row) must be in 1..64, got ${perRow}`);
  const images = await generateEmbedded(model, {
    classes, perRow, seed: num('seed', 0, true),
    cfg: num('cfg', model.sampling.cfg), topK: num('top-k', model.sampling.topK, true), topP: num('top-p', model.sampling.topP),
  });
  const grid = labelledGrid(images, classes.map((c) => model.classes[c]!), perRow);
  images.dispose();
  await writeImage(path, grid);
  grid.dispose();
  console.log(`${path}: ${classes.length} row${classes.length > 1 ? 's' : ''} of ${perRow} samples (embedded tiny VAR, ${model.dir})`);
  return 0;
}

// ---------------------------------------------------------------- tiny LlamaGen
// models/tiny-llamagen (issue 8 part 3): a LlamaGen VQ tokenizer and
// class-conditional GPT in the official layouts, trained by
// scripts/train/train_llamagen_{vq,gpt}.py on the same shapes set, so
// speculative decoding is measured on a model with a real distribution. The
// tiny VAR's 32×32 classifier (models/tiny-var/classifier.safetensors)
// judges its samples (same 32×32 images).

export interface EmbeddedLlamaGen {
  dir: string;
  tokenizer: string;
  weights: string;
  /** A smaller GPT to draft with (--decode draft), when the directory has one. */
  draft?: string;
  classifier: string;
  classes: string[];
  imageSize: number;
  /** Token grid side: imageSize / the tokenizer's downsampling. */
  grid: number;
  /** Sampling settings the model was evaluated with (model.json). */
  sampling: { cfg: number; topK: number; topP: number; temperature: number };
}

export function embeddedLlamaGen(dir = embeddedModelDir('tiny-llamagen')): EmbeddedLlamaGen {
  const meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    classes: string[]; image_size: number; grid: number; classifier: string;
    sampling: { cfg: number; top_k: number; top_p: number; temperature: number };
  };
  const draft = join(dir, 'draft.pt');
  return {
    dir, tokenizer: join(dir, 'vq.pt'), weights: join(dir, 'gpt.pt'), ...(existsSync(draft) ? { draft } : {}),
    classifier: resolve(dir, meta.classifier), classes: meta.classes, imageSize: meta.image_size, grid: meta.grid,
    sampling: { cfg: meta.sampling.cfg, topK: meta.sampling.top_k, topP: meta.sampling.top_p, temperature: meta.sampling.temperature },
  };
}

export type EmbeddedDecode = 'ar' | 'sjd' | 'lantern' | 'draft';

/** The loaded tokenizer and GPT (and drafter); close() frees them. */
export interface LlamaGenPipeline {
  vq: LlamaGenVq;
  gpt: LlamaGenGpt;
  drafter?: LlamaGenGpt;
  /** LANTERN's neighbour table (built on first use). */
  neighbours(): Promise<NeighbourTable>;
  close(): void;
}

export async function loadEmbeddedLlamaGen(model: EmbeddedLlamaGen, opts: { tokenizer?: string; weights?: string; draft?: string } = {}): Promise<LlamaGenPipeline> {
  const paths = { tokenizer: opts.tokenizer ?? model.tokenizer, weights: opts.weights ?? model.weights, draft: opts.draft ?? model.draft };
  const files = [openCheckpoint(paths.tokenizer)];
  const models: LlamaGenGpt[] = [];
  try {
    const vq = LlamaGenVq.load(files[0]!.tensors, paths.tokenizer);
    const load = async (path: string): Promise<LlamaGenGpt> => {
      const f = openCheckpoint(path);
      files.push(f);
      const m = await LlamaGenGpt.load(f.tensors, path, { extras: f.extras });
      models.push(m);
      checkPair(vq.config, m.config, { tokenizer: paths.tokenizer, weights: path });
      return m;
    };
    const gpt = await load(paths.weights);
    const drafter = paths.draft !== undefined ? await load(paths.draft) : undefined;
    let table: Promise<NeighbourTable> | undefined;
    return {
      vq, gpt, drafter,
      neighbours: () => (table ??= vqNeighbourTable(files[0]!.tensors, paths.tokenizer, vq.config.vocabulary - 1)),
      close: () => { for (const m of models) m.dispose(); for (const f of files) f.close(); },
    };
  } catch (e) {
    for (const m of models) m.dispose();
    for (const f of files) f.close();
    throw e;
  }
}

export interface LlamaGenRun {
  /** One class per image; image b draws from seed + b. */
  classes: number[];
  seed: number;
  decode?: EmbeddedDecode;
  cfg?: number;
  topK?: number;
  topP?: number;
  temperature?: number;
  /** Tokens per target pass (default 16 Jacobi, 5 with the drafter). */
  window?: number;
  /** LANTERN's neighbours per draft (default every other code) and TV budget (default 0.1). */
  lanternK?: number;
  lanternDelta?: number;
  /** Per image, [V] added to the logits (the watermark's green-list bias). */
  logitBias?: readonly (Float32Array | undefined)[];
}

/** Token generation of the tiny LlamaGen with the chosen decoding: tokens[b] in raster order and the counters. */
export async function generateLlamaGenTokens(model: EmbeddedLlamaGen, pipe: LlamaGenPipeline, run: LlamaGenRun): Promise<Generated> {
  const s = model.sampling;
  const options = {
    classes: run.classes, grid: model.grid, seed: run.seed, cfg: run.cfg ?? s.cfg, topK: run.topK ?? s.topK, topP: run.topP ?? s.topP,
    temperature: run.temperature ?? s.temperature, window: run.window, logitBias: run.logitBias,
  };
  const decode = run.decode ?? 'ar';
  if (decode === 'draft' && !pipe.drafter) throw new TesseraError('ERR_INVALID_ARGUMENT', `${model.dir} has no draft model (draft.pt)`);
  if (decode === 'sjd') return generateSjd(pipe.gpt, options);
  if (decode === 'lantern')
    return generateLantern(pipe.gpt, { ...options, table: await pipe.neighbours(), k: run.lanternK, delta: run.lanternDelta ?? LANTERN_DELTA });
  if (decode === 'draft') return generateWithDraft(pipe.gpt, pipe.drafter!, options);
  if (decode !== 'ar') throw new TesseraError('ERR_INVALID_ARGUMENT', `decode must be ar, sjd, lantern or draft, got ${String(decode)}`);
  return generateAr(pipe.gpt, options);
}

/** Images [B, 3, H, W] in [0, 1] of token grids (raster order). */
export async function decodeLlamaGenTokens(model: EmbeddedLlamaGen, pipe: LlamaGenPipeline, tokens: readonly number[][]): Promise<Tensor> {
  return toUnitRange(await pipe.vq.decodeCodes(Int32Array.from(tokens.flat()), tokens.length, model.grid));
}

/** Samples of the tiny LlamaGen: tokens, images [B, 3, H, W] in [0, 1] and the decoding counters. */
export async function generateLlamaGenImages(model: EmbeddedLlamaGen, pipe: LlamaGenPipeline, run: LlamaGenRun): Promise<{ tokens: number[][]; images: Tensor; stats: DecodeStats }> {
  const result = await generateLlamaGenTokens(model, pipe, run);
  return { tokens: result.tokens, images: await decodeLlamaGenTokens(model, pipe, result.tokens), stats: result.stats };
}
