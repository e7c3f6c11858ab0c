// `tessera bench splat`: the CPU 3DGS rasterizer's forward and backward in ms
// per frame on random scenes shaped like fitted ones, with the work counted
// (visible Gaussians, tile intersections, blended Gaussians per pixel) and
// the peak extra memory (RSS and the native pool).
import { emptyScene, type GaussianScene } from '../io/gaussian-scene.js';
import { native } from '../native.js';
import { getThreads } from '../runtime.js';
import { lookAt, type PinholeCamera } from '../splat/camera.js';
import { SeededRandom } from '../splat/random.js';
import { render, renderBackward, type SplatMode } from '../splat/render.js';
import { median } from '../bench/timing.js';
import { parseArgs, type Command } from './args.js';

interface SplatCase { name: string; gaussians: number; width: number; height: number }

// Ascending memory order: the process's peak RSS then belongs to the case that raised it.
const CASES: SplatCase[] = [
  { name: '100k_1280x720', gaussians: 100_000, width: 1280, height: 720 },
  { name: '100k_1920x1080', gaussians: 100_000, width: 1920, height: 1080 },
  { name: '1M_1280x720', gaussians: 1_000_000, width: 1280, height: 720 },
  { name: '1M_1920x1080', gaussians: 1_000_000, width: 1920, height: 1080 },
];

/**
 * A scene in a ball of radius 2 shaped like a fitted one: 80% of the
 * Gaussians on surfaces (a sphere and a ground plane) as flat discs, 20%
 * floaters in the volume; log-normal scales (median 1.2·N^(-1/3)·radius, so
 * the surfaces stay covered at any count, σ = 0.6 in log space: most are
 * small, a few large); opacities sigmoid(N(1, 2)) (many nearly opaque, some
 * faint); SH degree 3 with small view-dependent terms.
 */
export function benchScene(n: number, seed = 1): GaussianScene {
  const rng = new SeededRandom(seed);
  const s = emptyScene(n, 3);
  const base = Math.log(2 * 1.2 * n ** (-1 / 3));
  for (let i = 0; i < n; i++) {
    const kind = rng.uniform();
    let m: number[], flat: number;  // flat: which axis is thin
    if (kind < 0.5) {  // sphere of radius 1.2
      const v = [rng.normal(), rng.normal(), rng.normal()], l = Math.hypot(v[0]!, v[1]!, v[2]!);
      m = v.map((x) => (1.2 * x) / l);
      flat = 2;
    } else if (kind < 0.8) {  // ground plane y = 1.3 (y down)
      m = [rng.range(-2.5, 2.5), 1.3, rng.range(-2.5, 2.5)];
      flat = 1;
    } else {
      m = [rng.range(-2, 2), rng.range(-2, 2), rng.range(-2, 2)];
      flat = -1;
    }
    s.means.set(m, 3 * i);
    for (let k = 0; k < 3; k++) s.logScales[3 * i + k] = base + 0.6 * rng.normal() + (k === flat ? -1.5 : 0);
    const q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
    if (flat >= 0) { q[1] = 0.1 * q[1]!; q[2] = 0.1 * q[2]!; q[3] = 0.1 * q[3]!; }  // near identity: the thin axis stays put
    s.rotations.set(q, 4 * i);
    s.opacityLogits[i] = 1 + 2 * rng.normal();
    for (let c = 0; c < 3; c++) s.sh[48 * i + c] = rng.range(-1.2, 1.2);
    for (let k = 1; k < 16; k++) for (let c = 0; c < 3; c++) s.sh[48 * i + 3 * k + c] = 0.05 * rng.normal();
  }
  return s;
}

function benchCamera(width: number, height: number): PinholeCamera {
  return lookAt([1.5, -1.6, -4.5], [0, 0.2, 0], { width, height, fovY: Math.PI / 3 });
}

type Stages = Record<string, { wallMs: number; cpuMs: number }>;
interface Timed { wallMs: number; cpuMs: number; stages: Stages }

/**
 * Median wall time and the process CPU time (all threads, getrusage) per run,
 * and the native stage times (wall and process CPU ms per stage, mean per run).
 */
async function timeRuns(run: () => Promise<Stages | undefined>, runs: number): Promise<Timed> {
  await run();  // warm-up: fills the pool, so the timed runs reuse its blocks
  const wall: number[] = [];
  const stages: Stages = {};
  const c0 = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const st = await run();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    for (const [k, t] of Object.entries(st ?? {})) {
      const d = (stages[k] ??= { wallMs: 0, cpuMs: 0 });
      d.wallMs += t.wallMs / runs;
      d.cpuMs += t.cpuMs / runs;
    }
  }
  const c = process.cpuUsage(c0);
  return { wallMs: median(wall), cpuMs: (c.user + c.system) / 1000 / runs, stages };
}

/** "project 12.3 (cpu 20.1)" for the stages that took time. */
function stageLine(st: Stages): string {
  return Object.entries(st).filter(([, t]) => t.wallMs > 0.005 || t.cpuMs > 0.005)
    .map(([k, t]) => `${k} ${t.wallMs.toFixed(1)} (cpu ${t.cpuMs.toFixed(1)})`).join(', ');
}

const MB = 1024 * 1024;

