// `tessera bench attention`: Tessera fp32 and bf16 against onnxruntime-node's
// opset-23 Attention op on the same inputs in the same run (settings as in
// /work/shared/baselines/bench_ort.js: intraOpNumThreads 2, interOpNumThreads 1,
// sequential, graphOptimizationLevel all, preallocated output via fetches).
import { encodeHalf, decodeHalf } from '../dtype.js';
import { KVCache } from '../kvcache.js';
import { native } from '../native.js';
import { attention, type AttentionMask } from '../ops/attention.js';
import { getThreads, hostPoolStats } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { onnxAttentionModel } from '../bench/onnx_attention.js';
import { randomUniform, timeAlternating, type Contender } from '../bench/timing.js';
import { parseArgs, type Command } from './args.js';

const VAR_SCALES = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];

interface AttentionCase {
  name: string;
  B: number; H: number; Lq: number; Lk: number; D: number;
  mask: 'none' | 'causal' | 'block';
  /** Decode step: keys/values live in a KVCache. */
  kvCache?: boolean;
}

const CASES: AttentionCase[] = [
  { name: 'var_d16', B: 2, H: 16, Lq: 680, Lk: 680, D: 64, mask: 'block' },
  { name: 'llamagen', B: 2, H: 16, Lq: 256, Lk: 256, D: 64, mask: 'causal' },
  { name: 'decode', B: 2, H: 16, Lq: 1, Lk: 1024, D: 64, mask: 'none', kvCache: true },
  { name: 'long_d64', B: 1, H: 16, Lq: 4096, Lk: 4096, D: 64, mask: 'causal' },
  { name: 'long_d128', B: 1, H: 16, Lq: 4096, Lk: 4096, D: 128, mask: 'causal' },
];

/** Visible (query, key) pairs of one (batch, head): masked tiles do no useful work. */
function visiblePairs(c: AttentionCase): number {
  if (c.mask === 'none') return c.Lq * c.Lk;
  if (c.mask === 'causal') {  // bottom-right aligned: query i sees Lk - Lq + i + 1 keys
    let n = 0;
    for (let i = 0; i < c.Lq; i++) n += Math.max(0, Math.min(c.Lk, c.Lk - c.Lq + i + 1));
    return n;
  }
  let n = 0, seen = 0;
  for (const s of VAR_SCALES) { seen += s * s; n += s * s * seen; }
  return n;
}

function blockMaskBits(Lq: number, Lk: number): Uint8Array {
  const stage: number[] = [];
  VAR_SCALES.forEach((s, i) => { for (let j = 0; j < s * s; j++) stage.push(i); });
  const bits = new Uint8Array(Lq * Lk);
  for (let i = 0; i < Lq; i++) for (let j = 0; j < Lk; j++) bits[i * Lk + j] = stage[i]! >= stage[j]! ? 1 : 0;
  return bits;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// onnxruntime-node is a devDependency: users' installs may not have it.
type Ort = typeof import('onnxruntime-node');
async function loadOrt(): Promise<Ort | string> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    return (e as Error).message.split('\n')[0]!;
  }
}

interface CaseResult {
  case: string;
  shape: { B: number; H: number; Lq: number; Lk: number; D: number; mask: string };
  usefulGflop: number;
  ms: Record<string, number>;
  gflops: Record<string, number>;
  speedupVsOrt?: { fp32: number; bf16: number };
  maxAbsDiff: Record<string, number>;
  kvFloor?: { bytesFp32: number; bandwidthGBs: number; floorMsFp32: number; floorMsBf16: number; ratioFp32: number; ratioBf16: number; readGBs?: number; readRatioFp32?: number };
  callBreakdown?: CallBreakdown;
}

/** Where one fp32 decode call's wall time goes (means over a separate run of calls). */
interface CallBreakdown {
  calls: number;
  wallMs: number;
  /** call -> native start on a libuv thread */
  queueMs: number;
  /** the native call (validation, kernel, thread-pool hand-off) */
  nativeMs: number;
  /** native end -> promise resolution on the main thread */
  returnMs: number;
  /** per pool job: published -> worker running; caller done -> workers done */
  poolWakeMs: number;
  poolJoinMs: number;
  workerSleepsPerJob: number;
  spinUs: number;
}

