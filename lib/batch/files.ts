// A worker's output directory. Every file is written whole or not at all:
// into <out>/.partial/ first, fsynced, then renamed to its final name (the
// same file system, so the rename is atomic), and the directory is fsynced
// before the chunk is reported done. A worker that dies leaves at most
// temporary files, which the next worker on the same host removes; a chunk
// run twice writes the same bytes again.
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';

import { TesseraError } from '../errors.js';
import type { BatchSpec } from './spec.js';

export const PARTIAL = '.partial';
export const CLAIM = 'tessera-batch.json';

const host = hostname().replace(/[^A-Za-z0-9-]/g, '_');
let counter = 0;

function ioError(what: string, e: unknown): TesseraError {
  return new TesseraError('ERR_IO', `${what}: ${(e as Error).message}`);
}

function writeDurably(path: string, data: Uint8Array): void {
  const fd = openSync(path, 'w');
  try {
    for (let off = 0; off < data.length;) off += writeSync(fd, data, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A temporary name in <out>/.partial that says which host and process wrote it. */
function partialPath(out: string, name: string): string {
  return join(out, PARTIAL, `${name.replace(/\//g, '_')}.${host}.${process.pid}.${counter++}`);
}

/**
 * Writes `files` (name relative to out → bytes) atomically and durably: each
 * to a temporary file, fsynced, renamed; then the directories are fsynced.
 * The files go in parallel on the libuv pool (the journal commits their
 * fsyncs together) and never block the event loop.
 */
export async function writeAtomically(out: string, files: ReadonlyArray<[string, Uint8Array]>): Promise<void> {
  const dirs = new Set<string>();
  await Promise.all(files.map(async ([name, data]) => {
    const tmp = partialPath(out, name), final = join(out, name), dir = dirname(final);
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await mkdir(dir, { recursive: true });
      await rename(tmp, final);
      dirs.add(dir);
    } catch (e) {
      await rm(tmp, { force: true });
      throw ioError(`cannot write ${final}`, e);
    }
  }));
  for (const d of dirs) {
    const fh = await open(d, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The identity of a job's output (what must agree between a directory and the job). */
export function outputIdentity(spec: BatchSpec): object {
  return {
    job: spec.job, count: spec.count, chunk: spec.chunk, seedBase: spec.seedBase, classes: spec.classes, sampling: spec.sampling,
    tokens: spec.tokens, tokenizer: spec.model.tokenizer.sha256, weights: spec.model.weights.sha256,
  };
}

/**
 * Prepares `out` for the job: creates it, claims it with tessera-batch.json
 * (the spec: how index i maps to class and seed) or checks that an existing
 * claim is this job's, and removes temporary files of dead processes on this host.
 */
export function prepareOutput(out: string, spec: BatchSpec): void {
  try {
    mkdirSync(join(out, PARTIAL), { recursive: true });
  } catch (e) {
    throw ioError(`cannot create the output directory ${out}`, e);
  }
  const claim = join(out, CLAIM), mine = JSON.stringify(outputIdentity(spec));
  if (!existsSync(claim)) {
    const tmp = partialPath(out, CLAIM);
    writeDurably(tmp, Buffer.from(`${JSON.stringify({ identity: outputIdentity(spec), spec }, null, 1)}\n`));
    try {
      linkSync(tmp, claim);  // fails if another worker claimed it meanwhile; then it is checked below
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot write ${claim}`, e);
    } finally {
      unlinkSync(tmp);
    }
  }
  let theirs: string;
  try {
    theirs = JSON.stringify((JSON.parse(readFileSync(claim, 'utf8')) as { identity: unknown }).identity);
  } catch (e) {
    throw new TesseraError('ERR_FORMAT', `${claim} is not a Tessera batch claim (${(e as Error).message}); give an empty or this job's --out`);
  }
  if (theirs !== mine)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `${out} holds the output of another batch job or settings (${claim}); give an empty --out or this job's directory`);
  for (const name of readdirSync(join(out, PARTIAL))) {
    const m = /\.([^.]+)\.(\d+)\.\d+$/.exec(name);
    if (m && m[1] === host && !alive(Number(m[2]))) rmSync(join(out, PARTIAL, name), { force: true });
  }
}

/** numpy .npy (format 1.0) of int32 little-endian [rows, cols]. */
export function npyInt32(data: Int32Array, rows: number, cols: number): Buffer {
  let header = `{'descr': '<i4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  data.forEach((v, i) => body.writeInt32LE(v, 4 * i));
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}
