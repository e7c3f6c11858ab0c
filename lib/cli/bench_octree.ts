// `tessera bench octree` (issue 7 part 8): the octree build from 1M points at
// depth 10 and OctFormer windowed attention throughput (100k and 1M tokens,
// K = 32 and 1024), with the PyTorch peer of scripts/reference/octree_bench_peer.py
// run on the same inputs in the same invocation (ratios), CPU; CUDA is
// reported as unavailable with the reason when there is no GPU.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { median } from '../bench/timing.js';
import { TesseraError } from '../errors.js';
import { packageRoot } from '../native.js';
import { Octree } from '../octree/octree.js';
import { windowAttention, windowPlan } from '../models/octree/attention.js';
import { getThreads, runtimeInfo } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { parseArgs, type Command } from './args.js';

/** Seeded normal deviates (Box-Muller over an LCG) for points on a sphere. */
function sphereCloud(n: number, seed = 1): { points: Float32Array; normals: Float32Array } {
  let s = seed >>> 0;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 4294967296; };
  const points = new Float32Array(n * 3), normals = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const v = [0, 0, 0].map(() => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
    const l = Math.hypot(v[0]!, v[1]!, v[2]!);
    for (let c = 0; c < 3; c++) { normals[3 * i + c] = v[c]! / l; points[3 * i + c] = 0.8 * v[c]! / l; }
  }
  return { points, normals };
}

function forceGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (() => void) | undefined;
    return typeof gc === 'function' ? gc : undefined;
  } catch {
    return undefined;
  }
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function peer(args: string[], timeoutMs: number): { ms: number; [k: string]: unknown } | string {
  const script = join(packageRoot(), 'scripts', 'reference', 'octree_bench_peer.py');
  if (!existsSync(script)) return `no peer script at ${script}`;
  const python = process.env.TESSERA_PYTHON ?? '/usr/bin/python3';
  const r = spawnSync(python, [script, ...args], { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) return `${python}: ${r.error.message}`;
  if (r.status !== 0) return `peer failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`;
  try { return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number }; } catch { return `peer printed no JSON: ${r.stdout.slice(0, 200)}`; }
}

