// scripts/load-test.mjs in a CI-sized run (a few seconds of load), so the
// script cannot rot: it starts tessera serve on the embedded model, and its
// hard requirements must hold (no good request fails, every bad request gets
// its 4xx, slow clients 408, the burst 429 with Retry-After, the server
// survives and shuts down cleanly). The speed targets are reported but not
// judged here (CI machines are shared); BENCHMARKS.md records a full run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const script = join(import.meta.dirname, '..', 'scripts', 'load-test.mjs');

describe('scripts/load-test.mjs', () => {
  it('refuses bad arguments with exit 2 and a message', () => {
    for (const [args, msg] of [[['--duration', '-1'], /--duration needs a number >= 0.5/], [['--url', 'http://example.com'], /loopback/],
      [['--duration', '3', '--requests', '5'], /not both/], [['--frobnicate'], /unknown argument --frobnicate/]] as const) {
      const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('a short run: hard requirements hold and the report has every figure', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-load-'));
    try {
      const out = join(dir, 'run.json');
      const r = spawnSync(process.execPath, [script, '--duration', '3', '--concurrency', '8', '--engine-seconds', '0.5', '--warmup-seconds', '0.5',
        '--request-timeout-ms', '1500', '--bad-interval-ms', '40', '--json', out, '--quiet'], { encoding: 'utf8', timeout: 150_000 });
      console.log(r.stdout);
      expect(r.status, r.stderr).toBe(0);
      const j = JSON.parse(readFileSync(out, 'utf8'));
      expect(j.hardOk).toBe(true);
      expect(j.goodErrors).toEqual([]);
      expect(j.requests).toBeGreaterThan(0);
      expect(j.sse).toBeGreaterThan(0);
      expect(j.throughput).toBeGreaterThan(0);
      expect(j.engine.baseline).toBeGreaterThan(0);
      expect(j.meanBatch).toBeGreaterThanOrEqual(1);
      expect(Number.isFinite(j.loopDelayMs.p99)).toBe(true);
      expect(Number.isFinite(j.loopDelayMs.idleControlP99)).toBe(true);
      expect(j.rss.before).toBeGreaterThan(10 * 2 ** 20);
      expect(j.rss.after).toBeGreaterThan(10 * 2 ** 20);
      // Every kind of bad request was sent and got only its expected status.
      for (const [name, b] of Object.entries(j.bad as Record<string, { expected: number[]; got: Record<string, number>; wrong: string[] }>)) {
        expect(Object.keys(b.got).length, name).toBeGreaterThan(0);
        expect(Object.keys(b.got).map(Number).every((s) => b.expected.includes(s)), `${name}: ${JSON.stringify(b.got)}`).toBe(true);
        expect(b.wrong, name).toEqual([]);
      }
      const slow = j.slow as { name: string; result: number | string; ok: boolean }[];
      expect(slow.filter((s) => s.result === 408).length).toBeGreaterThanOrEqual(3);
      expect(slow.some((s) => s.name.includes('completes') && s.result === 200)).toBe(true);
      expect(slow.every((s) => s.ok)).toBe(true);
      expect(j.burst.r429).toBeGreaterThan(0);
      expect(j.burst.withRetryAfter).toBe(j.burst.r429);
      expect(r.stdout).toMatch(/\| server RSS \| [\d.]+ MiB before \(after a warm-up of \d+ requests and a burst\), [\d.]+ MiB after/);
      expect(r.stdout).toMatch(/\| event-loop delay of the server over the load \| p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms \(an idle loop on this machine meanwhile: p99 [\d.]+ ms\) \|/);
      expect(r.stdout).toMatch(/\| CPU time per image \(all threads\) \| engine [\d.]+ ms; server [\d.]+ ms/);
      expect(r.stdout).toMatch(/Hard requirements:\n(  PASS .*\n)+Targets:/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
