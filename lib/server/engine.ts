// The serving engine behind the routes (fastify.tessera): loaded models and
// scenes, the batching scheduler, metrics. Each model is one scheduler lane
// whose runner is a cohort (var-cohort.ts, llamagen-cohort.ts); each scene
// is a lane whose cohort is one native render call over every job's camera.
import { TesseraError } from '../errors.js';
import type { GaussianScene } from '../io/gaussian-scene.js';
import type { DecodeStats, Generated as LlamaGenGenerated } from '../models/llamagen/generate.js';
import { toUnitRange } from '../models/llamagen/vq.js';
import { editMask, encodeTokens, imageSide, scaleMasks, type Box, type EditMode } from '../models/var/edit.js';
import type { Generated as VarGenerated } from '../models/var/generate.js';
import type { PinholeCamera } from '../splat/camera.js';
import { render, type SplatMode, type SplatStats } from '../splat/render.js';
import { Tensor } from '../tensor.js';
import { decodeRgb, pngOf, pngOfHwc } from './images.js';
import { runLlamaGenCohort, type LlamaGenWork } from './llamagen-cohort.js';
import { ServerMetrics } from './metrics.js';
import { ModelRegistry, type LoadedModel, type ModelSpec } from './models.js';
import { Scheduler, type Job } from './scheduler.js';
import { ConditioningCache, KvCachePool, runVarCohort, type CohortOptions, type VarWork } from './var-cohort.js';

export interface ServerOptions {
  models?: ModelSpec[];
  /** Scene id → .ply/.splat/.spz file, or a scene in memory. */
  scenes?: Record<string, string | GaussianScene>;
  /** Images per batched step (default 8); a render view counts one per started megapixel. */
  maxBatch?: number;
  /** How long the first request of a cohort waits for company, ms (default 5). */
  maxWaitMs?: number;
  /** Requests waiting beyond the running cohorts; more get 429 (default 64). */
  maxQueue?: number;
  /** Per-request limit from arrival to result, ms (default 120000); past it 504. */
  timeoutMs?: number;
  /** Request body limit in bytes (default 8 MiB); larger bodies get 413. */
  bodyLimit?: number;
  /** Largest `count` of one request (default 16). */
  maxCount?: number;
}

export const DEFAULTS: Required<Omit<ServerOptions, 'models' | 'scenes'>> = {
  maxBatch: 8, maxWaitMs: 5, maxQueue: 64, timeoutMs: 120_000, bodyLimit: 8 * 1024 * 1024, maxCount: 16,
};

export interface Sampling { cfg?: number; topK?: number; topP?: number; temperature?: number; seed?: number }

export interface GenerateRequest extends Sampling {
  model?: string;
  /** One class per image (the request's class repeated `count` times). */
  classes: number[];
  decode?: 'ar' | 'sjd';
  window?: number;
  moreSmooth?: boolean;
  /** Low-resolution previews in progress events (VAR; costs a decode per scale). */
  preview?: boolean;
}

export interface EditRequest extends Omit<GenerateRequest, 'decode' | 'window'> {
  image: Buffer;
  box: Box;
  mode?: EditMode;
}

export interface RenderRequest {
  scene: string;
  camera: PinholeCamera;
  background?: [number, number, number];
  mode?: SplatMode;
  shDegree?: number;
}

export interface Progress {
  step: number;
  steps: number;
  unit: 'scale' | 'token';
  acceptanceRate?: number;
  /** Base64 PNGs, one per image, at most 64 px a side. */
  previews?: string[];
}

export interface ImageResult {
  model: string;
  images: Buffer[];
  /** VAR: tokens[b][scale][...]; LlamaGen: tokens[b][...] in raster order. */
  tokens: number[][][] | number[][];
  seeds: number[];
  stats?: DecodeStats;
}

export interface RenderResult { png: Buffer; width: number; height: number; stats: SplatStats }

type OnProgress = (p: Progress) => void;
interface VarPayload { kind: 'var'; work: VarWork; edit?: EditRequest }
interface LlamaGenPayload { kind: 'llamagen'; work: LlamaGenWork }
interface RenderPayload { kind: 'render'; req: RenderRequest }

/** Output pixels per batch slot of a render (one megapixel). */
const RENDER_SLOT_PIXELS = 1 << 20;

const bad = (m: string): never => { throw new TesseraError('ERR_INVALID_ARGUMENT', m); };

