// `tessera generate` on the tiny fixtures (dist/ is built by `npm test`).
// Greedy decoding must reproduce the reference's tokens exactly and its image
// to within one 8-bit level (the reference image is float64; both are
// quantised as x·255 + 0.5, so a value near a rounding edge may differ by 1).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtureDir, fixtureMeta, ref, SCHEDULE, TOKENS } from './var-fixtures.js';

const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'tessera-var-'));
const model = ['--tokenizer', join(fixtureDir, 'vae.pth'), '--weights', join(fixtureDir, 'var.pth')];
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, 'generate', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('tessera generate', () => {
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
  });

  it('--top-k 1 writes the reference\'s greedy image and tokens (one array per scale)', async () => {
    const png = join(work, 'greedy.png'), json = join(work, 'greedy.json');
    const cls = String(ref('greedy_labels').data[0]);
    const r = tessera(...model, '--class', cls, '--cfg', fixtureMeta().greedy_cfg!, '--top-k', '1', '--top-p', '0', '--out', png, '--tokens', json);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const tokens = JSON.parse(readFileSync(json, 'utf8')) as number[][];
    expect(tokens.map((s) => s.length)).toEqual([1, 4, 9, 16, 36]);
    expect(tokens.flat()).toEqual(Array.from(ref('greedy_ids').data.subarray(0, TOKENS)));
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([12, 12, 3]);
    const img = ref('greedy_image').data, n = 144;
    let worst = 0;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < n; p++) {
        const want = Math.min(255, Math.max(0, Math.floor(((img[c * n + p]! + 1) / 2) * 255 + 0.5)));
        worst = Math.max(worst, Math.abs(data[p * 3 + c]! - want));
      }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('--batch N writes N PNGs into the --out directory; image b equals --seed s+b alone', () => {
    const dir = join(work, 'batch'), json = join(work, 'batch.json'), one = join(work, 'one.json');
    expect(tessera(...model, '--class', '2', '--seed', '5', '--batch', '3', '--out', dir, '--tokens', json).code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['0000.png', '0001.png', '0002.png']);
    const batch = JSON.parse(readFileSync(json, 'utf8')) as number[][][];
    expect(batch).toHaveLength(3);
    expect(tessera(...model, '--class', '2', '--seed', '7', '--out', join(work, 'one.png'), '--tokens', one).code).toBe(0);
    expect(JSON.parse(readFileSync(one, 'utf8'))).toEqual(batch[2]);
    expect(readFileSync(join(dir, '0002.png'))).toEqual(readFileSync(join(work, 'one.png')));
  });

  it('--compute bf16 runs the transformer on bf16-rounded weights: a complete image and tokens', () => {
    const out = join(work, 'bf16.png'), tokens = join(work, 'bf16.json');
    const r = tessera(...model, '--class', '1', '--top-k', '1', '--compute', 'bf16', '--out', out, '--tokens', tokens);
    expect(r.code, r.err).toBe(0);
    const t = JSON.parse(readFileSync(tokens, 'utf8')) as number[][];
    expect(t.map((s) => s.length)).toEqual(SCHEDULE.map((p) => p * p));
    const e = tessera('--class', '1', '--compute', 'bf16', '--out', out);  // the embedded model has no such option
    expect(e.code).toBe(1);
    expect(e.err).toMatch(/--compute applies to --tokenizer\/--weights models/);
  });

  it('bad input is a TesseraError naming the problem, exit code 1; missing flags print the usage, exit 2', () => {
    const out = join(work, 'x.png');
    const cases: [string[], RegExp][] = [
      [['--class', '10'], /class 10 is not a class id of this model/],
      [['--class', '1', '--top-p', '2'], /top-p must be in \[0, 1\]/],
      [['--class', '1', '--top-k', 'many'], /--top-k needs an integer/],
      [['--class', '1', '--cfg', '-2'], /cfg must be a finite number >= 0/],
      [['--class', '1', '--compute', 'half'], /--compute must be fp32 or bf16, got half/],
    ];
    for (const [args, msg] of cases) {
      const r = tessera(...model, ...args, '--out', out);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(msg);
    }
    const swapped = tessera('--tokenizer', join(fixtureDir, 'var.pth'), '--weights', join(fixtureDir, 'var.pth'), '--class', '1', '--out', out);
    expect(swapped.err).toMatch(/var\.pth: quantize\.embedding\.weight is missing/);
    // With no model flags generate runs the embedded model (test/embedded.test.ts);
    // naming only one of the two files is a usage error.
    const r = tessera('--weights', join(fixtureDir, 'var.pth'), '--class', '1');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--tokenizer, --weights, --class and --out are required/);
  });
});
