// `tessera batch work`: a BullMQ worker for one job. It takes chunks until
// the job has none left (every chunk done or failed for good), writing each
// chunk's images into --out (chunk.ts). BullMQ gives the rest: a failed
// chunk is retried with exponential backoff up to the job's attempts; a
// chunk whose worker died (its lock expired) goes back to the queue after
// --lock-ms; a stop releases or finishes the chunks in hand.
import { hostname } from 'node:os';
import { resolve } from 'node:path';

import { UnrecoverableError, WaitingError, Worker } from 'bullmq';

import { TesseraError } from '../errors.js';
import type { VarPipeline } from '../models/var/load.js';
import { ConditioningCache, KvCachePool } from '../server/var-cohort.js';
import { exclusive, runChunk, type ChunkResult } from './chunk.js';
import { prepareOutput } from './files.js';
import { loadJobModel } from './model.js';
import { connectionOptions, openQueue, readRecord, requireRecord, specKey, type Opened, type Target } from './redis.js';
import { checkChunk, chunkCount, type BatchSpec, type Chunk } from './spec.js';

export interface WorkOptions extends Target {
  out: string;
  /** Chunks in flight in this process (default 1; see exclusive()). */
  concurrency?: number;
  /** How long a chunk stays locked without renewal; a dead worker's chunk returns to the queue after it (default 30000). */
  lockMs?: number;
  /** This machine's copies of the model files (checked against the job's hashes). */
  tokenizer?: string;
  weights?: string;
  /** Progress lines (default console.log). */
  log?: (line: string) => void;
}

export interface WorkSummary {
  /** Chunks this worker finished, and their images (generated: not already on disk). */
  chunks: number;
  images: number;
  generated: number;
  seconds: number;
  /** Chunks of the job that failed every attempt (when the job ended). */
  failed: number;
  /** 'done': the job has no chunk left; 'stopped': stop() was called. */
  end: 'done' | 'stopped';
}

/** Released on stop: the chunk goes back to the queue unfinished. */
class StopRequested extends Error {
  constructor() { super('the worker is stopping'); this.name = 'StopRequested'; }
}

export interface BatchWorker {
  spec: BatchSpec;
  name: string;
  /** Settles when the job is done or the worker stopped. */
  finished: Promise<WorkSummary>;
  /** Takes no new chunks; `release` also gives back the chunks in hand (else they finish first). */
  stop(release?: boolean): Promise<WorkSummary>;
}