export const benchOctreeCommand: Command = {
  name: 'octree',
  summary: 'octree build (1M points, depth 10) and windowed attention throughput vs a PyTorch peer',
  usage: `Usage: tessera bench octree [--points N] [--depth D] [--runs N] [--tokens 100000,1000000] [--windows 32,1024]
         [--channels C] [--heads H] [--rpe] [--no-peer] [--skip-build] [--skip-attention] [--json]

Build: N points (default 1,000,000) on a sphere of radius 0.8 with normals, in
random order, depth D (10), full depth 2: the first (cold) build, then the
median of --runs (default 7) warm builds (earlier trees collected first, so
the host pool's pages are reused), with CPU time (all threads) per build.
Attention: OctFormer windows (one sample, segment mask) over random q, k, v
[N, C] (default C 96, 6 heads: OctFormer's first stage), median of --runs
(default 3); GFLOP/s count 4·N·K·C (q·kᵀ and p·v). Peer: PyTorch's
same-recipe build and windowed attention (scripts/reference/octree_bench_peer.py,
TESSERA_PYTHON or /usr/bin/python3) at the same thread count. --rpe: also
with OctFormer's relative position bias (bound int(0.8·K), random table,
tokens on a 64³ raster), as a ratio to the same attention without it.`,
  async run(argv) {
    const args = parseArgs(argv, ['points', 'depth', 'runs', 'tokens', 'windows', 'channels', 'heads']);
    const f = args.flags;
    if (f.has('help')) { console.log(this.usage); return 0; }
    const int = (name: string, dflt: number, lo: number, hi: number): number => {
      const v = f.get(name);
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < lo || n > hi) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer in ${lo}..${hi}, got ${String(v)}`);
      return n;
    };
    const ints = (name: string, dflt: number[]): number[] => {
      const v = f.get(name);
      if (v === undefined) return dflt;
      const xs = String(v).split(',').map(Number);
      if (xs.some((x) => !Number.isInteger(x) || x < 1)) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be positive integers, got ${String(v)}`);
      return xs;
    };
    const N = int('points', 1_000_000, 1, 50_000_000), D = int('depth', 10, 1, 16);
    const threads = getThreads();
    const usePeer = !f.has('no-peer');
    const info = runtimeInfo();
    const result: Record<string, unknown> = { threads, isa: info.backends.cpu.isa, loadavg: (await import('node:os')).loadavg() };
    console.log(`tessera bench octree: ${threads} threads, ISA ${info.backends.cpu.isa}, load average ${(result.loadavg as number[]).map((x) => x.toFixed(2)).join(' ')}`);
    console.log(`CUDA: ${info.backends.cuda.available ? 'a device is present, but the octree build and window gather have no CUDA path yet (CPU only below)' : `no GPU (${info.backends.cuda.reason})`}`);

    if (!f.has('skip-build')) {
      const runs = int('runs', 7, 1, 1000);
      const { points, normals } = sphereCloud(N);
      const gc = forceGc();
      const once = async (): Promise<{ ms: number; cpu: number; tree: Octree }> => {
        const c0 = cpuMs(), t0 = performance.now();
        const { octree } = await Octree.build({ points, normals, depth: D, fullDepth: 2 });
        return { ms: performance.now() - t0, cpu: cpuMs() - c0, tree: octree };
      };
      let first = await once();
      const nnum = first.tree.nnum;
      const cold = first;
      first = undefined as unknown as typeof first;
      const ms: number[] = [], cpu: number[] = [];
      for (let r = 0; r < runs; r++) {
        gc?.();
        const x = await once();
        ms.push(x.ms); cpu.push(x.cpu);
      }
      const med = median(ms);
      const build: Record<string, unknown> = {
        points: N, depth: D, fullDepth: 2, coldMs: cold.ms, coldCpuMs: cold.cpu, medianMs: med, minMs: Math.min(...ms), medianCpuMs: median(cpu),
        pointsPerSecond: N / (med / 1000), gcBetweenRuns: gc !== undefined, nnum,
      };
      console.log(`build: ${N} points, depth ${D}: cold ${cold.ms.toFixed(1)} ms (CPU ${cold.cpu.toFixed(0)} ms); warm median ${med.toFixed(1)} ms ` +
        `(min ${Math.min(...ms).toFixed(1)}, CPU ${median(cpu).toFixed(0)} ms per build) over ${runs} runs = ${(N / med / 1000).toFixed(2)} M points/s${gc ? '' : ' (no gc between runs)'}`);
      console.log(`       nnum ${nnum.join(' ')}`);
      if (usePeer) {
        const file = join(tmpdir(), `tessera-octree-bench-${process.pid}.f32`);
        const both = new Float32Array(N * 6);
        both.set(points); both.set(normals, N * 3);
        writeFileSync(file, both);
        const p = peer(['build', file, String(D), '2', String(Math.max(3, Math.min(runs, 5))), String(threads)], 600_000);
        rmSync(file, { force: true });
        if (typeof p === 'string') console.log(`       peer: ${p}`);
        else {
          const same = JSON.stringify(p.nnum) === JSON.stringify(nnum);
          build.peer = { ...p, ratio: p.ms / med, sameNnum: same };
          console.log(`       PyTorch ${String(p.torch)} same-recipe build: ${p.ms.toFixed(1)} ms → Tessera ${(p.ms / med).toFixed(2)}× faster (warm); node counts ${same ? 'agree' : 'DIFFER'}`);
        }
      }
      result.build = build;
    }

    if (!f.has('skip-attention')) {
      const C = int('channels', 96, 1, 4096), H = int('heads', 6, 1, 256), runs = int('runs', 3, 1, 100);
      if (C % H !== 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `--channels ${C} must be a multiple of --heads ${H}`);
      const rows: Record<string, unknown>[] = [];
      for (const tokens of ints('tokens', [100_000, 1_000_000]))
        for (const K of ints('windows', [32, 1024])) {
          const n = Math.ceil(tokens / K) * K;  // whole windows, as the peer
          const rnd = (seed: number) => { let s = seed; const a = new Float32Array(n * C); for (let i = 0; i < a.length; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 2147483648 - 1; } return Tensor.from(a, [n, C]); };
          const [q, k, v] = [rnd(1), rnd(2), rnd(3)];
          const plan = await windowPlan(new Int32Array(n), 1, { window: K });
          await windowAttention(q, k, v, H, plan);
          const ts: number[] = [];
          for (let r = 0; r < runs; r++) { const t0 = performance.now(); await windowAttention(q, k, v, H, plan); ts.push(performance.now() - t0); }
          const ms = median(ts), gflop = 4 * n * K * C / 1e9;
          const row: Record<string, unknown> = { tokens: n, window: K, channels: C, heads: H, ms, tokensPerSecond: n / (ms / 1000), gflops: gflop / (ms / 1000) };
          let line = `attention: ${n} tokens, K ${K}, C ${C} (${H} heads): ${ms.toFixed(1)} ms, ${(n / ms / 1000).toFixed(2)} M tokens/s, ${(gflop / (ms / 1000)).toFixed(1)} GFLOP/s`;
          if (usePeer) {
            const p = peer(['attention', String(n), String(K), String(C), String(H), String(runs), String(threads)], 600_000);
            if (typeof p === 'string') line += `; peer: ${p}`;
            else { row.peer = { ...p, ratio: p.ms / ms }; line += `; PyTorch ${p.ms.toFixed(1)} ms → ${(p.ms / ms).toFixed(2)}×`; }
          }
          if (f.has('rpe')) {
            const bound = Math.floor(0.8 * K);
            let t = 7;
            const table = Float32Array.from({ length: 3 * (2 * bound + 1) * H }, () => { t = (Math.imul(t, 1664525) + 1013904223) >>> 0; return t / 2 ** 37 - 2 ** -6; });
            const xyz = Int32Array.from({ length: 3 * n }, (_, i) => Math.floor(Math.floor(i / 3) / 64 ** (i % 3)) % 64);
            const rpe = { table, bound, xyz };
            await windowAttention(q, k, v, H, plan, undefined, rpe);
            const tr: number[] = [];
            for (let r = 0; r < runs; r++) { const t0 = performance.now(); await windowAttention(q, k, v, H, plan, undefined, rpe); tr.push(performance.now() - t0); }
            const rms = median(tr);
            row.rpe = { bound, ms: rms, ratioToNoRpe: rms / ms };
            line += `; with RPE (bound ${bound}): ${rms.toFixed(1)} ms = ${(rms / ms).toFixed(2)}× the time without`;
          }
          console.log(line);
          rows.push(row);
        }
      result.attention = rows;
    }
    if (f.has('json')) console.log(JSON.stringify(result));
    return 0;
  },
};
