// Shared access to test/fixtures/llamagen (written by
// scripts/reference/make_llamagen_fixtures.py from the independent float64
// PyTorch reference scripts/reference/llamagen_reference.py).
import { join } from 'node:path';
import { afterAll } from 'vitest';

import { openCheckpoint, type Checkpoint } from '../lib/io/checkpoint.js';
import { LlamaGenGpt, type GptOptions } from '../lib/models/llamagen/gpt.js';
import { LlamaGenVq } from '../lib/models/llamagen/vq.js';

export const fixtureDir = join(import.meta.dirname, 'fixtures', 'llamagen');
const opened = new Map<string, Checkpoint>();

/** Opens a fixture file once; all are closed after the suite. */
export function openFixture(name: string): Checkpoint {
  if (opened.size === 0) afterAll(() => { for (const c of opened.values()) c.close(); opened.clear(); });
  let c = opened.get(name);
  if (!c) { c = openCheckpoint(join(fixtureDir, name)); opened.set(name, c); }
  return c;
}

export function loadGpt(opts: Omit<GptOptions, 'extras'> = {}): Promise<LlamaGenGpt> {
  const c = openFixture('gpt.pt');
  return LlamaGenGpt.load(c.tensors, 'gpt.pt', { ...opts, extras: c.extras });
}

export function loadVq(): LlamaGenVq {
  return LlamaGenVq.load(openFixture('vq.pt').tensors, 'vq.pt');
}

export interface Ref { shape: readonly number[]; data: Float32Array | Int32Array }

/** A tensor of expected.safetensors. */
export function ref(name: string): Ref {
  const t = openFixture('expected.safetensors').tensors.get(name);
  if (!t) throw new Error(`fixture ${name} is missing`);
  return { shape: t.shape, data: t.load().data as Float32Array | Int32Array };
}

export function meta(): Record<string, string> {
  return openFixture('expected.safetensors').metadata;
}

export const GRID = 6;
export const N = GRID * GRID;

/** max |a − b| / max |b|: the error relative to the reference's scale. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / den;
}

/** The reference keeps the decoder's raw output; Tessera writes clamp(x, −1, 1) mapped to [0, 1]. */
export function unitRange(img: ArrayLike<number>): Float32Array {
  return Float32Array.from(img, (v) => (Math.min(1, Math.max(-1, v)) + 1) / 2);
}
