// `tessera watermark detect <img.png> --tokenizer <vq file> --key <key>` and
// the generate flags --watermark-key/-delta/-gamma (dist/ is built by
// `npm test`). The output is three lines: the z-score, the threshold, the
// decision. On the random fixture tokenizer the pixel round trip loses the
// tokens (see watermark.test.ts), so only the contract is checked here.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { resolveWatermark } from '../lib/watermark/greenlist.js';
import { detectTokens } from '../lib/watermark/ztest.js';
import { fixtureDir } from './llamagen-fixtures.js';

const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'tessera-watermark-'));
const vq = join(fixtureDir, 'vq.pt');
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('tessera watermark detect', () => {
  it('generate --watermark-key marks the tokens; detect prints z-score, threshold and decision', () => {
    const png = join(work, 'wm.png'), json = join(work, 'wm.json');
    const gen = tessera('generate', '--tokenizer', vq, '--weights', join(fixtureDir, 'gpt.pt'), '--image-size', '32', '--class', '3',
      '--top-k', '0', '--cfg', '1.5', '--seed', '4', '--watermark-key', 'secret', '--watermark-delta', '4', '--watermark-gamma', '0.25',
      '--out', png, '--tokens', json);
    expect(gen.err).toBe('');
    expect(gen.code).toBe(0);
    const tokens = (JSON.parse(readFileSync(json, 'utf8')) as number[][])[0]!;
    expect(detectTokens(tokens, 64, resolveWatermark({ key: 'secret', delta: 4 })).z).toBeGreaterThan(2);
    const r = tessera('watermark', 'detect', png, '--tokenizer', vq, '--key', 'secret');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^z-score: -?\d+\.\d{4} \(green list \d+ of 16: \d+\/256 tokens green, gamma 0\.25; textbook z -?\d+\.\d{4}\)\n/);
    expect(r.out).toMatch(/\nthreshold: 3\.8361 \(false-positive rate 0\.001 over the pool of 16 lists\)\n/);
    expect(r.out).toMatch(/\ndecision: (watermarked|not watermarked)\n$/);
  });

  it('bad input: missing flags print the usage (exit 2); bad values are TesseraErrors (exit 1)', () => {
    expect(tessera('watermark', 'detect', join(work, 'wm.png'), '--tokenizer', vq).code).toBe(2);
    expect(tessera('watermark', 'inspect').code).toBe(2);
    const cases: [string[], RegExp][] = [
      [[join(work, 'missing.png'), '--tokenizer', vq, '--key', 'k'], /ERR_IO: cannot read .*missing\.png/],
      [[join(work, 'wm.png'), '--tokenizer', vq, '--key', 'k', '--gamma', '1.5'], /watermark gamma must be in \(0, 1\)/],
      [[join(work, 'wm.png'), '--tokenizer', vq, '--key', 'k', '--image-size', '33'], /must be a multiple of the tokenizer's downsampling 2/],
    ];
    for (const [args, msg] of cases) {
      const r = tessera('watermark', 'detect', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toMatch(msg);
    }
  });
});
