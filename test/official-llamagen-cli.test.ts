// What `tessera generate` writes for LlamaGen checkpoints, against the
// OFFICIAL generate() and VQ decode (greedy: deterministic). The fixtures in
// test/fixtures/official/llamagen-cli (gzip) were written by
// scripts/reference/official/check_llamagen_cli.py on seeded random
// checkpoints in the official layout: dim 96 with 3 heads (--heads 3), an
// ffn_dim_multiplier, an odd 5x5 grid; a 24x24 grid on a VQ-16-deep tokenizer
// (--image-size 384); cfg > 1 with a temperature and top_p (no effect at
// top-k 1), cfg 1 and cfg 0.5 (the official code guides only above 1), and
// the official cfg_interval (--cfg-interval 7, -0.5 and 100), and greedy
// through --top-k 0 --top-p 0 (the official filter keeps one token at 0).
// TESSERA_OFFICIAL_LLAMAGEN_CLI_DIR=<dir> runs the checks on --out output.
//
// Criteria (issue 6's): greedy token ids identical, `--tokens` is [[G·G ids]],
// the PNG within one 8-bit level of round(255·x) of the official image.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';

import { generateAr } from '../lib/models/llamagen/generate.js';
import { LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import { OfficialFixtures, unpackedFixtureDir, type Ref } from './official-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'tessera-official-llamagen-cli-'));
const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');

const fixtureDir = (): string => unpackedFixtureDir('llamagen-cli', 'TESSERA_OFFICIAL_LLAMAGEN_CLI_DIR', work);

interface Entry { name: string; family: 'llamagen'; dir: string; tokenizer: string; weights: string; grid: number; imageSize: number; heads?: number }

const dir = fixtureDir();
const fx = new OfficialFixtures<Entry>(dir);
afterAll(() => {
  fx.closeAll();
  rmSync(work, { recursive: true, force: true });
});
const figures: string[] = [];
afterAll(() => { if (figures.length) console.log(`official LlamaGen CLI conformance (${dir}):\n${figures.join('\n')}`); });

/**
 * Max |png − official| in 8-bit levels over image b: `img` [B, 3, H, W] in
 * [0, 1] (official level round(255·x)), or `levels` [B, 3, R, W] uint8 of
 * the listed rows only (the 384-px fixture).
 */
async function pngLevels(file: string, b: number, img?: Ref, levels?: { rows: number[]; ref: Ref }): Promise<number> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  const W = info.width, H = info.height;
  const rows = levels ? levels.rows : Array.from({ length: H }, (_, y) => y);
  const ref = (levels ? levels.ref : img)!;
  expect([info.channels, ref.shape[3]]).toEqual([3, W]);
  expect(ref.shape[2]).toBe(rows.length);
  if (!levels) expect(ref.shape[2]).toBe(H);
  let worst = 0;
  for (let c = 0; c < 3; c++)
    rows.forEach((y, r) => {
      for (let x = 0; x < W; x++) {
        const v = ref.data[((b * 3 + c) * rows.length + r) * W + x]!;
        worst = Math.max(worst, Math.abs(data[(y * W + x) * 3 + c]! - (levels ? v : Math.floor(v * 255 + 0.5))));
      }
    });
  return worst;
}

/** Whether entry e's expected.safetensors holds `key`. */
function hasKey(e: Entry, key: string): boolean {
  return fx.open(e, 'expected.safetensors').tensors.has(key);
}