function intOption(v: number | undefined, name: string, fallback: number, lo: number, hi: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < lo || v > hi) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer in ${lo}..${hi}, got ${v}`);
  return v;
}

export async function startWorker(o: WorkOptions): Promise<BatchWorker> {
  const concurrency = intOption(o.concurrency, 'concurrency', 1, 1, 64);
  const lockMs = intOption(o.lockMs, 'lock-ms', 30_000, 500, 3_600_000);
  if (typeof o.out !== 'string' || o.out === '') throw new TesseraError('ERR_INVALID_ARGUMENT', '--out <dir> is required (where the images go)');
  const log = o.log ?? ((line: string) => console.log(line));
  const opened = await openQueue(o, false);
  let pipe: VarPipeline | undefined;
  try {
    const { spec } = await requireRecord(opened.client, opened.prefix, o.job, o.url);
    const out = resolve(o.out);
    prepareOutput(out, spec);
    pipe = await loadJobModel(spec, { tokenizer: o.tokenizer, weights: o.weights });
    return run(o, opened, spec, pipe, out, { concurrency, lockMs, log });
  } catch (e) {
    pipe?.close();
    await opened.close();
    throw e;
  }
}

function run(o: WorkOptions, opened: Opened, spec: BatchSpec, pipe: VarPipeline, out: string,
  s: { concurrency: number; lockMs: number; log: (line: string) => void }): BatchWorker {
  const { queue, client, prefix } = opened;
  const name = `${hostname()}:${process.pid}`, key = specKey(prefix, spec.job), chunks = chunkCount(spec);
  const stopping = new AbortController(), lock = exclusive(), t0 = performance.now();
  // A job's images cycle through its classes, so each class's conditioning is computed once per
  // worker; chunks run one at a time (lock), so one KV cache serves them all.
  const reuse = { conditioning: new ConditioningCache(pipe.model), kv: new KvCachePool(pipe.model) };
  const summary: WorkSummary = { chunks: 0, images: 0, generated: 0, seconds: 0, failed: 0, end: 'done' };
  const worker = new Worker<Chunk, ChunkResult>(spec.job, async (job, token, signal) => {
    let c: Chunk;
    try {
      c = checkChunk(spec, job.data);
    } catch (e) {
      throw new UnrecoverableError((e as Error).message);
    }
    await client.hsetnx(key, 'startedAt', String(Date.now()));
    const abort = signal ? AbortSignal.any([signal, stopping.signal]) : stopping.signal;
    try {
      const r = await runChunk(pipe, spec, c, out, abort, lock, reuse);
      summary.chunks++;
      summary.images += r.images;
      summary.generated += r.generated;
      s.log(r.generated === 0
        ? `chunk ${c.start}-${c.end}: already on disk (${name})`
        : `chunk ${c.start}-${c.end}: ${r.images} images in ${r.seconds.toFixed(2)} s, ${(r.images / r.seconds).toFixed(1)} images/s (${name})`);
      return r;
    } catch (e) {
      if (abort.aborted) {
        // Back to the queue without spending an attempt; if the lock is already lost, the stalled check returns it.
        await job.moveToWait(token).catch(() => undefined);
        s.log(`chunk ${c.start}-${c.end}: released (${name} stopping)`);
        throw new WaitingError();
      }
      s.log(`chunk ${c.start}-${c.end}: attempt ${job.attemptsMade + 1} of ${spec.attempts} failed: ${(e as Error).message}`);
      throw e;
    }
  }, {
    connection: connectionOptions(o.url, false), prefix, name, concurrency: s.concurrency,
    lockDuration: s.lockMs, stalledInterval: s.lockMs, maxStalledCount: spec.attempts,
    // Long polls end within a second, so a stop or the end of the job is noticed quickly.
    drainDelay: 1,
  });
  worker.on('error', (e) => s.log(`worker error (retrying): ${e.message}`));

  let settle!: (w: WorkSummary) => void;
  const finished = new Promise<WorkSummary>((r) => { settle = r; });
  let closing: Promise<WorkSummary> | undefined;
  const close = (end: WorkSummary['end'], release: boolean): Promise<WorkSummary> => {
    if (release) stopping.abort(new StopRequested());
    closing ??= (async () => {
      clearInterval(timer);
      await worker.close();
      summary.failed = await queue.getJobCountByTypes('failed').catch(() => summary.failed);
      summary.seconds = (performance.now() - t0) / 1000;
      summary.end = end;
      reuse.conditioning.clear();
      reuse.kv.clear();
      pipe.close();
      await opened.close();
      settle(summary);
      return summary;
    })();
    return closing;
  };

  // The job is done when every chunk was queued and none is waiting, running or delayed.
  let checking = false;
  const timer = setInterval(() => {
    if (checking || closing) return;
    checking = true;
    (async () => {
      const rec = await readRecord(client, prefix, spec.job);
      if (!rec) {
        s.log(`job ${spec.job} was removed from Redis; stopping`);
        return void close('stopped', true);
      }
      const counts = await queue.getJobCounts();
      const left = Object.entries(counts).filter(([k]) => k !== 'completed' && k !== 'failed').reduce((a, [, v]) => a + v, 0);
      if (rec.queued >= chunks && left === 0) await close('done', false);
    })().catch((e: Error) => s.log(`progress check failed (retrying): ${e.message}`)).finally(() => { checking = false; });
  }, 500);

  return { spec, name, finished, stop: (release = false) => close('stopped', release) };
}