function checkClasses(m: LoadedModel, classes: readonly number[]): void {
  for (const c of classes)
    if (!Number.isInteger(c) || c < -1 || c >= m.classes) bad(`class ${c} is not a class id of model ${m.name} (0..${m.classes - 1}, or -1 for none)`);
}

/**
 * Settings the sampler would refuse, refused before admission: a cohort
 * shares its steps, so a request failing inside one must not be the first
 * sign (the cohort isolates it, but it would have held a slot for nothing).
 */
function checkSampling(req: Sampling, count: number): void {
  if (req.topK !== undefined && !(Number.isInteger(req.topK) && req.topK >= 0 && req.topK <= 0x7fffffff)) bad(`top_k must be an integer in 0..2147483647 (0 = off), got ${req.topK}`);
  // Image b draws from seed + b, which must stay a safe integer.
  if (req.seed !== undefined && !(Number.isSafeInteger(req.seed) && req.seed >= 0 && req.seed <= Number.MAX_SAFE_INTEGER - (count - 1)))
    bad(`seed must be an integer in 0..${Number.MAX_SAFE_INTEGER - count + 1} for ${count} image(s) (image b uses seed + b), got ${req.seed}`);
}

/** The model's own sampling settings (ModelSpec.sampling) where the request leaves them out. */
function withModelSampling<R extends Sampling>(m: LoadedModel, req: R): R {
  const d = m.sampling;
  return d ? { ...req, cfg: req.cfg ?? d.cfg, topK: req.topK ?? d.topK, topP: req.topP ?? d.topP } : req;
}

export class TesseraEngine {
  readonly registry = new ModelRegistry();
  readonly scheduler: Scheduler;
  readonly metrics: ServerMetrics;
  readonly options: typeof DEFAULTS;
  #closed = false;
  /** Per VAR model: conditionings by class list and KV caches, reused across cohorts. */
  #reuse = new Map<string, Required<CohortOptions>>();

