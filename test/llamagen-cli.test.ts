// `tessera generate` with a LlamaGen GPT in --weights (dist/ is built by
// `npm test`). Greedy decoding must reproduce the reference's tokens exactly
// and its image to within one 8-bit level (the reference image is float64;
// both are quantised as x·255 + 0.5, so a value at a rounding edge may differ by 1).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtureDir, meta, N, ref } from './llamagen-fixtures.js';

const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'tessera-llamagen-'));
const model = ['--tokenizer', join(fixtureDir, 'vq.pt'), '--weights', join(fixtureDir, 'gpt.pt'), '--image-size', '12'];
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, 'generate', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('tessera generate (LlamaGen)', () => {
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build:ts` first (npm test does)');
  });

  // LANTERN is lossy, but with top-k 1 no neighbour carries mass ≤ δ < 1 except zero-mass ones: greedy too.
  const drafter = ['--draft', join(fixtureDir, 'gpt_draft.pt')], plusPlus = ['--lantern-lambda', '2'];
  it.each([['ar', '', []], ['sjd', '', []], ['draft', ' --draft', drafter], ['lantern', '', []], ['lantern', ' --draft', drafter],
    ['lantern', ' --lantern-lambda 2', plusPlus]] as const)(
    '--decode %s%s --top-k 1 writes the reference greedy image and [[tokens]]; prints the counters', async (decode, _label, extra) => {
    const png = join(work, `${decode}.png`), json = join(work, `${decode}.json`);
    const cls = String(ref('greedy_labels').data[0]);
    const r = tessera(...model, '--class', cls, '--cfg', meta().greedy_cfg!, '--top-k', '1', '--decode', decode, ...extra, '--out', png, '--tokens', json);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/forward_passes=\d+ tokens=36 .*spec_decode_num_accepted_tokens=\d+ acceptance_rate=[\d.]+/);
    const tokens = JSON.parse(readFileSync(json, 'utf8')) as number[][];
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toEqual(Array.from(ref('greedy_ids').data.subarray(0, N)));
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([12, 12, 3]);
    const img = ref('greedy_image').data, n = 144;
    let worst = 0;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < n; p++) {
        const v = (Math.min(1, Math.max(-1, img[c * n + p]!)) + 1) / 2;
        worst = Math.max(worst, Math.abs(data[p * 3 + c]! - Math.min(255, Math.floor(v * 255 + 0.5))));
      }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('--compute bf16 (weights rounded to bfloat16) writes a complete image and tokens; with --top-k 1 mostly the fp32 ones', () => {
    const cls = String(ref('greedy_labels').data[0]);
    const run = (compute: string): number[] => {
      const png = join(work, `c-${compute}.png`), json = join(work, `c-${compute}.json`);
      const r = tessera(...model, '--class', cls, '--cfg', meta().greedy_cfg!, '--top-k', '1', '--compute', compute, '--out', png, '--tokens', json);
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(readFileSync(json, 'utf8')) as number[][])[0]!;
    };
    const f32 = run('fp32'), b16 = run('bf16');
    expect(f32).toEqual(Array.from(ref('greedy_ids').data.subarray(0, N)));
    expect(b16).toHaveLength(N);
    // bf16 rounding may flip a near-tie, after which the sequences diverge; the start agrees.
    expect(b16[0]).toBe(f32[0]);
  });

  it('without --top-k it decodes greedily (the CLI contract\'s [--top-k 1])', () => {
    const json = join(work, 'default.json');
    const cls = String(ref('greedy_labels').data[0]);
    const r = tessera(...model, '--class', cls, '--cfg', meta().greedy_cfg!, '--out', join(work, 'default.png'), '--tokens', json);
    expect(r.code, r.err).toBe(0);
    expect((JSON.parse(readFileSync(json, 'utf8')) as number[][])[0]).toEqual(Array.from(ref('greedy_ids').data.subarray(0, N)));
  });

  it('one seed gives one image', () => {
    const a = join(work, 'a.json'), b = join(work, 'b.json');
    expect(tessera(...model, '--class', '2', '--seed', '9', '--top-k', '10', '--out', join(work, 'a.png'), '--tokens', a).code).toBe(0);
    expect(tessera(...model, '--class', '2', '--seed', '9', '--top-k', '10', '--out', join(work, 'b.png'), '--tokens', b).code).toBe(0);
    expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
  });

  it('bad input is a TesseraError naming the problem (exit 1); missing flags print the usage (exit 2)', () => {
    const out = join(work, 'x.png');
    const cases: [string[], RegExp][] = [
      [['--class', '10'], /ERR_INVALID_ARGUMENT: class 10 is not a class id of this model \(0\.\.9/],
      [['--class', '1', '--decode', 'draft'], /ERR_INVALID_ARGUMENT: --decode draft needs --draft <gpt file>/],
      [['--class', '1', '--decode', 'sjd', '--draft', join(fixtureDir, 'gpt_draft.pt')], /--draft is only used with --decode draft or lantern/],
      [['--class', '1', '--decode', 'lantern', '--lantern-k', '64'], /LANTERN k must be an integer in 0\.\.63/],
      [['--class', '1', '--lantern-delta', '0.2'], /--lantern-k, --lantern-delta and --lantern-lambda are only used with --decode lantern/],
      [['--class', '1', '--decode', 'lantern', '--lantern-delta', '0.2', '--lantern-lambda', '2'], /--lantern-delta and --lantern-lambda are alternatives/],
      [['--class', '1', '--decode', 'lantern', '--lantern-lambda', '0.5'], /lambda/],
      [['--class', '1', '--watermark-delta', '3'], /--watermark-delta and --watermark-gamma need --watermark-key/],
      [['--class', '1', '--watermark-key', 'k', '--watermark-gamma', '1'], /watermark gamma must be in \(0, 1\)/],
      [['--class', '1', '--decode', 'beam'], /--decode must be one of ar, sjd, lantern, draft/],
      [['--class', '1', '--image-size', '13'], /--image-size must be a positive multiple of the tokenizer's downsampling 2/],
      [['--class', '1', '--top-p', '2'], /top-p must be in \[0, 1\]/],
      [['--class', '1', '--cfg', '-2'], /cfg must be a finite number >= 0/],
      [['--class', '1', '--window', '4'], /--window is only used with speculative decoding/],
      [['--class', '1', '--heads', '3'], /3 heads do not split dim 128/],
      [['--class', '1', '--compute', 'fp16'], /--compute must be fp32 or bf16, got fp16/],
    ];
    for (const [args, msg] of cases) {
      const r = tessera(...model, ...args, '--out', out);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toMatch(msg);
    }
    const swapped = tessera('--tokenizer', join(fixtureDir, 'gpt.pt'), '--weights', join(fixtureDir, 'gpt.pt'), '--class', '1', '--out', out);
    expect(swapped.err).toMatch(/ERR_FORMAT: .*gpt\.pt: quantize\.embedding\.weight is missing/);
    const r = tessera('--weights', join(fixtureDir, 'gpt.pt'), '--class', '1');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--tokenizer, --weights, --class and --out are required/);
  });
});
