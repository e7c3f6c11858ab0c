// `tessera batch submit`: records the job's spec in Redis and queues one
// BullMQ entry per chunk (id c<start>, so queueing twice adds nothing).
// Submitting an existing job again with the same settings is a resume: it
// queues chunks a crashed submit did not, and retries chunks that failed
// every attempt. Different settings under the same name are refused.
import { TesseraError } from '../errors.js';
import { loadVar } from '../models/var/load.js';
import { chooseModel, describeFile } from './model.js';
import { checkPrefix, checkRedisUrl, openQueue, readRecord, redact, specKey, type Target } from './redis.js';
import { checkJobName, checkSpec, chunkAt, chunkCount, chunkId, parseClasses, SPEC_VERSION, type BatchSpec } from './spec.js';

export interface SubmitOptions extends Target {
  count: number;
  /** 'embedded' (default) unless tokenizer/weights are given. */
  model?: string;
  tokenizer?: string;
  weights?: string;
  /** 'all' (default) or a list (see parseClasses). */
  classes?: string;
  seedBase?: number;
  chunk?: number;
  cfg?: number;
  topK?: number;
  topP?: number;
  temperature?: number;
  tokens?: boolean;
  attempts?: number;
  backoffMs?: number;
}

export interface SubmitResult { spec: BatchSpec; chunks: number; retried: number; resumed: boolean }

/** The spec from the options: model files hashed, classes resolved against the model, settings checked. */
export async function buildSpec(o: SubmitOptions): Promise<BatchSpec> {
  const job = checkJobName(o.job);
  const choice = chooseModel(o.model, o.tokenizer, o.weights);
  const spec: BatchSpec = {
    version: SPEC_VERSION, job, count: o.count, chunk: o.chunk ?? 64, seedBase: o.seedBase ?? 0,
    classes: [], classesArg: o.classes ?? 'all',
    model: { kind: choice.kind, tokenizer: await describeFile(choice.tokenizer), weights: await describeFile(choice.weights) },
    sampling: {
      cfg: o.cfg ?? choice.sampling.cfg, topK: o.topK ?? choice.sampling.topK,
      topP: o.topP ?? choice.sampling.topP, temperature: o.temperature ?? choice.sampling.temperature,
    },
    tokens: o.tokens ?? false, attempts: o.attempts ?? 3, backoffMs: o.backoffMs ?? 5000,
  };
  checkSpec(spec);
  // Loading checks that the pair is a VAR model and gives its classes.
  const pipe = await loadVar(choice.tokenizer, choice.weights);
  try {
    spec.classes = parseClasses(spec.classesArg, pipe.model.config.classes, choice.names);
    const { cfg, topK, topP, temperature } = spec.sampling;
    const bad = (m: string): never => { throw new TesseraError('ERR_INVALID_ARGUMENT', m); };
    if (!Number.isFinite(cfg) || cfg < 0) bad(`--cfg must be a finite number >= 0, got ${cfg}`);
    if (!Number.isInteger(topK) || topK < 0 || topK > 0x7fffffff) bad(`--top-k must be an integer in 0..2147483647 (0 = off), got ${topK}`);  // the sampler's int32: larger would fail every chunk
    if (!Number.isFinite(topP) || topP < 0 || topP > 1) bad(`--top-p must be in [0, 1] (0 or 1 = off), got ${topP}`);
    if (!Number.isFinite(temperature) || temperature <= 0) bad(`--temperature must be > 0, got ${temperature}`);
  } finally {
    pipe.close();
  }
  return spec;
}

/** The settings that must agree for a resubmission to be the same job. */
const identity = (s: BatchSpec): string => JSON.stringify({ ...s, model: { kind: s.model.kind, tokenizer: s.model.tokenizer.sha256, weights: s.model.weights.sha256 } });

export async function submitBatch(o: SubmitOptions): Promise<SubmitResult> {
  checkRedisUrl(o.url);
  checkPrefix(o.prefix);
  const spec = await buildSpec(o);
  const { queue, client, prefix, close } = await openQueue(o, true);
  try {
    const key = specKey(prefix, spec.job);
    const created = await client.hsetnx(key, 'spec', JSON.stringify(spec));
    let resumed = false;
    if (created === 0) {
      const existing = await readRecord(client, prefix, spec.job);
      if (existing && identity(existing.spec) !== identity(spec))
        throw new TesseraError('ERR_INVALID_ARGUMENT',
          `job ${spec.job} already exists on ${redact(o.url)} with other settings; pick another --job, or remove it with tessera batch clean --job ${spec.job}`);
      resumed = true;
    } else {
      await client.hset(key, 'submittedAt', String(Date.now()), 'queued', '0');
    }
    const chunks = chunkCount(spec);
    const opts = { attempts: spec.attempts, backoff: { type: 'exponential', delay: spec.backoffMs }, removeOnComplete: false, removeOnFail: false };
    for (let k = 0; k < chunks; k += 1000) {
      const batch = [];
      for (let j = k; j < Math.min(chunks, k + 1000); j++) {
        const c = chunkAt(spec, j);
        batch.push({ name: 'chunk', data: c, opts: { ...opts, jobId: chunkId(c.start) } });
      }
      await queue.addBulk(batch);  // an id already present (queued, running or done) is left as it is
      await client.hset(key, 'queued', String(Math.min(chunks, k + 1000)));
    }
    let retried = 0;
    if (resumed) {
      const failed = await queue.getJobCountByTypes('failed');
      if (failed > 0) {
        await queue.retryJobs({ state: 'failed' });
        retried = failed;
      }
    }
    return { spec, chunks, retried, resumed };
  } finally {
    await close();
  }
}
