// Shared access to test/fixtures/var (written by
// scripts/reference/make_var_fixtures.py from the independent float64
// PyTorch reference scripts/reference/var_reference.py).
import { join } from 'node:path';
import { afterAll } from 'vitest';

import { openCheckpoint, type Checkpoint } from '../lib/io/checkpoint.js';
import { Tensor } from '../lib/tensor.js';

export const fixtureDir = join(import.meta.dirname, 'fixtures', 'var');
const opened: Checkpoint[] = [];

/** Opens a fixture file; every file opened is closed after the suite. */
export function openFixture(name: string): Checkpoint {
  if (opened.length === 0) afterAll(() => { for (const c of opened.splice(0)) c.close(); });
  const c = openCheckpoint(join(fixtureDir, name));
  opened.push(c);
  return c;
}

export interface Ref { shape: readonly number[]; data: Float32Array | Int32Array }

let expected: Checkpoint | undefined;
function expectedFile(): Checkpoint {
  expected ??= openFixture('expected.safetensors');
  return expected;
}

/** A tensor of expected.safetensors. */
export function ref(name: string): Ref {
  const t = expectedFile().tensors.get(name);
  if (!t) throw new Error(`fixture ${name} is missing`);
  return { shape: t.shape, data: t.load().data as Float32Array | Int32Array };
}

/** The generator's settings and decision margins. */
export function fixtureMeta(): Record<string, string> {
  return expectedFile().metadata;
}

/** max |a - b| / max |b|: the error relative to the reference's scale. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / den;
}

/** Rows [B, from:to, ...] of a [B, N, ...] fixture as a contiguous float32 tensor. */
export function sliceTokens(src: Ref, from: number, to: number): Tensor {
  const [B, N] = src.shape as [number, number];
  const C = src.data.length / (B * N);
  const out = new Float32Array(B * (to - from) * C);
  for (let b = 0; b < B; b++) out.set(src.data.subarray((b * N + from) * C, (b * N + to) * C), b * (to - from) * C);
  return Tensor.from(out, [B, to - from, ...src.shape.slice(2)]);
}

export const SCHEDULE: number[] = [1, 2, 3, 4, 6];
export const begin = (si: number): number => SCHEDULE.slice(0, si).reduce((a, p) => a + p * p, 0);
export const TOKENS = begin(SCHEDULE.length);
