// What a server serves: named models (VAR or LlamaGen pairs of files) and
// scenes, loaded once at start. The plugin loads exactly what it is given:
// an empty configuration loads nothing and every readiness check and request
// says how to configure one (no silent fallback). `tessera serve` given no
// models names the embedded tiny VAR (lib/cli/serve.ts).
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import type { GaussianScene } from '../io/gaussian-scene.js';
import { readScene } from '../io/scene-file.js';
import { TesseraError } from '../errors.js';
import { checkPair } from '../models/llamagen/config.js';
import { LlamaGenGpt } from '../models/llamagen/gpt.js';
import { LlamaGenVq } from '../models/llamagen/vq.js';
import { loadVar, type VarPipeline } from '../models/var/load.js';

export interface ModelSpec {
  /** The name requests use in `model`. */
  name: string;
  family: 'var' | 'llamagen';
  tokenizer: string;
  weights: string;
  /** LlamaGen: pixels per side (default 256). */
  imageSize?: number;
  /** LlamaGen: head count when the checkpoint's rule does not fit. */
  heads?: number;
  /** Class names by id (listed by /ready; the web page shows them). */
  classNames?: string[];
  /** Sampling settings for requests that leave them out (else the pipeline's defaults). */
  sampling?: { cfg?: number; topK?: number; topP?: number };
}

type ModelInfo = Pick<ModelSpec, 'classNames' | 'sampling'>;

export type LoadedModel = ModelInfo & (
  | { name: string; family: 'var'; pipeline: VarPipeline; classes: number; imageSide: number }
  | { name: string; family: 'llamagen'; gpt: LlamaGenGpt; vq: LlamaGenVq; grid: number; classes: number; imageSide: number; close(): void });

export const NO_MODELS =
  'no models are configured: pass the plugin models naming model files, or start tessera serve with --var-tokenizer/--var-weights, ' +
  '--llamagen-tokenizer/--llamagen-weights or --config <file.json> (with no model named, tessera serve loads the embedded tiny VAR)';

async function loadLlamaGen(spec: ModelSpec): Promise<LoadedModel> {
  const files: Checkpoint[] = [];
  try {
    files.push(openCheckpoint(spec.tokenizer));
    const vq = LlamaGenVq.load(files[0]!.tensors, spec.tokenizer);
    const size = spec.imageSize ?? 256, f = vq.config.downsample;
    if (!Number.isInteger(size) || size < f || size % f !== 0)
      throw new TesseraError('ERR_INVALID_ARGUMENT', `model ${spec.name}: imageSize must be a positive multiple of ${f}, got ${size}`);
    files.push(openCheckpoint(spec.weights));
    const gpt = await LlamaGenGpt.load(files[1]!.tensors, spec.weights, { heads: spec.heads, extras: files[1]!.extras });
    checkPair(vq.config, gpt.config, { tokenizer: spec.tokenizer, weights: spec.weights });
    return {
      name: spec.name, family: 'llamagen', gpt, vq, grid: size / f, classes: gpt.config.classes, imageSide: size, classNames: spec.classNames, sampling: spec.sampling,
      close: () => { gpt.dispose(); for (const c of files) c.close(); },
    };
  } catch (e) {
    for (const c of files) c.close();
    throw e;
  }
}

export class ModelRegistry {
  readonly models = new Map<string, LoadedModel>();
  readonly scenes = new Map<string, GaussianScene>();
  /** Why the server is not ready (undefined once ready). */
  notReady: string | undefined = 'loading models';

  /** Loads every model and scene (a path, or a scene already in memory); a failure leaves the reason in notReady and rethrows. */
  async load(specs: readonly ModelSpec[], scenes: Readonly<Record<string, string | GaussianScene>>): Promise<void> {
    try {
      for (const s of specs) {
        if (this.models.has(s.name)) throw new TesseraError('ERR_INVALID_ARGUMENT', `model name ${s.name} is given twice`);
        if (s.family === 'var') {
          const pipeline = await loadVar(s.tokenizer, s.weights);
          const sched = pipeline.model.config.schedule;
          this.models.set(s.name, {
            name: s.name, family: 'var', pipeline, classes: pipeline.model.config.classes,
            imageSide: sched[sched.length - 1]! * pipeline.vae.config.downsample, classNames: s.classNames, sampling: s.sampling,
          });
        } else if (s.family === 'llamagen') {
          this.models.set(s.name, await loadLlamaGen(s));
        } else {
          throw new TesseraError('ERR_INVALID_ARGUMENT', `model ${s.name}: family must be var or llamagen, got ${String(s.family)}`);
        }
      }
      for (const [id, path] of Object.entries(scenes)) {
        if (typeof path !== 'string') { this.scenes.set(id, path); continue; }
        const data = readScene(path);
        if (data.kind !== 'gaussians') throw new TesseraError('ERR_FORMAT', `scene ${id} (${path}) is a point cloud, not Gaussians; it cannot be rendered`);
        this.scenes.set(id, data.scene);
      }
      this.notReady = this.models.size === 0 && this.scenes.size === 0 ? NO_MODELS : undefined;
    } catch (e) {
      this.notReady = `loading failed: ${(e as Error).message}`;
      throw e;
    }
  }

  /** The named model, or the only/first one when no name is given. */
  model(name: string | undefined): LoadedModel {
    if (this.models.size === 0) throw new TesseraError('ERR_INVALID_ARGUMENT', NO_MODELS);
    const m = name === undefined ? this.models.values().next().value! : this.models.get(name);
    if (!m) throw new TesseraError('ERR_INVALID_ARGUMENT', `unknown model ${name}; this server has ${[...this.models.keys()].join(', ')}`);
    return m;
  }

  close(): void {
    for (const m of this.models.values()) (m.family === 'var' ? m.pipeline.close : m.close)();
    this.models.clear();
    this.scenes.clear();
    this.notReady = 'closed';
  }
}