interface AttentionTimingsAddon {
  attentionTimings?(reset: boolean): {
    calls: number; queueUs: number; nativeUs: number; returnUs: number;
    pool: { jobs: number; workerStarts: number; workerSleeps: number; callerSleeps: number; wakeUs: number; joinUs: number; spinUs: number };
  };
}

async function callBreakdown(run: () => Promise<unknown>, minMs: number): Promise<CallBreakdown | undefined> {
  const addon = native() as unknown as AttentionTimingsAddon;
  if (typeof addon.attentionTimings !== 'function') return undefined;
  for (let i = 0; i < 5; i++) await run();
  addon.attentionTimings(true);
  const walls: number[] = [];
  let total = 0;
  while (walls.length < 50 || total < minMs) {
    const t0 = process.hrtime.bigint();
    await run();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    walls.push(ms);
    total += ms;
  }
  const t = addon.attentionTimings(true), p = t.pool, n = t.calls;
  return {
    calls: n, wallMs: total / walls.length, queueMs: t.queueUs / n / 1e3, nativeMs: t.nativeUs / n / 1e3,
    returnMs: t.returnUs / n / 1e3, poolWakeMs: p.workerStarts ? p.wakeUs / p.workerStarts / 1e3 : 0,
    poolJoinMs: p.jobs ? p.joinUs / p.jobs / 1e3 : 0, workerSleepsPerJob: p.jobs ? p.workerSleeps / p.jobs : 0, spinUs: p.spinUs,
  };
}

async function benchCase(c: AttentionCase, ort: Ort | undefined, ortThreads: number, minMs: number, settleMs: number): Promise<CaseResult> {
  const { B, H, Lq, Lk, D } = c;
  const scale = 1 / Math.sqrt(D);
  const Q = randomUniform(B * H * Lq * D, 1), K = randomUniform(B * H * Lk * D, 2), V = randomUniform(B * H * Lk * D, 3);
  const mask: AttentionMask = c.mask === 'block' ? { blockCausal: VAR_SCALES.map((s) => s * s) } : c.mask;
  const contenders: Contender[] = [];
  const outputs: Record<string, () => Float32Array> = {};
  const disposers: (() => void)[] = [];

  for (const dtype of ['float32', 'bfloat16'] as const) {
    const label = dtype === 'float32' ? 'tessera_fp32' : 'tessera_bf16';
    const wrap = (a: Float32Array, shape: number[]) =>
      dtype === 'float32' ? Tensor.from(a, shape) : Tensor.from(encodeHalf(a, 'bfloat16'), shape, 'bfloat16');
    const q = wrap(Q, [B, H, Lq, D]);
    const out = Tensor.empty([B, H, Lq, D], dtype);
    if (c.kvCache) {
      const cache = KVCache.create(B, H, Lk, D, { dtype });
      await cache.append(wrap(K, [B, H, Lk, D]), wrap(V, [B, H, Lk, D]));
      contenders.push({ name: label, run: () => cache.attend(q, { out, scale }) });
      disposers.push(() => cache.dispose());
    } else {
      const k = wrap(K, [B, H, Lk, D]), v = wrap(V, [B, H, Lk, D]);
      contenders.push({ name: label, run: () => attention({ q, k, v, out, scale, mask }) });
    }
    outputs[label] = () => (dtype === 'float32' ? (out.data as Float32Array) : decodeHalf(out.data as Uint16Array, 'bfloat16'));
    disposers.push(() => out.dispose());
  }

  let session: Awaited<ReturnType<Ort['InferenceSession']['create']>> | undefined;
  if (ort) {
    const model = onnxAttentionModel({ B, H, Lq, Lk, D, scale, mask: c.mask === 'block' ? blockMaskBits(Lq, Lk) : c.mask });
    session = await ort.InferenceSession.create(model, {
      intraOpNumThreads: ortThreads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    });
    const feeds = {
      Q: new ort.Tensor('float32', Q, [B, H, Lq, D]),
      K: new ort.Tensor('float32', K, [B, H, Lk, D]),
      V: new ort.Tensor('float32', V, [B, H, Lk, D]),
    };
    const O = new Float32Array(B * H * Lq * D);
    const fetches = { O: new ort.Tensor('float32', O, [B, H, Lq, D]) };
    const s = session;
    contenders.push({ name: 'ort_fp32', run: () => s.run(feeds, fetches) });
    outputs.ort_fp32 = () => O;
  }

  const ms = await timeAlternating(contenders, { minMs, settleMs });
  const usefulFlop = 4 * B * H * visiblePairs(c) * D;
  const result: CaseResult = {
    case: c.name, shape: { B, H, Lq, Lk, D, mask: c.mask }, usefulGflop: usefulFlop / 1e9,
    ms: Object.fromEntries(ms), gflops: Object.fromEntries([...ms].map(([k, t]) => [k, usefulFlop / t / 1e6])),
    maxAbsDiff: {},
  };
  const ref = outputs.ort_fp32 ? outputs.ort_fp32() : outputs.tessera_fp32!();
  for (const [name, get] of Object.entries(outputs)) if (get() !== ref) result.maxAbsDiff[name] = maxAbsDiff(get(), ref);
  if (ms.has('ort_fp32')) {
    const ortMs = ms.get('ort_fp32')!;
    result.speedupVsOrt = { fp32: ortMs / ms.get('tessera_fp32')!, bf16: ortMs / ms.get('tessera_bf16')! };
  }
  if (c.kvCache) {
    const bytesFp32 = 2 * B * H * Lk * D * 4;
    const addon = native();
    if (typeof addon.measureCopyBandwidth === 'function') {
      const gbs = await addon.measureCopyBandwidth(getThreads(), bytesFp32);
      const floorMsFp32 = bytesFp32 / (gbs * 1e9) * 1e3;
      // The streaming-read bandwidth over as many bytes, for comparison (the floor is the copy one).
      const readGBs = typeof addon.measureReadBandwidth === 'function' ? await addon.measureReadBandwidth(getThreads(), bytesFp32) : undefined;
      result.kvFloor = {
        bytesFp32, bandwidthGBs: gbs, floorMsFp32, floorMsBf16: floorMsFp32 / 2,
        ratioFp32: ms.get('tessera_fp32')! / floorMsFp32, ratioBf16: ms.get('tessera_bf16')! / (floorMsFp32 / 2),
        readGBs, readRatioFp32: readGBs ? ms.get('tessera_fp32')! / (bytesFp32 / (readGBs * 1e9) * 1e3) : undefined,
      };
    }
  }
  if (c.kvCache) result.callBreakdown = await callBreakdown(contenders[0]!.run, Math.min(minMs, 500));
  await session?.release();
  for (const d of disposers) d();
  return result;
}

