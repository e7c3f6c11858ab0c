// Tessera's OctGPT generation loop against the OFFICIAL generate()
// (octree-nn/octgpt 849d23a models/octgpt.py, utils/utils.py sample and
// seq2octree, ocnn-pytorch octree_split / octree_grow), step by step.
// scripts/reference/official/check_octgpt_generate.py ran the official loop on
// the random-weight checkpoints of check_octgpt.py with Tessera's own random
// stream fed in (torch.randperm -> Tessera's Philox order; torch.multinomial
// -> Tessera's Philox uniforms on the official probabilities), or greedy
// (official start temperature 1e-30, its own multinomial; Tessera top-k 1),
// and wrote per step: the masked count the official schedule asked for, the
// nodes drawn, the previously drawn nodes remasked, the drawn values and the
// temperature; then the grown octree (keys, split flags, node counts) and the
// leaf codes. It also ran the official inline schedule (transformer stubbed
// out) for 913 (n, T) pairs, 268 of them where a float64 product would give
// another floor than the official float32 one.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { openCheckpoint } from '../lib/io/checkpoint.js';
import { OctGpt } from '../lib/models/octree/octgpt.js';
import { generateOctGpt, maskSchedule, type StepInfo } from '../lib/models/octree/octgpt_generate.js';
import { philoxUniform } from '../lib/ops/sampling.js';

interface Arr { dtype: 'float32' | 'int32' | 'int64'; shape: number[]; offset: number; bytes: number }
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const dir = join(import.meta.dirname, 'fixtures', 'official');
const raw = gunzipSync(readFileSync(join(dir, 'octgpt-generate.bin.gz')));
const mlen = raw.readUInt32LE(0);
const fx = JSON.parse(raw.subarray(4, 4 + mlen).toString('utf8')) as Json;
const base = Math.ceil((4 + mlen) / 8) * 8;
const bin = new Uint8Array(raw.buffer, raw.byteOffset + base, raw.length - base).slice();
const i32 = (a: Arr): Int32Array => new Int32Array(bin.buffer, a.offset, a.bytes / 4);
const i64 = (a: Arr): BigInt64Array => new BigInt64Array(bin.buffer, a.offset, a.bytes / 8);

