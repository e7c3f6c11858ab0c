// `tessera batch status` and `tessera batch clean`. Progress comes from
// BullMQ's own state (chunk counts, finish times of completed chunks,
// connected workers), so it is right however many workers there are and
// whichever of them died.
import { TesseraError } from '../errors.js';
import { openQueue, redact, requireRecord, specKey, type Target } from './redis.js';
import { chunkAt, chunkCount, chunkId, type BatchSpec } from './spec.js';

export interface BatchStatus {
  job: string;
  spec: BatchSpec;
  chunks: { total: number; queued: number; completed: number; failed: number; active: number; waiting: number; delayed: number };
  images: { total: number; done: number };
  /** Images per second over the last minute, and since the first chunk started (undefined before any is done). */
  rate: { recent?: number; overall?: number };
  /** Seconds left at the recent (else overall) rate. */
  etaSeconds?: number;
  startedAt?: number;
  /** When the last chunk finished, if every chunk is done or failed. */
  finishedAt?: number;
  /** Connected workers (host:pid). */
  workers: string[];
  /** Failed chunks (up to 10): first image, reason, attempts made. */
  failures: { start: number; reason: string; attempts: number }[];
}

const RECENT_MS = 60_000;

export async function batchStatus(t: Target): Promise<BatchStatus> {
  const { queue, client, prefix, close } = await openQueue(t, true);
  try {
    const rec = await requireRecord(client, prefix, t.job, t.url);
    const spec = rec.spec, total = chunkCount(spec);
    const c = await queue.getJobCounts();
    const n = (k: string): number => c[k] ?? 0;
    const chunks = {
      total, queued: rec.queued, completed: n('completed'), failed: n('failed'), active: n('active'),
      waiting: n('waiting') + n('prioritized') + n('paused') + n('wait'), delayed: n('delayed'),
    };
    // Every chunk holds `chunk` images but the last; completed chunks' images follow from their count.
    const last = chunkAt(spec, total - 1);
    const lastDone = chunks.completed > 0 && (await queue.getJobState(chunkId(last.start))) === 'completed';
    const done = Math.min(spec.count, chunks.completed * spec.chunk - (lastDone ? spec.chunk - (last.end - last.start) : 0));
    // The most recent completions (newest first) give the recent rate and the last finish time.
    const recent = await queue.getJobs(['completed'], 0, 999, false);
    const now = Date.now();
    const lastFinish = recent.reduce((a, j) => Math.max(a, j.finishedOn ?? 0), 0) || undefined;
    const inWindow = recent.filter((j) => (j.finishedOn ?? 0) >= now - RECENT_MS);
    const recentImages = inWindow.reduce((a, j) => a + (j.data.end - j.data.start), 0);
    const started = rec.startedAt;
    const complete = chunks.completed + chunks.failed === total && chunks.queued >= total;
    const span = started !== undefined && lastFinish !== undefined ? (lastFinish - started) / 1000 : undefined;
    const rate = {
      overall: span && span > 0 && done > 0 ? done / span : undefined,
      // Over the window, or since the start when the job is younger than the window.
      recent: !complete && started !== undefined && recentImages > 0 ? recentImages / (Math.min(RECENT_MS, now - started) / 1000) : undefined,
    };
    const speed = rate.recent ?? rate.overall;
    const failures = (await queue.getJobs(['failed'], 0, 9, true)).map((j) => ({ start: j.data.start, reason: j.failedReason, attempts: j.attemptsMade }));
    const workers = (await queue.getWorkers()).map((w) => {
      const raw = String(w.rawname ?? w.name), at = raw.indexOf(':w:');
      return at >= 0 ? raw.slice(at + 3) : raw;
    });
    return {
      job: spec.job, spec, chunks, images: { total: spec.count, done }, rate,
      etaSeconds: !complete && speed ? (spec.count - done) / speed : undefined,
      startedAt: started, finishedAt: complete ? lastFinish : undefined, workers, failures,
    };
  } finally {
    await close();
  }
}

function duration(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function formatStatus(st: BatchStatus): string {
  const { spec, chunks: c, images } = st;
  const sm = spec.sampling;
  const lines = [
    `job ${st.job}: ${spec.count} images in ${c.total} chunks of ${spec.chunk}; model ${spec.model.kind === 'embedded' ? 'embedded' : spec.model.weights.path}; ` +
      `classes ${spec.classesArg}; seeds ${spec.seedBase}..${spec.seedBase + spec.count - 1}; cfg ${sm.cfg}, top-k ${sm.topK}, top-p ${sm.topP}, temperature ${sm.temperature}`,
    `chunks: ${c.completed} done, ${c.active} running, ${c.waiting} waiting, ${c.delayed} waiting to retry, ${c.failed} failed` +
      (c.queued < c.total ? ` (only ${c.queued} of ${c.total} queued: run submit again)` : ''),
    `images: ${images.done} of ${images.total} (${((100 * images.done) / images.total).toFixed(1)}%)` +
      (st.rate.recent !== undefined ? `, ${st.rate.recent.toFixed(2)} images/s over the last minute` : '') +
      (st.rate.overall !== undefined ? `, ${st.rate.overall.toFixed(2)} images/s since the start` : '') +
      (st.etaSeconds !== undefined ? `, about ${duration(st.etaSeconds)} left` : '') +
      (st.finishedAt !== undefined ? `; finished ${new Date(st.finishedAt).toISOString()}` : ''),
    `workers: ${st.workers.length}${st.workers.length ? ` (${st.workers.join(', ')})` : ''}`,
  ];
  for (const f of st.failures) lines.push(`failed: chunk from image ${f.start} after ${f.attempts} attempts: ${f.reason}`);
  if (c.failed > 0) lines.push(`run tessera batch submit again with the same settings to retry the failed chunks`);
  return lines.join('\n');
}

/** Removes the job from Redis (queue and spec); files already written stay. Refuses while chunks run unless forced. */
export async function cleanBatch(t: Target, force = false): Promise<void> {
  const { queue, client, prefix, close } = await openQueue(t, true);
  try {
    await requireRecord(client, prefix, t.job, t.url);
    const active = await queue.getJobCountByTypes('active');
    if (active > 0 && !force)
      throw new TesseraError('ERR_INVALID_ARGUMENT', `job ${t.job} on ${redact(t.url)} has ${active} chunks running; stop its workers first, or give --force`);
    await queue.obliterate({ force: true });
    await client.del(specKey(prefix, t.job));
  } finally {
    await close();
  }
}