function printCase(r: CaseResult): void {
  const { B, H, Lq, Lk, D, mask } = r.shape;
  console.log(`\n${r.case}: B=${B} H=${H} Lq=${Lq} Lk=${Lk} D=${D} mask=${mask}  (useful ${r.usefulGflop.toFixed(3)} GFLOP)`);
  for (const name of Object.keys(r.ms)) {
    const diff = r.maxAbsDiff[name] === undefined ? '' : `  max|diff| ${r.maxAbsDiff[name]!.toExponential(1)}`;
    console.log(`  ${name.padEnd(13)} ${r.ms[name]!.toFixed(3).padStart(9)} ms  ${r.gflops[name]!.toFixed(1).padStart(7)} GFLOP/s${diff}`);
  }
  if (r.speedupVsOrt)
    console.log(`  speed-up vs ORT (ORT ms / Tessera ms): fp32 ${r.speedupVsOrt.fp32.toFixed(2)}x, bf16 ${r.speedupVsOrt.bf16.toFixed(2)}x`);
  if (r.kvFloor) {
    const f = r.kvFloor;
    console.log(`  KV read floor at ${f.bandwidthGBs.toFixed(1)} GB/s copy bandwidth: fp32 ${f.floorMsFp32.toFixed(3)} ms ` +
      `(Tessera ${f.ratioFp32.toFixed(2)}x of it), bf16 ${f.floorMsBf16.toFixed(3)} ms (${f.ratioBf16.toFixed(2)}x)`);
    if (f.readGBs !== undefined && f.readRatioFp32 !== undefined)
      console.log(`  (streaming read of the same bytes: ${f.readGBs.toFixed(1)} GB/s; fp32 Tessera ${f.readRatioFp32.toFixed(2)}x of that time)`);
  }
  if (r.callBreakdown) {
    const b = r.callBreakdown, f = (x: number) => x.toFixed(3);
    console.log(`  fp32 call breakdown (means of ${b.calls} calls): wall ${f(b.wallMs)} ms = queue ${f(b.queueMs)} + native ${f(b.nativeMs)} ` +
      `+ return ${f(b.returnMs)} + JS ${f(b.wallMs - b.queueMs - b.nativeMs - b.returnMs)}; ` +
      `pool wake ${f(b.poolWakeMs)}, join ${f(b.poolJoinMs)} ms, ${b.workerSleepsPerJob.toFixed(2)} worker sleeps/job (spin ${b.spinUs} us)`);
  }
}

