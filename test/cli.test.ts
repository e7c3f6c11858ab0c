// The `tessera` command line: info, help, unknown commands, bench --help.
// (Benchmarks themselves are never run in tests.)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'lib', 'cli', 'main.js');

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: process.env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('tessera CLI', () => {
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
  });

  it('info prints the backends and the CPU', () => {
    const r = tessera('info');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/backends:/);
    expect(r.out).toMatch(/cpu +available/);
    expect(r.out).toMatch(/cuda +(available|unavailable: .+)/);
    expect(r.out).toMatch(/threads: +\d+/);
  });

  it('info --json is one JSON object with the backends', () => {
    const info = JSON.parse(tessera('info', '--json').out) as { backends: { cuda: { available: boolean; reason: string } } };
    expect(typeof info.backends.cuda.available).toBe('boolean');
    if (!info.backends.cuda.available) expect(info.backends.cuda.reason).not.toBe('');
  });

  it('--help lists the commands', () => {
    const r = tessera('--help');
    expect(r.code).toBe(0);
    for (const c of ['info', 'bench', 'build']) expect(r.out).toContain(c);
  });

  it('an unknown command is a helpful error with exit code 2', () => {
    const r = tessera('frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'frobnicate'");
    expect(r.err).toContain('Usage: tessera');
  });

  it('bench attention --help and bench gemm --help describe the benchmarks', () => {
    const a = tessera('bench', 'attention', '--help');
    expect(a.code).toBe(0);
    expect(a.out).toContain('onnxruntime-node');
    expect(a.out).toContain('var_d16');
    const g = tessera('bench', 'gemm', '--help');
    expect(g.code).toBe(0);
    expect(g.out).toContain('FMA peak');
    expect(tessera('bench', 'nope').code).toBe(2);
  });
});
