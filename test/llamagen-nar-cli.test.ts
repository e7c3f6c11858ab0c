// `tessera generate --decode nar` (dist/ is built by `npm test`): the greedy
// tokens of the NAR fixture equal the reference's; a checkpoint without the
// vertical head is refused with ERR_INVALID_ARGUMENT.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtureDir, N, openFixture } from './llamagen-fixtures.js';

const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'tessera-llamagen-nar-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, 'generate', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('tessera generate --decode nar', () => {
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
  });

  it('writes the reference greedy tokens in 2G - 1 forward passes', () => {
    const png = join(work, 'nar.png'), json = join(work, 'nar.json');
    const r = tessera('--tokenizer', join(fixtureDir, 'vq.pt'), '--weights', join(fixtureDir, 'gpt_nar.pt'), '--image-size', '12',
      '--class', '3', '--cfg', '2', '--top-k', '1', '--decode', 'nar', '--out', png, '--tokens', json);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/forward_passes=11 tokens=36 /);
    const want = openFixture('expected_nar.safetensors').tensors.get('nar_greedy')!.load().data as Int32Array;
    expect(JSON.parse(readFileSync(json, 'utf8'))).toEqual([Array.from(want.subarray(0, N))]);
    expect(existsSync(png)).toBe(true);
  });

  it('refuses a checkpoint without the vertical head', () => {
    const r = tessera('--tokenizer', join(fixtureDir, 'vq.pt'), '--weights', join(fixtureDir, 'gpt.pt'), '--image-size', '12',
      '--class', '3', '--decode', 'nar', '--out', join(work, 'x.png'));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/ERR_INVALID_ARGUMENT/);
    expect(r.err).toMatch(/medusa_output/);
    expect(existsSync(join(work, 'x.png'))).toBe(false);
  });
});