export const benchAttentionCommand: Command = {
  name: 'attention',
  summary: 'fused attention, Tessera fp32/bf16 vs onnxruntime-node Attention (opset 23)',
  usage: `Usage: tessera bench attention [--case <name>] [--json] [--min-ms <ms>] [--ort-threads <n>]

For each case: median ms (>= 7 runs and >= 1 s each, after warm-up, Tessera
and ORT runs alternated in ~40 ms turns, each after an idle pause: ORT's
intra-op threads spin for ~40 ms after its last run and would otherwise slow
the next contender) and useful GFLOP/s = 4*B*H*D*(visible query-key
pairs): masked tiles are not counted. The peer is onnxruntime-node's standard
opset-23 Attention op on the same inputs (skipped when onnxruntime-node is not
installed). The decode case reads a KVCache and is also compared with the time
to stream the cache at the measured copy bandwidth.

Cases: ${CASES.map((c) => c.name).join(', ')}

Options:
  --case <name>      run only cases whose name contains <name>
  --json             print results as JSON
  --min-ms <ms>      minimum measured time per contender and case (default 1000)
  --ort-threads <n>  ORT intraOpNumThreads (default 2)
  --settle-ms <ms>   idle pause before each contender's turn (default 60)
  Threads of Tessera: TESSERA_NUM_THREADS (default: physical cores).`,
  async run(argv) {
    const args = parseArgs(argv, ['case', 'min-ms', 'ort-threads', 'settle-ms']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const filter = args.flags.get('case');
    const cases = CASES.filter((c) => typeof filter !== 'string' || c.name.includes(filter));
    if (cases.length === 0) {
      console.error(`no case matches ${String(filter)}; cases: ${CASES.map((c) => c.name).join(', ')}`);
      return 2;
    }
    const json = args.flags.has('json');
    const minMs = Number(args.flags.get('min-ms') ?? 1000);
    const ortThreads = Number(args.flags.get('ort-threads') ?? 2);
    const settleMs = Number(args.flags.get('settle-ms') ?? 60);
    for (const [name, v, min] of [['min-ms', minMs, 1], ['ort-threads', ortThreads, 1], ['settle-ms', settleMs, 0]] as const) {
      if (!Number.isInteger(v) || v < min) {
        console.error(`--${name} must be an integer >= ${min}, got ${String(args.flags.get(name))}`);
        return 2;
      }
    }
    const ort = await loadOrt();
    const header = {
      threads: getThreads(), ortThreads, settleMs,
      ort: typeof ort === 'string' ? `skipped (onnxruntime-node not installed: ${ort})` : ort.env.versions.common,
    };
    if (!json) {
      console.log(`tessera bench attention: ${header.threads} Tessera threads; ` +
        (typeof ort === 'string' ? `peer ${header.ort}` : `peer onnxruntime-node ${header.ort}, opset-23 Attention, intraOpNumThreads ${ortThreads}`) +
        `; each turn after ${settleMs} ms idle`);
    }
    const results: CaseResult[] = [];
    for (const c of cases) {
      const r = await benchCase(c, typeof ort === 'string' ? undefined : ort, ortThreads, minMs, settleMs);
      results.push(r);
      if (!json) printCase(r);
    }
    const footer = { peakRssMiB: process.resourceUsage().maxRSS / 1024, hostPool: hostPoolStats() };
    if (json) {
      console.log(JSON.stringify({ ...header, results, ...footer }, null, 2));
    } else {
      console.log(`\npeak RSS ${footer.peakRssMiB.toFixed(0)} MiB; Tessera host pool: ${(footer.hostPool.bytesInUse / 2 ** 20).toFixed(1)} MiB in use, ` +
        `${(footer.hostPool.bytesCached / 2 ** 20).toFixed(1)} MiB cached, ${footer.hostPool.freshAllocations}/${footer.hostPool.allocations} allocations fresh`);
    }
    return 0;
  },
};
