// Tessera's NAR decoding (lib/decoding/nar.ts, LlamaGenGpt.forwardNar) against
// the OFFICIAL NAR code (ThisisBillhe/NAR, NAR-images) on tiny non-standard
// checkpoints: the `family: 'nar'` entries of
// test/fixtures/official/var-llamagen/manifest.json, written by
// scripts/reference/official/check_nar.py, which imports the official
// Transformer (with the vertical head) and generate() from an extracted copy
// of the repository, gives them seeded random weights and records the
// official outputs. TESSERA_OFFICIAL_NAR_DIR=<dir> runs the same checks on the
// larger configurations that script writes with --out <dir>.
//
// Criteria: teacher-forced logits within 1e-4 of the official ones relative to
// their largest magnitude; greedy (top-k 1) token ids identical (the fixture
// records each run's smallest top1−top2 margin, so ties are excluded).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { generateNar } from '../lib/decoding/nar.js';
import { LlamaGenGpt } from '../lib/models/llamagen/gpt.js';
import { narTeacherForced } from './nar-teacher-forcing.js';
import { maxRel, OfficialFixtures } from './official-fixtures.js';

const dir = resolve(process.env.TESSERA_OFFICIAL_NAR_DIR ?? join(import.meta.dirname, 'fixtures', 'official', 'var-llamagen'));
const cli = join(import.meta.dirname, '..', 'dist', 'lib', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'tessera-official-nar-'));
const figures: string[] = [];
afterAll(() => {
  fx.closeAll();
  rmSync(work, { recursive: true, force: true });
  if (figures.length) console.log(`official NAR conformance (${dir}):\n${figures.join('\n')}`);
});

interface Entry { name: string; family: string; dir: string; weights: string; grid: number; heads: number; tokenizer?: string; imageSize?: number;
  /** Why the official generate() cannot run this configuration (GQA): teacher-forced logits only. */
  logitsOnly?: string }
const fx = new OfficialFixtures<Entry>(dir);
const entries = fx.entries.filter((e) => e.family === 'nar');
const path = (e: Entry, f: string): string => fx.path(e, f);
const expected = (e: Entry) => fx.expected(e);

async function load(e: Entry): Promise<LlamaGenGpt> {
  const file = fx.open(e, e.weights);
  return LlamaGenGpt.load(file.tensors, e.weights, { heads: e.heads, extras: file.extras });
}


const greedyRuns = (meta: Record<string, string>): string[] => (meta.greedy_runs ?? '').split(',').filter(Boolean);

describe('official NAR fixtures', () => {
  it('the manifest lists NAR entries', () => expect(entries.length).toBeGreaterThan(0));
});

describe.each(entries.map((e) => [e.name, e] as const))('NAR %s vs the official code', (_, e) => {
  it('teacher-forced logits in the diagonal order (raw CFG rows and guided) within 1e-4', async () => {
    const { ref, meta } = expected(e);
    const model = await load(e);
    const G = e.grid, N = G * G, V = model.config.vocabulary;
    const labels = Array.from(ref('tf_labels').data), B = labels.length, rows = 2 * B;
    const ids = ref('tf_ids').data;  // [B, N] raster
    const cfg = Number(meta.tf_cfg);
    // Both heads of every slot, fed as the official generate() feeds them.
    let heads;
    try {
      heads = await narTeacherForced(model, [...labels, ...labels.map(() => -1)], ids, B, G);
    } finally {
      model.dispose();
    }
    const { right, down } = heads;
    // The prediction of raster cell (r, c), as the official forward() assembles it.
    const got = new Float32Array(rows * N * V);
    const at = (row: number, slot: number): number => (row * (1 + N) + slot) * V;
    for (let row = 0; row < rows; row++)
      for (let r = 0; r < G; r++)
        for (let c = 0; c < G; c++) {
          const o = (row * N + r * G + c) * V;
          const left = c > 0 ? at(row, 1 + r * G + c - 1) : -1, up = r > 0 ? at(row, 1 + (r - 1) * G + c) : -1;
          for (let v = 0; v < V; v++)
            got[o + v] = r === 0 && c === 0 ? (right[at(row, 0) + v]! + down[at(row, 0) + v]!) / 2
              : up < 0 ? right[left + v]! : left < 0 ? down[up + v]! : (right[left + v]! + down[up + v]!) / 2;
        }
    const rr = maxRel(got, ref('tf_logits').data);
    const half = B * N * V;
    const gr = maxRel(got.subarray(0, half).map((c, i) => got[half + i]! + cfg * (c - got[half + i]!)), ref('tf_guided').data);
    figures.push(`${e.name}: teacher-forced logits max rel ${rr.toExponential(2)} (guided ${gr.toExponential(2)}), grid ${G}`);
    expect(rr).toBeLessThan(1e-4);
    expect(gr).toBeLessThan(1e-4);
  });

  it.runIf(e.logitsOnly === undefined)('greedy generateNar (top-k 1; CFG > 1 with a null-class image, and CFG 1) gives the official ids in 2G − 1 passes', async () => {
    const { ref, meta } = expected(e);
    const model = await load(e);
    const G = e.grid, N = G * G;
    try {
      expect(greedyRuns(meta).length).toBeGreaterThan(0);
      for (const run of greedyRuns(meta)) {
        const labels = Array.from(ref(`${run}_labels`).data);
        const out = await generateNar(model, { classes: labels, grid: G, cfg: Number(meta[`${run}_cfg`]), topK: 1, topP: 1 });
        const want = ref(`${run}_ids`).data;
        labels.forEach((_, b) => expect(out.tokens[b], `${run} image ${b}`).toEqual(Array.from(want.subarray(b * N, (b + 1) * N))));
        expect(out.stats.forwardPasses).toBe(Number(meta[`${run}_passes`]));
        figures.push(`${e.name}: ${run} (cfg ${meta[`${run}_cfg`]}) greedy ids identical, ${out.stats.forwardPasses} passes (min margin ${Number(meta[`${run}_min_margin`]).toExponential(1)})`);
      }
    } finally {
      model.dispose();
    }
  });

  it.runIf(e.tokenizer !== undefined && e === entries.find((x) => x.tokenizer !== undefined))(
    'the CLI (--decode nar --top-k 1 --tokens) writes the official greedy ids', () => {
      expect(existsSync(cli), 'dist/ is missing: run npx tsc -p tsconfig.json').toBe(true);
      const { ref, meta } = expected(e);
      const json = join(work, `${e.name}.json`);
      for (const run of greedyRuns(meta)) {
        const r = spawnSync(process.execPath, [cli, 'generate', '--tokenizer', path(e, e.tokenizer!), '--weights', path(e, e.weights),
          '--heads', String(e.heads), '--image-size', String(e.imageSize), '--class', String(ref(`${run}_labels`).data[0]),
          '--cfg', meta[`${run}_cfg`]!, '--top-k', '1', '--decode', 'nar', '--out', join(work, `${e.name}-${run}.png`), '--tokens', json],
        { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`forward_passes=${2 * e.grid - 1} `));
        expect((JSON.parse(readFileSync(json, 'utf8')) as number[][])[0]).toEqual(Array.from(ref(`${run}_ids`).data.subarray(0, e.grid ** 2)));
      }
    });
});
