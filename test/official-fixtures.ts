// Shared by the tests over test/fixtures/official/var-llamagen (written by
// scripts/reference/official/check_{var,llamagen,nar}.py): the manifest, the
// expected outputs of each entry, and the error measures. Every checkpoint it
// opens is closed by closeAll().
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';

import { openCheckpoint, type Checkpoint } from '../lib/io/checkpoint.js';

/** One manifest row; the family-specific fields are the tests' own. */
export interface ManifestEntry { name: string; family: string; dir: string }

export interface Ref { shape: readonly number[]; data: Float32Array | Int32Array }

/**
 * The committed fixture folder test/fixtures/official/<name>, unpacked into
 * work/fixtures (its .gz files gunzipped); or the folder in the environment
 * variable `env` when set (the scripts' larger --out configurations).
 */
export function unpackedFixtureDir(name: string, env: string, work: string): string {
  const given = process.env[env];
  if (given) return resolve(given);
  const src = join(import.meta.dirname, 'fixtures', 'official', name);
  const dst = join(work, 'fixtures');
  for (const e of readdirSync(src, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const from = join(e.parentPath, e.name);
    const to = join(dst, from.slice(src.length).replace(/\.gz$/, ''));
    mkdirSync(join(to, '..'), { recursive: true });
    writeFileSync(to, e.name.endsWith('.gz') ? gunzipSync(readFileSync(from)) : readFileSync(from));
  }
  return dst;
}

export class OfficialFixtures<E extends ManifestEntry> {
  readonly entries: E[];
  private readonly opened: Checkpoint[] = [];

  constructor(readonly dir: string) {
    this.entries = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as E[];
  }

  path(e: E, file: string): string { return join(this.dir, e.dir, file); }

  /** A checkpoint of entry e, closed by closeAll(). */
  open(e: E, file: string): Checkpoint {
    const c = openCheckpoint(this.path(e, file));
    this.opened.push(c);
    return c;
  }

  /** The official outputs of entry e (expected.safetensors) and their metadata. */
  expected(e: E): { ref: (k: string) => Ref; meta: Record<string, string> } {
    const c = this.open(e, 'expected.safetensors');
    return {
      ref: (k) => {
        const t = c.tensors.get(k);
        if (!t) throw new Error(`${e.name}: ${k} is missing from expected.safetensors`);
        return { shape: t.shape, data: t.load().data as Float32Array | Int32Array };
      },
      meta: c.metadata,
    };
  }

  closeAll(): void {
    for (const c of this.opened.splice(0)) c.close();
  }
}

/** max |a − b| / max |b|. */
export function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / den;
}