  constructor(options: ServerOptions = {}) {
    this.options = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS;
    this.scheduler = new Scheduler(this.options, (lane) => (jobs) => this.#runLane(lane, jobs), {
      onDequeue: (_lane, s) => this.metrics.queueDuration.observe(s),
    });
    this.metrics = new ServerMetrics({ waiting: () => this.scheduler.waiting, running: () => this.scheduler.running });
  }

  async load(specs: readonly ModelSpec[] = [], scenes: Readonly<Record<string, string | GaussianScene>> = {}): Promise<void> {
    await this.registry.load(specs, scenes);
  }

  /**
   * Generates images; `onProgress` sees every step of this request. Bad
   * requests and a full queue throw synchronously (before any streaming).
   */
  generate(request: GenerateRequest, signal: AbortSignal, onProgress?: OnProgress): Promise<ImageResult> {
    const m = this.registry.model(request.model);
    const req = withModelSampling(m, request);
    checkClasses(m, req.classes);
    checkSampling(req, req.classes.length);
    const seed = req.seed ?? 0, seeds = req.classes.map((_, b) => seed + b);
    if (m.family === 'var') {
      if (req.decode !== undefined && req.decode !== 'ar') bad(`decode ${req.decode} is for next-token models; VAR predicts next scales (decode ar or absent)`);
      if (req.window !== undefined) bad('window is only used with decode sjd');
      return this.#varResult(m, this.#submitVar(m, req, signal, onProgress), seeds);
    }
    if (req.moreSmooth) bad('more_smooth is a VAR option');
    if (req.preview) bad('preview is available for VAR models (LlamaGen has no partial image before its last token)');
    const decode = req.decode ?? 'ar';
    if (req.window !== undefined && decode !== 'sjd') bad('window is only used with decode sjd');
    const work: LlamaGenWork = {
      classes: req.classes, grid: m.grid, decode, window: req.window, signal,
      sampling: { cfg: req.cfg, topK: req.topK, topP: req.topP, temperature: req.temperature, seed: req.seed },
      onStep: onProgress && ((done, total, s) => onProgress({ step: done, steps: total, unit: 'token', acceptanceRate: s?.acceptanceRate })),
    };
    const key = decode === 'sjd' ? `sjd:${Math.random()}` : `ar:${m.grid}`;
    const pending = this.scheduler.submit<LlamaGenPayload, { g: LlamaGenGenerated; images: Tensor }>(
      m.name, key, req.classes.length, { kind: 'llamagen', work }, signal);
    return (async () => {
      const r = await pending;
      if (decode === 'sjd') this.metrics.acceptanceRate.observe({ model: m.name }, r.g.stats.acceptanceRate);
      return { model: m.name, images: await this.#pngs(r.images), tokens: r.g.tokens, seeds, stats: r.g.stats };
    })();
  }

  /** Edits an image in a box (VAR models); throws synchronously as generate() does. */
  edit(request: EditRequest, signal: AbortSignal, onProgress?: OnProgress): Promise<ImageResult> {
    const m = this.registry.model(request.model);
    const req = withModelSampling(m, request);
    if (m.family !== 'var') bad(`model ${m.name} is ${m.family}; editing needs a VAR model`);
    checkClasses(m, req.classes);
    checkSampling(req, req.classes.length);
    const seed = req.seed ?? 0;
    return this.#varResult(m as Extract<LoadedModel, { family: 'var' }>, this.#submitVar(m as Extract<LoadedModel, { family: 'var' }>, req, signal, onProgress, req),
      req.classes.map((_, b) => seed + b));
  }

  async #varResult(m: LoadedModel, pending: Promise<VarGenerated>, seeds: number[]): Promise<ImageResult> {
    const g = await pending;
    return { model: m.name, images: await this.#pngs(g.images), tokens: g.tokens, seeds };
  }

  render(req: RenderRequest, signal: AbortSignal): Promise<RenderResult> {
    if (!this.registry.scenes.has(req.scene))
      bad(`unknown scene ${req.scene}; this server has ${[...this.registry.scenes.keys()].join(', ') || 'no scenes (start it with --scene id=path)'}`);
    const key = JSON.stringify([req.background ?? null, req.mode ?? null, req.shDegree ?? null]);
    // A view weighs one batch slot per started megapixel, so a cohort holds at most maxBatch
    // megapixels of output (a 4096² view alone needs ~400 MB; eight of them batched took 3 GB).
    const slots = Math.max(1, Math.ceil((req.camera.width * req.camera.height) / RENDER_SLOT_PIXELS));
    return this.scheduler.submit<RenderPayload, RenderResult>(`scene:${req.scene}`, key, slots, { kind: 'render', req }, signal);
  }

  /** Stops taking requests, waits for every queued and running one, frees models. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.scheduler.drain();
    for (const r of this.#reuse.values()) { r.conditioning.clear(); r.kv.clear(); }
    this.#reuse.clear();
    this.registry.close();
    this.metrics.close();
  }

  #submitVar(m: Extract<LoadedModel, { family: 'var' }>, req: GenerateRequest, signal: AbortSignal,
    onProgress: OnProgress | undefined, edit?: EditRequest): Promise<VarGenerated> {
    const work: VarWork = {
      options: { classes: req.classes, cfg: req.cfg, topK: req.topK, topP: req.topP, temperature: req.temperature, seed: req.seed, moreSmooth: req.moreSmooth },
      signal,
      onScale: onProgress && (async (si, SN, fHat) => {
        let previews: string[] | undefined;
        if (req.preview && si < SN - 1) previews = await this.#previews(m, fHat);
        onProgress({ step: si + 1, steps: SN, unit: 'scale', previews });
      }),
    };
    return this.scheduler.submit<VarPayload, VarGenerated>(m.name, 'var', req.classes.length, { kind: 'var', work, edit }, signal);
  }

  async #previews(m: Extract<LoadedModel, { family: 'var' }>, fHat: Tensor): Promise<string[]> {
    const img = await m.pipeline.vae.decode(fHat);
    try {
      const d = img.data as Float32Array;
      for (let i = 0; i < d.length; i++) d[i] = (d[i]! + 1) / 2;
      const out: string[] = [];
      for (let b = 0; b < img.shape[0]!; b++) out.push((await pngOf(img, b, 64)).toString('base64'));
      return out;
    } finally {
      img.dispose();
    }
  }

  async #pngs(images: Tensor): Promise<Buffer[]> {
    try {
      const out: Buffer[] = [];
      for (let b = 0; b < images.shape[0]!; b++) out.push(await pngOf(images, b));
      return out;
    } finally {
      images.dispose();
    }
  }

  async #runLane(lane: string, jobs: Job[]): Promise<void> {
    const p = jobs[0]!.payload as VarPayload | LlamaGenPayload | RenderPayload;
    if (p.kind === 'render') return this.#runRender(jobs);
    const m = this.registry.model(lane);
    const onStep = (images: number, seconds: number): void => {
      this.metrics.batchSize.observe(images);
      this.metrics.stepDuration.observe({ model: lane }, seconds);
    };
    if (m.family === 'var') {
      const works: VarWork[] = [];
      for (const j of jobs) {
        const { work, edit } = j.payload as VarPayload;
        // Editing encodes the source first (one job at a time; the transformer steps are batched).
        try {
          works.push(edit ? { ...work, kept: await this.#keptTokens(m, edit) } : work);
        } catch (error) {
          works.push({ ...work, options: { ...work.options, classes: [] } });  // settles as an error below
          j.reject(error);
        }
      }
      let reuse = this.#reuse.get(m.name);
      if (!reuse) this.#reuse.set(m.name, (reuse = { conditioning: new ConditioningCache(m.pipeline.model), kv: new KvCachePool(m.pipeline.model) }));
      const settled = await runVarCohort(m.pipeline.vae, m.pipeline.model, works, onStep, reuse);
      settled.forEach((s, i) => (s.ok ? jobs[i]!.resolve(s.value) : jobs[i]!.reject(s.error)));
      return;
    }
    const settled = await runLlamaGenCohort(m.gpt, jobs.map((j) => (j.payload as LlamaGenPayload).work), onStep);
    for (let i = 0; i < jobs.length; i++) {
      const s = settled[i]!;
      if (!s.ok) { jobs[i]!.reject(s.error); continue; }
      try {
        const B = s.value.tokens.length;
        const codes = Int32Array.from(s.value.tokens.flat());
        jobs[i]!.resolve({ g: s.value, images: toUnitRange(await m.vq.decodeCodes(codes, B, m.grid)) });
      } catch (error) {
        jobs[i]!.reject(error);
      }
    }
  }

  async #keptTokens(m: Extract<LoadedModel, { family: 'var' }>, edit: EditRequest): Promise<{ ids: Int32Array[]; keep: Uint8Array[] }> {
    const { vae, model } = m.pipeline;
    const B = edit.classes.length, side = imageSide(vae, model);
    const refuse = (w: number, h: number): string => `image is ${w}x${h}; model ${m.name} edits ${side}x${side} images`;
    const one = await decodeRgb(edit.image, { width: side, height: side, refuse });
    if (one.shape[2] !== side || one.shape[3] !== side) {
      one.dispose();
      throw new TesseraError('ERR_SHAPE', refuse(one.shape[3]!, one.shape[2]!));
    }
    // count > 1 edits copies of the image, copy b from seed + b.
    const image = Tensor.empty([B, 3, side, side]);
    for (let b = 0; b < B; b++) (image.data as Float32Array).set(one.data as Float32Array, b * one.numel);
    one.dispose();
    try {
      const schedule = model.config.schedule, last = schedule[schedule.length - 1]!;
      const keep = await scaleMasks(editMask(edit.box, side, side, last, edit.mode ?? 'inpaint'), last, schedule);
      return { ids: await encodeTokens(vae, model, image), keep };
    } finally {
      image.dispose();
    }
  }

  async #runRender(jobs: Job[]): Promise<void> {
    const live = jobs.filter((j) => (j.signal.aborted ? (j.reject(j.signal.reason), false) : true));
    if (live.length === 0) return;
    const first = (live[0]!.payload as RenderPayload).req;
    const scene = this.registry.scenes.get(first.scene)!;
    try {
      const t0 = performance.now();
      const out = await render(scene, live.map((j) => (j.payload as RenderPayload).req.camera),
        { background: first.background, mode: first.mode, shDegree: first.shDegree });
      this.metrics.batchSize.observe(live.length);
      this.metrics.stepDuration.observe({ model: `scene:${first.scene}` }, (performance.now() - t0) / 1000);
      for (let i = 0; i < live.length; i++) {
        const v = out.views[i]!;
        try {
          // Stats are the call's (summed over the batched cameras) except the per-call counts.
          live[i]!.resolve({ png: await pngOfHwc(v.rgb.data as Float32Array, v.width, v.height), width: v.width, height: v.height, stats: out.stats });
        } finally {
          for (const t of [v.rgb, v.alpha, v.depth, v.contributors]) t.dispose();
        }
      }
    } catch (error) {
      for (const j of live) j.reject(error);
    }
  }
}