export const benchSplatCommand: Command = {
  name: 'splat',
  summary: '3DGS rasterizer forward/backward ms per frame, work counts and peak memory',
  usage: `Usage: tessera bench splat [--case <name>] [--runs N] [--mode classic|antialiased] [--no-backward] [--fresh-outputs] [--json]

Random scenes shaped like fitted ones (lib/cli/bench_splat.ts benchScene: surface
discs and floaters, log-normal scales, SH degree 3), one camera, median of N
runs after a warm-up. Prints wall ms and process CPU ms (getrusage, all
threads) per frame, the native stage times (wall and CPU ms per stage: prepare,
project, bin, blend, blendBackward, projectBackward), the work (visible
Gaussians, tile intersections, blended Gaussians per pixel) and the peak extra memory.
The forward writes into output images reused across runs (render's into
option) and the backward into gradient arrays reused across runs
(renderBackward's into option), as a viewer or fitting loop does;
--fresh-outputs makes the forward allocate its images per call instead. Peak memory: RSS (process peak minus the
RSS before the case; cases run in ascending size) and native pool bytes
(in use + cached after the case minus before; the pool keeps its high water).

Targets (issue 5, 2 cores): 1M at 1280x720 forward <= 60 ms, backward <= 3x
forward, peak extra memory for 1M at 1920x1080 <= 600 MB.

Cases: ${CASES.map((c) => c.name).join(', ')}

Options:
  --case <name>   run only cases whose name contains <name>
  --runs N        timed runs per measurement (default 5)
  --mode M        classic (default) or antialiased
  --no-backward   forward only
  --fresh-outputs the forward returns freshly allocated images every call
  --json          print results as JSON`,
  async run(argv) {
    const args = parseArgs(argv, ['case', 'runs', 'mode']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const filter = args.flags.get('case');
    const cases = CASES.filter((c) => typeof filter !== 'string' || c.name.includes(filter));
    if (cases.length === 0) { console.error(`no case matches ${String(filter)}; cases: ${CASES.map((c) => c.name).join(', ')}`); return 2; }
    const runs = Number(args.flags.get('runs') ?? 5);
    const mode = (args.flags.get('mode') ?? 'classic') as SplatMode;
    const json = args.flags.has('json'), backward = !args.flags.has('no-backward'), fresh = args.flags.has('fresh-outputs');
    const addon = native();
    if (!json) console.log(`tessera bench splat: ${getThreads()} threads, ${addon.cpuInfo().isa}, mode ${mode}, SH 3, ${runs} runs`);
    const scenes = new Map<number, GaussianScene>();
    const results: Record<string, unknown>[] = [];
    for (const c of cases) {
      if (!scenes.has(c.gaussians)) { scenes.clear(); scenes.set(c.gaussians, benchScene(c.gaussians)); }
      const scene = scenes.get(c.gaussians)!, cam = benchCamera(c.width, c.height);
      addon.hostPoolTrim();
      const pool0 = addon.hostPoolStats(), rss0 = process.memoryUsage().rss;
      let counts = { visible: 0, intersections: 0, blendedPerPixel: 0 };
      // Output images reused across runs (render's into option), as a viewer
      // or fitting loop keeps them; --fresh-outputs allocates them per call.
      const P = c.width * c.height;
      const targets = fresh ? undefined : [{
        rgb: new Float32Array(3 * P), alpha: new Float32Array(P), depth: new Float32Array(P), contributors: new Int32Array(P),
      }];
      const fwd = await timeRuns(async () => {
        const { views: [v], stats } = await render(scene, cam, { mode, into: targets });
        const n = v!.contributors.data as Int32Array;
        let sum = 0;
        for (let i = 0; i < n.length; i++) sum += n[i]!;
        counts = { visible: stats.visible, intersections: stats.intersections, blendedPerPixel: sum / n.length };
        return stats.stages;
      }, runs);
      let bwd: Timed | undefined;
      if (backward) {
        const g = new Float32Array(c.width * c.height * 3);
        for (let i = 0; i < g.length; i++) g[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
        // Gradient arrays reused across runs, as a fitting loop keeps them
        // (fresh ones would add the first touch of 236 MB at 1M to every call).
        const K = (scene.shDegree + 1) ** 2, n = scene.count;
        const into = {
          means: new Float32Array(3 * n), logScales: new Float32Array(3 * n), rotations: new Float32Array(4 * n),
          opacityLogits: new Float32Array(n), sh: new Float32Array(3 * K * n),
        };
        bwd = await timeRuns(async () => (await renderBackward(scene, cam, [{ rgb: g }], { mode, into })).stats.stages, runs);
      }
      const pool1 = addon.hostPoolStats();
      const peakRss = process.resourceUsage().maxRSS * 1024 - rss0;
      const poolBytes = pool1.bytesInUse + pool1.bytesCached - (pool0.bytesInUse + pool0.bytesCached);
      const r = { case: c.name, ...counts, forward: fwd, backward: bwd, peakExtraRssMB: peakRss / MB, poolMB: poolBytes / MB };
      results.push(r);
      if (!json) {
        const t = (x: Timed) => `${x.wallMs.toFixed(1).padStart(7)} ms (cpu ${x.cpuMs.toFixed(0)} ms)`;
        console.log(`\n${c.name}: ${(counts.visible / 1e3).toFixed(0)}k visible, ${(counts.intersections / 1e6).toFixed(2)}M tile intersections, ` +
          `${counts.blendedPerPixel.toFixed(1)} blended/pixel`);
        console.log(`  forward  ${t(fwd)}${bwd ? `\n  backward ${t(bwd)}  (${(bwd.wallMs / fwd.wallMs).toFixed(2)}x forward)` : ''}`);
        console.log(`  forward stages, ms:  ${stageLine(fwd.stages)}`);
        if (bwd) console.log(`  backward stages, ms: ${stageLine(bwd.stages)}`);
        console.log(`  peak extra memory: RSS ${r.peakExtraRssMB.toFixed(0)} MB, native pool ${r.poolMB.toFixed(0)} MB`);
      }
    }
    if (json) console.log(JSON.stringify({ threads: getThreads(), mode, runs, results }, null, 2));
    return 0;
  },
};
