// A batch job (issue 9 part 7): N images of one VAR model, split into
// chunks of consecutive indices. Image i is a pure function of the job spec
// and i: class classes[i mod len], seed seedBase + i, the job's sampling
// settings, generated alone (lib/batch/chunk.ts), so any worker on any
// machine writes the same bytes for the same index, whichever chunk holds it.
import { TesseraError } from '../errors.js';

export const SPEC_VERSION = 1;
export const MAX_COUNT = 10_000_000;
export const MAX_CHUNK = 1024;
export const MAX_CHUNKS = 1_000_000;

/** A model file as submitted: workers refuse a file whose hash differs. */
export interface ModelFile { path: string; bytes: number; sha256: string }

export interface BatchSpec {
  version: typeof SPEC_VERSION;
  job: string;
  count: number;
  chunk: number;
  seedBase: number;
  /** Image i has class classes[i % classes.length] (-1: the null class). */
  classes: number[];
  /** --classes as given ('all' or the list), for display. */
  classesArg: string;
  /** 'embedded': the package's tiny VAR (each worker uses its own copy); 'files': tokenizer/weights paths. */
  model: { kind: 'embedded' | 'files'; tokenizer: ModelFile; weights: ModelFile };
  sampling: { cfg: number; topK: number; topP: number; temperature: number };
  /** Also write each chunk's token ids (tokens/<start>-<end>.npy). */
  tokens: boolean;
  /** Tries per chunk (BullMQ attempts) and the first retry's delay (exponential backoff). */
  attempts: number;
  backoffMs: number;
}

export interface Chunk { start: number; end: number }

const bad = (m: string): never => { throw new TesseraError('ERR_INVALID_ARGUMENT', m); };

/** Job names become BullMQ queue names and file names: no ':' (BullMQ's key separator), no '/'. */
export function checkJobName(name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name))
    bad(`--job must be 1-100 characters of letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(name)}`);
  return name as string;
}

export function chunkCount(spec: Pick<BatchSpec, 'count' | 'chunk'>): number {
  return Math.ceil(spec.count / spec.chunk);
}

export function chunkAt(spec: Pick<BatchSpec, 'count' | 'chunk'>, k: number): Chunk {
  const start = k * spec.chunk;
  return { start, end: Math.min(spec.count, start + spec.chunk) };
}

/** The BullMQ job id of the chunk starting at `start` (custom ids must not be integers). */
export const chunkId = (start: number): string => `c${start}`;

export function classOf(spec: Pick<BatchSpec, 'classes'>, i: number): number {
  return spec.classes[i % spec.classes.length]!;
}

export function seedOf(spec: Pick<BatchSpec, 'seedBase'>, i: number): number {
  return spec.seedBase + i;
}

/** Zero-padded index, at least 6 digits, as wide as the largest index. */
export function imageName(spec: Pick<BatchSpec, 'count'>, i: number): string {
  return `${String(i).padStart(Math.max(6, String(spec.count - 1).length), '0')}.png`;
}

export function tokensName(spec: Pick<BatchSpec, 'count'>, c: Chunk): string {
  const w = Math.max(6, String(spec.count).length);
  return `${String(c.start).padStart(w, '0')}-${String(c.end).padStart(w, '0')}.npy`;
}

/** A chunk's data from the queue, checked against the spec (a chunk of another job or layout is refused). */
export function checkChunk(spec: BatchSpec, data: unknown): Chunk {
  const d = data as Partial<Chunk> | null;
  const start = d?.start, end = d?.end;
  if (typeof start !== 'number' || typeof end !== 'number' || !Number.isInteger(start) || start % spec.chunk !== 0
    || start < 0 || start >= spec.count || end !== Math.min(spec.count, start + spec.chunk))
    throw new TesseraError('ERR_FORMAT', `queue entry ${JSON.stringify(data)} is not a chunk of job ${spec.job} (${spec.count} images in chunks of ${spec.chunk})`);
  return { start, end };
}

/**
 * --classes: 'all' (every class of the model in turn), or a comma list of
 * ids, ranges a-b, -1 (unconditional) or, when the model has names, names.
 */
export function parseClasses(arg: string, classCount: number, names?: readonly string[]): number[] {
  if (arg === 'all') return Array.from({ length: classCount }, (_, c) => c);
  const out: number[] = [];
  for (const raw of arg.split(',')) {
    const t = raw.trim();
    const range = /^(\d+)-(\d+)$/.exec(t);
    if (range) {
      const a = Number(range[1]), b = Number(range[2]);
      if (a > b || b >= classCount) bad(`--classes: range ${t} must be a-b with a <= b < ${classCount}`);
      for (let c = a; c <= b; c++) out.push(c);
      continue;
    }
    if (/^(-1|\d+)$/.test(t)) {
      const c = Number(t);
      if (c >= classCount) bad(`--classes: ${c} is not a class of this model (0..${classCount - 1}, or -1 for none)`);
      out.push(c);
      continue;
    }
    const named = names?.indexOf(t.toLowerCase().replace(/[-_]/g, ' ')) ?? -1;
    if (named < 0)
      bad(`--classes: ${JSON.stringify(t)} is not 'all', a class id (0..${classCount - 1}, -1 for none), a range a-b${names ? ` or one of ${names.join(', ')}` : ''}`);
    out.push(named);
  }
  if (out.length === 0) bad('--classes is empty');
  return out;
}

/** Everything about the spec a worker relies on, checked (a spec read back from Redis goes through this too). */
export function checkSpec(s: BatchSpec): BatchSpec {
  checkJobName(s.job);
  if (s.version !== SPEC_VERSION) bad(`job ${s.job} was submitted by a Tessera with batch spec version ${s.version}; this one reads version ${SPEC_VERSION}`);
  const int = (v: number, name: string, lo: number, hi: number): void => {
    if (!Number.isSafeInteger(v) || v < lo || v > hi) bad(`--${name} must be an integer in ${lo}..${hi}, got ${v}`);
  };
  int(s.count, 'count', 1, MAX_COUNT);
  int(s.chunk, 'chunk', 1, MAX_CHUNK);
  if (chunkCount(s) > MAX_CHUNKS) bad(`${s.count} images in chunks of ${s.chunk} are ${chunkCount(s)} chunks; at most ${MAX_CHUNKS} (raise --chunk)`);
  if (!Number.isSafeInteger(s.seedBase) || s.seedBase < 0 || s.seedBase > Number.MAX_SAFE_INTEGER - s.count)
    bad(`--seed-base must be an integer in 0..${Number.MAX_SAFE_INTEGER - s.count} (the last seed, seed-base + count - 1, must stay below 2^53), got ${s.seedBase}`);
  int(s.attempts, 'attempts', 1, 100);
  int(s.backoffMs, 'backoff-ms', 0, 3_600_000);
  return s;
}
