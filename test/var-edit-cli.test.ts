// `tessera edit` on the tiny fixtures (dist/ is built by `npm test`). The
// source PNG holds the fixture's 8-bit image, which the reference encoded as
// byte/255·2 − 1. Greedy edits must give the reference's tokens exactly and
// its image within one 8-bit level (both quantise x·255 + 0.5; a value near
// a rounding edge may land on either side).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtureDir, fixtureMeta, ref } from './var-fixtures.js';

const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'tessera-var-edit-'));
const source = join(work, 'source.png');
const model = ['--tokenizer', join(fixtureDir, 'vae.pth'), '--weights', join(fixtureDir, 'var.pth')];
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, 'edit', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Largest |png byte − quantised reference| over the image. */
async function worstLevel(png: string, refImage: ArrayLike<number>): Promise<number> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height, info.channels]).toEqual([12, 12, 3]);
  let worst = 0;
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < 144; p++) {
      const want = Math.min(255, Math.max(0, Math.floor(((refImage[c * 144 + p]! + 1) / 2) * 255 + 0.5)));
      worst = Math.max(worst, Math.abs(data[p * 3 + c]! - want));
    }
  return worst;
}

describe('tessera edit', () => {
  beforeAll(async () => {
    await sharp(Buffer.from(Uint8Array.from(ref('edit_image_u8').data)), { raw: { width: 12, height: 12, channels: 3 } }).toFile(source);
  });

  it.each(['inpaint', 'outpaint', 'class'])('%s with --top-k 1: the reference\'s tokens (one array per scale) and image', async (name) => {
    const m = JSON.parse(fixtureMeta()[`edit_${name}`]!) as { mode: string; class: number; cfg: number };
    const png = join(work, `${name}.png`), json = join(work, `${name}.json`);
    const cls = m.class >= 0 ? ['--class', String(m.class)] : [];
    const r = tessera(...model, '--image', source, '--box', Array.from(ref(`edit_${name}_box`).data).join(','), '--mode', m.mode,
      ...cls, '--cfg', String(m.cfg), '--top-k', '1', '--top-p', '0', '--out', png, '--tokens', json);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const tokens = JSON.parse(readFileSync(json, 'utf8')) as number[][];
    expect(tokens.map((s) => s.length)).toEqual([1, 4, 9, 16, 36]);
    expect(tokens.flat()).toEqual(Array.from(ref(`edit_${name}_ids`).data));
    expect(await worstLevel(png, ref(`edit_${name}_image`).data)).toBeLessThanOrEqual(1);
  });

  it('bad input is a TesseraError naming the problem, exit code 1; missing flags print the usage, exit 2', async () => {
    const big = join(work, 'big.png'), rgba = join(work, 'rgba.png'), out = join(work, 'x.png');
    await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } }).png().toFile(big);
    await sharp({ create: { width: 12, height: 12, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 0.5 } } }).png().toFile(rgba);
    const cases: [string[], RegExp][] = [
      [['--image', source, '--box', '0,0,13,6'], /ERR_INVALID_ARGUMENT: box 0,0,13,6 must lie inside the 12x12 image/],
      [['--image', source, '--box', '1,2,3'], /--box needs four numbers x0,y0,x1,y1/],
      [['--image', big, '--box', '0,0,4,4'], /ERR_SHAPE: image is 16x16; this model edits 12x12 images/],
      [['--image', rgba, '--box', '0,0,4,4'], /ERR_SHAPE: .*rgba\.png has 4 channels; edit needs an RGB image/],
      [['--image', source, '--box', '0,0,4,4', '--class', '10'], /class 10 is not a class id of this model/],
      [['--image', source, '--box', '0,0,4,4', '--mode', 'erase'], /--mode must be inpaint or outpaint/],
      [['--image', join(work, 'missing.png'), '--box', '0,0,4,4'], /ERR_IO: cannot read/],
    ];
    for (const [args, msg] of cases) {
      const r = tessera(...model, ...args, '--out', out);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toMatch(msg);
    }
    const r = tessera(...model, '--image', source, '--out', out);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--tokenizer, --weights, --image, --box and --out are required/);
  });
});
