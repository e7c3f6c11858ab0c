// One chunk of a batch job: images start..end-1 generated in one cohort
// (lib/server/var-cohort.ts: one transformer call per scale over every
// image's rows) where each image is its own member, with its own class and
// seed. The cohort's output equals generate() run alone per member, so image
// i is the same bytes as `tessera generate --class c_i --seed seedBase+i
// --batch 1` with the job's sampling, whatever chunk size or worker made it.
import { statSync } from 'node:fs';
import { join } from 'node:path';

import type { VarPipeline } from '../models/var/load.js';
import { pngOf } from '../server/images.js';
import { runVarCohort, type CohortOptions, type VarWork } from '../server/var-cohort.js';
import { npyInt32, writeAtomically } from './files.js';
import { classOf, imageName, seedOf, tokensName, type BatchSpec, type Chunk } from './spec.js';

export interface ChunkResult {
  images: number;
  /** 0 when every output already existed (a chunk finished by a worker that died before reporting it). */
  generated: number;
  seconds: number;
}

/** The files a chunk writes, relative to the output directory. */
export function chunkFiles(spec: BatchSpec, c: Chunk): string[] {
  const names: string[] = [];
  for (let i = c.start; i < c.end; i++) names.push(imageName(spec, i));
  if (spec.tokens) names.push(join('tokens', tokensName(spec, c)));
  return names;
}

/**
 * Runs `fn` after every earlier call has settled: chunks in flight in one
 * process share one model (whose lazily packed weights are not safe to
 * build twice at once) and one native pool, so only their PNG encoding and
 * writing overlap another chunk's generation.
 */
export function exclusive(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * Generates chunk c into `out` (atomic, durable writes). Throws the signal's
 * reason when it aborts before the images are done (the caller releases the
 * chunk); any other failure throws (a failed write may leave some of the
 * chunk's files, each complete).
 */
export async function runChunk(pipe: VarPipeline, spec: BatchSpec, c: Chunk, out: string, signal: AbortSignal,
  lock: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(), reuse: CohortOptions = {}): Promise<ChunkResult> {
  const t0 = performance.now();
  const images = c.end - c.start;
  if (chunkFiles(spec, c).every((f) => statSync(join(out, f), { throwIfNoEntry: false })?.isFile())) return { images, generated: 0, seconds: (performance.now() - t0) / 1000 };
  const works: VarWork[] = [];
  for (let i = c.start; i < c.end; i++)
    works.push({ options: { classes: [classOf(spec, i)], seed: seedOf(spec, i), ...spec.sampling }, signal });
  const settled = await lock(() => runVarCohort(pipe.vae, pipe.model, works, undefined, reuse));
  try {
    const files: [string, Uint8Array][] = [];
    let tokens: Int32Array | undefined, L = 0;
    for (let k = 0; k < settled.length; k++) {
      const s = settled[k]!;
      // An abort drops every member; a finished chunk is written even if the stop came after it.
      if (!s.ok) throw signal.aborted ? signal.reason : s.error;
      const g = s.value;
      files.push([imageName(spec, c.start + k), await pngOf(g.images, 0)]);
      if (spec.tokens) {
        const flat = g.tokens[0]!.flat();
        L = flat.length;
        tokens ??= new Int32Array(images * L);
        tokens.set(flat, k * L);
      }
    }
    if (tokens) files.push([join('tokens', tokensName(spec, c)), npyInt32(tokens, images, L)]);
    await writeAtomically(out, files);
    return { images, generated: images, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const s of settled) if (s.ok) s.value.images.dispose();
  }
}