describe.each(fx.entries.map((e) => [e.name, e] as const))('LlamaGen %s: generate vs the official code', (_, e) => {
  const exp = () => fx.expected(e);
  const runs = (): string[] => exp().meta.runs!.split(',');

  it('greedy generate() runs give the official ids (API)', async () => {
    const { ref, meta } = exp();
    const file = fx.open(e, e.weights);
    const model = await LlamaGenGpt.load(file.tensors, e.weights, { heads: e.heads, extras: file.extras });
    try {
      const N = e.grid ** 2;
      for (const run of runs()) {
        const labels = Array.from(ref(`${run}_labels`).data);
        const out = await generateAr(model, {
          classes: labels, grid: e.grid, cfg: Number(meta[`${run}_cfg`]), topK: Number(meta[`${run}_top_k`] ?? 1), topP: Number(meta[`${run}_top_p`]),
          temperature: Number(meta[`${run}_temperature`]), cfgInterval: Number(meta[`${run}_cfg_interval`] ?? -1),
        });
        const want = ref(`${run}_ids`);
        labels.forEach((_, b) => expect(out.tokens[b], `${run} image ${b}`).toEqual(Array.from(want.data.subarray(b * N, (b + 1) * N))));
        figures.push(`${e.name} ${run} (classes ${labels.join(',')}, cfg ${meta[`${run}_cfg`]}, cfg_interval ${meta[`${run}_cfg_interval`]}): ids identical (min margin ${Number(meta[`${run}_min_margin`]).toExponential(1)})`);
      }
    } finally {
      model.dispose();
    }
  });

  it('the CLI (greedy, --tokens) writes [[the official ids]] and the official image', async () => {
    expect(existsSync(cli), 'dist/ is missing: run npx tsc -p tsconfig.json').toBe(true);
    const { ref, meta } = exp();
    const N = e.grid ** 2;
    for (const run of runs()) {
      const labels = Array.from(ref(`${run}_labels`).data);
      for (const [b, label] of labels.entries()) {
        const png = join(work, `${e.name}-${run}-${b}.png`), json = join(work, `${e.name}-${run}-${b}.json`);
        const args = ['generate', '--tokenizer', fx.path(e, e.tokenizer), '--weights', fx.path(e, e.weights), '--class', String(label),
          '--cfg', meta[`${run}_cfg`]!, '--top-k', meta[`${run}_top_k`] ?? '1', '--top-p', meta[`${run}_top_p`]!, '--temperature', meta[`${run}_temperature`]!,
          '--image-size', String(e.imageSize), '--out', png, '--tokens', json];
        if (e.heads !== undefined) args.push('--heads', String(e.heads));
        if (Number(meta[`${run}_cfg_interval`] ?? -1) !== -1) args.push('--cfg-interval', meta[`${run}_cfg_interval`]!);
        const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(JSON.parse(readFileSync(json, 'utf8')), `${run} image ${b}`).toEqual([Array.from(ref(`${run}_ids`).data.subarray(b * N, (b + 1) * N))]);
        const partial = hasKey(e, `${run}_png`);
        const levels = partial
          ? await pngLevels(png, b, undefined, { rows: Array.from(ref(`${run}_png_rows`).data), ref: ref(`${run}_png`) })
          : await pngLevels(png, b, ref(`${run}_image`));
        figures.push(`${e.name} ${run} CLI --class ${label}: tokens identical, PNG ${e.imageSize}px${partial ? ` (${ref(`${run}_png_rows`).data.length} rows)` : ''} max ${levels} level(s) off`);
        expect(levels).toBeLessThanOrEqual(1);
      }
    }
  });

  it.runIf(e === fx.entries[0])('--cfg-interval is refused with other decode modes and when not a number', () => {
    const base = ['generate', '--tokenizer', fx.path(e, e.tokenizer), '--weights', fx.path(e, e.weights), '--class', '0',
      '--image-size', String(e.imageSize), '--out', join(work, 'bad.png'), ...(e.heads !== undefined ? ['--heads', String(e.heads)] : [])];
    for (const [extra, msg] of [[['--cfg-interval', '3', '--decode', 'sjd'], /--cfg-interval is only used with --decode ar/],
      [['--cfg-interval', 'x'], /--cfg-interval needs a number/]] as const) {
      const r = spawnSync(process.execPath, [cli, ...base, ...extra], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
  });
});
