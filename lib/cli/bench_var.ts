// `tessera bench var`: class-conditional VAR generation (CFG 1.5, top-k 900,
// top-p 0.96; transformer per scale + VQVAE decode) on random-weight
// checkpoints of a tiny and the d16 shape, Tessera (fp32 and bf16 packed
// weights) next to the PyTorch reference in the same run. Every contender runs
// in its own child process, so each peak RSS is its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TesseraError } from '../errors.js';
import { writeSafetensors } from '../io/safetensors.js';
import { generate } from '../models/var/generate.js';
import { loadVar } from '../models/var/load.js';
import { OpProfile, setVarProfile } from '../models/var/profile.js';
import { D16, OFFICIAL_VAE, randomVaeTensors, randomVarTensors, type RandomVaeShape, type RandomVarShape } from '../models/var/random_checkpoint.js';
import { getThreads } from '../runtime.js';
import { parseArgs, type Command } from './args.js';

const MODELS: Record<string, { var: RandomVarShape; vae: RandomVaeShape }> = {
  tiny: { var: { ...D16, depth: 2, width: 128, classes: 10 }, vae: { ...OFFICIAL_VAE, ch: 32 } },
  d16: { var: D16, vae: OFFICIAL_VAE },
};
const SAMPLING = { cfg: 1.5, topK: 900, topP: 0.96 };
const here = dirname(fileURLToPath(import.meta.url));
const PEER_SCRIPT = join(here, '..', '..', '..', 'scripts', 'reference', 'var_bench.py');
const PYTHON = '/usr/bin/python3';

interface RunResult {
  perScaleMs: number[]; decodeMs: number; totalMs: number; peakRssBytes: number; loadMs?: number; gemmGflops?: number; torch?: string;
  /** getrusage user + system CPU time of the run (all threads); wall time alone misleads on a shared machine. */
  cpuMs?: number;
  /** --profile: the per-op table of the last run (profile.ts). */
  profile?: string;
}
interface Row { model: string; batch: number; impl: string; result?: RunResult; skipped?: string }

/** One Tessera configuration, run inside the worker child. */
async function worker(cfg: { vae: string; var: string; batch: number; runs: number; compute: 'float32' | 'bfloat16'; profile?: boolean }): Promise<RunResult> {
  const t0 = performance.now();
  const pipe = await loadVar(cfg.vae, cfg.var, { compute: cfg.compute });
  const loadMs = performance.now() - t0;
  let best: RunResult | undefined;
  let profile: string | undefined;
  try {
    const classes = Array.from({ length: cfg.batch }, (_, b) => b % pipe.model.config.classes);
    for (let r = 0; r < cfg.runs; r++) {
      const marks: number[] = [];
      // Only the last run is profiled (warm caches; the hooks' cost stays out of the others).
      const prof = cfg.profile && r === cfg.runs - 1 ? new OpProfile() : undefined;
      setVarProfile(prof);
      const ru0 = process.resourceUsage();
      const start = performance.now();
      const out = await generate(pipe.vae, pipe.model, { ...SAMPLING, classes, seed: r, onScale: () => { marks.push(performance.now()); } });
      const end = performance.now();
      const ru1 = process.resourceUsage();
      setVarProfile(undefined);
      if (prof) profile = prof.report();
      out.images.dispose();
      const perScaleMs = marks.map((m, i) => m - (i === 0 ? start : marks[i - 1]!));
      const cpuMs = (ru1.userCPUTime + ru1.systemCPUTime - ru0.userCPUTime - ru0.systemCPUTime) / 1000;
      const run = { perScaleMs, decodeMs: end - marks[marks.length - 1]!, totalMs: end - start, peakRssBytes: 0, loadMs, cpuMs };
      if (!prof && (!best || run.totalMs < best.totalMs)) best = run;
    }
  } finally {
    pipe.close();
  }
  return { ...best!, peakRssBytes: process.resourceUsage().maxRSS * 1024, ...(profile ? { profile } : {}) };
}