const tmp = mkdtempSync(join(tmpdir(), 'tessera-octgpt-gen-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
function checkpointPath(name: string): string {
  const out = join(tmp, name.replace(/\.gz$/, ''));
  if (!existsSync(out)) writeFileSync(out, gunzipSync(readFileSync(join(dir, name))));
  return out;
}

describe('OctGPT generation vs the official generate()', () => {
  it("Tessera's philoxUniform is the stream the script fed the official code", () => {
    for (const p of fx.philox as Json[]) expect(philoxUniform(BigInt(p.seed), BigInt(p.row), BigInt(p.step))).toBe(p.u);
  });

  it('masked counts per step: the official inline cosine schedule for 913 (n, T) pairs (float32 product)', () => {
    const s = fx.schedule as Json;
    const ns = i32(s.n), Ts = i32(s.T), lens = i32(s.maskLen);
    let at = 0, f32Only = 0;
    for (let p = 0; p < ns.length; p++) {
      const n = ns[p]!, T = Ts[p]!, m = maskSchedule(n, T);
      const want = Array.from(lens.subarray(at, at + T));
      at += T;
      // The official loop asks for 1 masked after its last step (it then draws every masked token); Tessera counts 0.
      expect(want[T - 1]).toBe(1);
      expect(m.slice(1, T)).toEqual(want.slice(0, T - 1));
      expect(m[T]).toBe(0);
      for (let i = 0; i + 1 < T; i++) {
        const c = Math.cos((Math.PI / 2) * (i + 1) / T);
        if (Math.floor(n * c) !== want[i] && want[i]! > 1 && want[i]! < m[i]! - 1) { f32Only++; break; }
      }
    }
    expect(at).toBe(lens.length);
    console.log(`schedule: ${ns.length} (n, T) pairs, ${lens.length} steps identical; ${f32Only} pairs where a float64 product would differ`);
    expect(f32Only).toBeGreaterThan(100);
    // Temperatures: t0·((T - i)/T), compared exactly.
    for (const [T, temps] of Object.entries(s.temperatures as Record<string, number[]>))
      temps.forEach((t, i) => expect(s.t0 * ((Number(T) - i) / Number(T))).toBe(t));
  });

  for (const run of fx.runs as Json[]) {
    const o = run.options as { fullDepth: number; depthStop: number };
    it(`${run.name} (${run.checkpoint}, depths ${o.fullDepth}..${o.depthStop}, steps ${run.steps.join('/')}, remask after ${run.remaskStage}): every step, the octree and the codes`, async () => {
      const ckpt = openCheckpoint(checkpointPath(run.checkpoint));
      try {
        const model = OctGpt.load(ckpt.tensors, run.checkpoint, run.options);
        const log: StepInfo[] = [];
        const greedy = run.mode === 'greedy';
        const r = await generateOctGpt(model, {
          seed: run.seed, steps: run.steps, label: run.label, remaskStage: run.remaskStage,
          ...(greedy ? { topK: 1 } : { temperatures: run.temperatures }), onStep: (s) => log.push(s),
        });
        const want = run.stepRecords as Json[];
        expect(log.length).toBe(want.length);
        let remasked = 0, drawn = 0;
        log.forEach((s, k) => {
          const w = want[k]!, where = `${run.name} depth ${w.depth} step ${w.step}`;
          expect([s.depth, s.step], where).toEqual([w.depth, w.step]);
          expect(s.masked, where).toBe(s.step === s.steps - 1 ? w.maskLen - 1 : w.maskLen);
          expect(Array.from(s.nodes), where).toEqual(Array.from(i32(w.nodes)));
          expect(Array.from(s.remasked), where).toEqual(Array.from(i32(w.remasked)));
          expect(Array.from(s.drawn), where).toEqual(Array.from(i32(w.drawn)));
          if (!greedy) expect(s.temperature, where).toBe(w.temperature);
          remasked += s.remasked.length;
          drawn += s.drawn.length;
        });
        const lo = o.fullDepth, hi = o.depthStop, t = r.octree;
        expect(r.nnum).toEqual(run.nnum);
        const flags: number[] = [];
        for (let d = lo; d < hi; d++) {
          expect(t.level(d).nnumNonEmpty).toBe(run.nnumNonEmpty[d - lo]);
          for (const c of t.level(d).children) flags.push(c >= 0 ? 1 : 0);
        }
        expect(flags).toEqual(Array.from(i32(run.splitFlags)));
        for (let d = lo; d <= hi; d++)
          expect(Array.from(t.level(d).keys, (k) => k & ((1n << 48n) - 1n))).toEqual(Array.from(i64(run.keys[String(d)])));
        expect(Array.from(r.codes)).toEqual(Array.from(i32(run.codes)));
        console.log(`octgpt generate ${run.name}: ${log.length} steps, ${drawn} draws and ${remasked} remasked identical; nnum ${r.nnum.join('/')}` +
          (run.minMargin !== null ? `; smallest |p0 - u| ${Number(run.minMargin).toExponential(2)}` : ''));
      } finally {
        ckpt.close();
      }
    }, 60000);
  }

  it("the spec's remask reading stays available and differs from the released rule", async () => {
    const run = (fx.runs as Json[]).find((x) => x.name === 'b-stream')!;
    const ckpt = openCheckpoint(checkpointPath(run.checkpoint));
    try {
      const model = OctGpt.load(ckpt.tensors, run.checkpoint, run.options);
      const log: StepInfo[] = [];
      await generateOctGpt(model, { seed: run.seed, steps: run.steps, label: run.label, remaskStage: run.remaskStage, temperatures: run.temperatures, remaskRule: 'spec', onStep: (s) => log.push(s) });
      const want = run.stepRecords as Json[];
      const first = log.findIndex((s, k) => s.remasked.join() !== Array.from(i32(want[k]!.remasked)).join());
      expect(first).toBeGreaterThanOrEqual(0);
      for (const s of log) expect(s.remasked.length).toBe(Math.floor(s.disagreeing * (s.kind === 'split' ? 0.2 : 0.1)));
    } finally {
      ckpt.close();
    }
  }, 60000);
});
