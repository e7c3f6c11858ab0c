// Where a batch job lives in Redis: one BullMQ queue per job (queue name =
// job name, key prefix --prefix) holding one entry per chunk, and a hash
// `<prefix>:<job>:tessera` with the spec, the number of chunks queued so far
// and the time the first chunk started. Every command probes Redis first, so
// a wrong URL or a server that is down is one clear error, not a client
// retrying forever.
import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';

import { TesseraError } from '../errors.js';
import { checkJobName, checkSpec, type BatchSpec, type Chunk } from './spec.js';

export const DEFAULT_PREFIX = 'tessera';

export interface Target {
  url: string;
  job: string;
  /** BullMQ key prefix (default 'tessera'). */
  prefix?: string;
}

export function checkRedisUrl(url: unknown): string {
  let u: URL | undefined;
  try {
    u = new URL(String(url));
  } catch {
    // reported below
  }
  if (typeof url !== 'string' || !u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || u.hostname === '')
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--redis must be a redis://host:port[/db] or rediss:// URL, got ${JSON.stringify(url)}`);
  return url;
}

export function checkPrefix(prefix: unknown): string {
  if (prefix === undefined) return DEFAULT_PREFIX;
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$/.test(prefix))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--prefix must be 1-50 letters, digits, '.', '_' or '-', got ${JSON.stringify(prefix)}`);
  return prefix;
}

/**
 * Connection options for BullMQ. `bounded`: give up after a few reconnects
 * (short commands: submit, status, clean); otherwise reconnect forever, as a
 * long-running worker should through a Redis restart.
 */
export function connectionOptions(url: string, bounded: boolean): ConnectionOptions {
  return {
    url, maxRetriesPerRequest: null, connectTimeout: 5000,
    retryStrategy: (times: number) => (bounded && times > 5 ? null : Math.min(200 * times, 5000)),
  };
}

/** Connects once, without retries, and pings: a clear ERR_IO when Redis cannot be reached. */
export async function probeRedis(url: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000, enableOfflineQueue: false });
  r.on('error', () => {});  // reported by connect() below
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot reach Redis at ${redact(url)}: ${(e as Error).message}; start redis-server or fix --redis`);
  } finally {
    r.disconnect();
  }
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}

export const specKey = (prefix: string, job: string): string => `${prefix}:${job}:tessera`;

export interface JobRecord { spec: BatchSpec; queued: number; submittedAt: number; startedAt?: number }

/** The job's record, or undefined when no job of that name was submitted. */
export async function readRecord(client: Redis, prefix: string, job: string): Promise<JobRecord | undefined> {
  const h = await client.hgetall(specKey(prefix, job));
  if (!h.spec) return undefined;
  let spec: BatchSpec;
  try {
    spec = JSON.parse(h.spec) as BatchSpec;
  } catch {
    throw new TesseraError('ERR_FORMAT', `${specKey(prefix, job)} in Redis does not hold a Tessera batch spec`);
  }
  return { spec: checkSpec(spec), queued: Number(h.queued ?? 0), submittedAt: Number(h.submittedAt ?? 0), startedAt: h.startedAt ? Number(h.startedAt) : undefined };
}

export interface Opened {
  queue: Queue<Chunk>;
  /** Our own connection for the job's hash. */
  client: Redis;
  prefix: string;
  close(): Promise<void>;
}

/** A BullMQ queue handle for the job and a client for its hash, after a successful probe. */
export async function openQueue(t: Target, bounded: boolean): Promise<Opened> {
  const url = checkRedisUrl(t.url), job = checkJobName(t.job), prefix = checkPrefix(t.prefix);
  await probeRedis(url);
  const options = connectionOptions(url, bounded) as { url: string } & Record<string, unknown>;
  const { url: _, ...rest } = options;
  const client = new Redis(url, rest);
  const queue = new Queue<Chunk>(job, { connection: options, prefix });
  // Commands reject with the error; the events would otherwise be unhandled.
  queue.on('error', () => {});
  client.on('error', () => {});
  return {
    queue, client, prefix,
    close: async () => {
      await queue.close();
      client.disconnect();
    },
  };
}

/** The job's record, or ERR_INVALID_ARGUMENT saying how to submit it. */
export async function requireRecord(client: Redis, prefix: string, job: string, url: string): Promise<JobRecord> {
  const r = await readRecord(client, prefix, job);
  if (!r) throw new TesseraError('ERR_INVALID_ARGUMENT', `no batch job ${job} on ${redact(url)} (prefix ${prefix}); submit it first with tessera batch submit --job ${job} ...`);
  return r;
}