function lastJson(stdout: string): RunResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as RunResult;
}

function peerStatus(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  if (!existsSync(PEER_SCRIPT)) return `${PEER_SCRIPT} not found (run from a source checkout)`;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${PYTHON} has no torch`;
}

function list(v: string | true | undefined, fallback: string): string[] {
  return (typeof v === 'string' ? v : fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MB`;

export const benchVarCommand: Command = {
  name: 'var',
  summary: 'VAR generation (tiny and d16 random weights), fp32/bf16, vs the PyTorch reference',
  usage: `Usage: tessera bench var [--model tiny,d16] [--batch 1,8] [--compute fp32,bf16]
                         [--runs 2] [--no-peer] [--json] [--profile]

Writes random-weight checkpoints in the official layout to a temporary
directory (tiny: depth 2, width 128; d16: depth 16, width 1024, 310M
parameters; both with the 680-token schedule and a 4096-code VQVAE), then
times full generation (CFG 1.5, top-k 900, top-p 0.96, decode to 256x256)
per model, batch and weight compute, each in its own process: best of
--runs, ms per image, images/s, tokens/s (680 per image), the transformer's
time per scale, the VQVAE decode and the process's peak RSS. The PyTorch
peer (scripts/reference/var_bench.py on ${PYTHON}, same files, same thread
count, float32) runs in the same invocation when torch is importable;
otherwise it is reported as skipped, and its F.linear GFLOP/s is printed
(Debian's torch may use a reference BLAS). ratio = PyTorch ms / Tessera ms.
--profile runs one more generation per configuration (not counted in the
times) with per-op hooks and prints CPU ms per op family and stage
(transformer scale s0.., decode), as TESSERA_VAR_PROFILE=1 does for any
generation.`,
  async run(argv) {
    const args = parseArgs(argv, ['model', 'batch', 'compute', 'runs', 'worker']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const w = args.flags.get('worker');
    if (typeof w === 'string') { console.log(JSON.stringify(await worker(JSON.parse(w)))); return 0; }
    const models = list(args.flags.get('model'), 'tiny,d16'), batches = list(args.flags.get('batch'), '1,8').map(Number);
    const computes = list(args.flags.get('compute'), 'fp32,bf16'), runs = Number(args.flags.get('runs') ?? 2);
    const profile = args.flags.has('profile');
    for (const m of models) if (!MODELS[m]) throw new TesseraError('ERR_INVALID_ARGUMENT', `--model: unknown ${m} (tiny, d16)`);
    for (const c of computes) if (c !== 'fp32' && c !== 'bf16') throw new TesseraError('ERR_INVALID_ARGUMENT', `--compute: unknown ${c} (fp32, bf16)`);
    if (!batches.every((b) => Number.isInteger(b) && b >= 1)) throw new TesseraError('ERR_INVALID_ARGUMENT', '--batch needs positive integers');
    if (!Number.isInteger(runs) || runs < 1) throw new TesseraError('ERR_INVALID_ARGUMENT', '--runs needs a positive integer');
    const json = args.flags.has('json'), threads = getThreads();
    const peerSkip = args.flags.has('no-peer') ? '--no-peer' : peerStatus();
    const main = join(here, 'main.js');
    const rows: Row[] = [];
    const say = (s: string): void => { if (!json) console.log(s); };
    say(`tessera bench var: ${threads} threads; sampling cfg ${SAMPLING.cfg}, top-k ${SAMPLING.topK}, top-p ${SAMPLING.topP}` +
      `${peerSkip ? `; PyTorch peer skipped (${peerSkip})` : ''}`);
    for (const name of models) {
      const dir = mkdtempSync(join(tmpdir(), `tessera-bench-var-${name}-`));
      try {
        const files = { var: join(dir, 'var.safetensors'), vae: join(dir, 'vae.safetensors') };
        writeSafetensors(files.var, randomVarTensors(MODELS[name]!.var));
        writeSafetensors(files.vae, randomVaeTensors(MODELS[name]!.vae));
        say(`\n${name}: transformer ${mb(statSync(files.var).size)}, VQVAE ${mb(statSync(files.vae).size)} (fp32 files)`);
        for (const batch of batches) {
          for (const c of computes) {
            const cfg = { ...files, batch, runs: profile ? runs + 1 : runs, compute: c === 'bf16' ? 'bfloat16' : 'float32', profile };
            const r = spawnSync(process.execPath, [main, 'bench', 'var', '--worker', JSON.stringify(cfg)], { encoding: 'utf8', maxBuffer: 1 << 24 });
            if (r.status !== 0) throw new TesseraError('ERR_INTERNAL', `worker ${name} b${batch} ${c} failed: ${r.stderr}`);
            rows.push({ model: name, batch, impl: `tessera-${c}`, result: lastJson(r.stdout) });
            report(rows[rows.length - 1]!, rows, say);
          }
          if (peerSkip) { rows.push({ model: name, batch, impl: 'pytorch', skipped: peerSkip }); continue; }
          const r = spawnSync(PYTHON, [PEER_SCRIPT, '--vae', files.vae, '--var', files.var, '--batch', String(batch), '--runs', String(runs),
            '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
          if (r.status !== 0) rows.push({ model: name, batch, impl: 'pytorch', skipped: `failed: ${r.stderr.trim().split('\n').pop()}` });
          else rows.push({ model: name, batch, impl: 'pytorch', result: lastJson(r.stdout) });
          report(rows[rows.length - 1]!, rows, say);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (json) console.log(JSON.stringify({ threads, sampling: SAMPLING, rows }, null, 2));
    return 0;
  },
};

function report(row: Row, rows: Row[], say: (s: string) => void): void {
  const label = `  b${row.batch} ${row.impl.padEnd(13)}`;
  if (!row.result) { say(`${label} skipped: ${row.skipped}`); return; }
  const r = row.result, perImage = r.totalMs / row.batch;
  const transformer = r.perScaleMs.reduce((a, b) => a + b, 0);
  let ratio = '';
  const peer = rows.find((o) => o.model === row.model && o.batch === row.batch && o.impl === 'pytorch' && o.result);
  if (peer && row.impl !== 'pytorch') ratio = `  ${(peer.result!.totalMs / r.totalMs).toFixed(2)}x PyTorch`;
  say(`${label} ${perImage.toFixed(0).padStart(7)} ms/image  ${(1000 / perImage).toPrecision(3).padStart(6)} img/s  ` +
    `${((680 * 1000) / perImage).toFixed(0).padStart(6)} tok/s  transformer ${transformer.toFixed(0)} ms, decode ${r.decodeMs.toFixed(0)} ms  ` +
    `peak RSS ${mb(r.peakRssBytes)}${ratio}`);
  if (r.cpuMs !== undefined) say(`      CPU time (user+sys, all threads) ${(r.cpuMs / row.batch).toFixed(0)} ms/image (${(r.cpuMs / r.totalMs).toFixed(2)} cores busy on average)`);
  say(`      per scale ms: ${r.perScaleMs.map((m) => m.toFixed(0)).join(' ')}`);
  if (r.profile) say(`      per-op profile (one generation, all ${row.batch} images; CPU ms = user+sys of all threads):\n${r.profile.replace(/^/gm, '      ')}`);
  if (r.gemmGflops !== undefined) say(`      torch ${r.torch}: F.linear 256x1024x1024 at ${r.gemmGflops.toFixed(1)} GFLOP/s in this build`);
  if (row.impl === 'pytorch')
    for (const o of rows)
      if (o.model === row.model && o.batch === row.batch && o.result && o.impl !== 'pytorch')
        say(`      ${o.impl}: ${(r.totalMs / o.result.totalMs).toFixed(2)}x PyTorch's throughput`);
}
