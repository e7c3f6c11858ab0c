// `tessera bench gemm`: linear layers in GFLOP/s against the FMA peak
// measured in the same run on the same threads.
import { native } from '../native.js';
import { linear, packWeight, type PackedWeight } from '../ops/gemm.js';
import { getThreads } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { median, randomUniform, timeAlternating } from '../bench/timing.js';
import { parseArgs, type Command } from './args.js';

interface GemmCase { name: string; M: number; N: number; K: number }

const CASES: GemmCase[] = [
  { name: 'square_1024x4096x1024', M: 1024, N: 4096, K: 1024 },
  { name: 'mlp_down_1024x1024x4096', M: 1024, N: 1024, K: 4096 },
  { name: 'small_256x1024x1024', M: 256, N: 1024, K: 1024 },
  { name: 'decode_1x4096x1024', M: 1, N: 4096, K: 1024 },
  // Weight streaming: LlamaGen decode with CFG (M = 2), VAR's first scales (M = 2, 8, 18, 32 per image).
  { name: 'decode_2x4096x1024', M: 2, N: 4096, K: 1024 },
  { name: 'cfg_2x768x3072', M: 2, N: 768, K: 3072 },
  { name: 'var_8x3072x768', M: 8, N: 3072, K: 768 },
  { name: 'var_18x1024x4096', M: 18, N: 1024, K: 4096 },
  { name: 'var_32x1024x4096', M: 32, N: 1024, K: 4096 },
];
/** Up to this M a case is weight-streaming: timed over copies of the weight that together exceed the caches. */
const STREAM_MAX_M = 32;

interface GemmResult {
  case: string; M: number; N: number; K: number;
  ms: Record<string, number>;
  gflops: Record<string, number>;
  percentOfPeak: Record<string, number>;
  /** Weight bytes streamed per second (decode is bandwidth-bound). */
  weightGBs: Record<string, number>;
  /** Small M: packed weight copies cycled through per timed run, and time / (weight bytes / copy bandwidth). */
  copies?: number;
  xFloor?: Record<string, number>;
  /** Copy bandwidth measured in turns with this case's GEMMs (GB/s): the floor's denominator. */
  copyGBs?: number;
}

export const benchGemmCommand: Command = {
  name: 'gemm',
  summary: 'linear layers (fp32 and bf16 packed weights) as % of the measured FMA peak',
  usage: `Usage: tessera bench gemm [--case <name>] [--json] [--min-ms <ms>]

y = x·Wᵀ (M×K times K×N, PyTorch weight layout) with weights packed once,
fp32 and bf16 compute, median of >= 7 runs and >= 1 s each after warm-up.
GFLOP/s = 2·M·N·K / time, printed with the fraction of the FMA peak measured
in the same run on the pool's threads (fp32 FMA for fp32, the bf16 dot
product for bf16).

Cases with M <= ${STREAM_MAX_M} are bound by reading the weight once: each timed run
cycles through enough packed copies of the weight (--stream-mb in all, per
dtype) that they come from memory, not the last-level cache, and the time per
call is printed against the weight-read floor, packed weight bytes / the copy
bandwidth (measure_copy_bandwidth, 256 MiB) measured in turns with the case's
GEMMs, so that both see the same load.

Cases: ${CASES.map((c) => c.name).join(', ')}

Options:
  --case <name>   run only cases whose name contains <name>
  --json          print results as JSON
  --min-ms <ms>   minimum measured time per variant and case (default 1000)
  --stream-mb <n> small-M cases: MB of packed weight copies per dtype (default 512)`,
  async run(argv) {
    const args = parseArgs(argv, ['case', 'min-ms', 'stream-mb']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const filter = args.flags.get('case');
    const cases = CASES.filter((c) => typeof filter !== 'string' || c.name.includes(filter));
    if (cases.length === 0) {
      console.error(`no case matches ${String(filter)}; cases: ${CASES.map((c) => c.name).join(', ')}`);
      return 2;
    }
    const json = args.flags.has('json');
    const minMs = Number(args.flags.get('min-ms') ?? 1000);
    const streamMb = Number(args.flags.get('stream-mb') ?? 512);
    if (!(minMs > 0) || !(streamMb > 0)) {
      console.error('--min-ms and --stream-mb must be positive numbers');
      return 2;
    }
    const threads = getThreads();
    const peak = {
      fp32: await native().measureFmaPeak(threads, false),
      bf16: await native().measureFmaPeak(threads, true),
    };
    if (!json) {
      console.log(`tessera bench gemm: ${threads} threads; measured peak fp32 ${peak.fp32.toFixed(0)} GFLOP/s, ` +
        `bf16 ${peak.bf16.toFixed(0)} GFLOP/s`);
    }
    const results: GemmResult[] = [];
    for (const c of cases) {
      const { M, N, K } = c;
      const x = Tensor.from(randomUniform(M * K, 11), [M, K]);
      const w = Tensor.from(randomUniform(N * K, 12), [N, K]);
      const out = Tensor.empty([M, N]);
      const stream = M <= STREAM_MAX_M;
      // Small M: copies of the packed weight (fp32 count; bf16 gets twice as many, the same bytes) cycled per run.
      const copies = stream ? Math.max(1, Math.ceil((streamMb * 2 ** 20) / (4 * N * K))) : 1;
      const bf16Copies = stream ? 2 * copies : 1;
      const packedF32: PackedWeight[] = [], packedBf16: PackedWeight[] = [];
      for (let i = 0; i < copies; i++) packedF32.push(await packWeight(w, { compute: 'float32' }));
      for (let i = 0; i < bf16Copies; i++) packedBf16.push(await packWeight(w, { compute: 'bfloat16' }));
      const sweep = (packed: PackedWeight[]) => async () => { for (const p of packed) await linear({ x, packed: p, out }); };
      // Small M: the copy bandwidth is measured as a third contender, in turns with the GEMMs, so the
      // floor sees the same machine (on a shared machine the bandwidth drifts within seconds).
      const bandwidths: number[] = [];
      const contenders = [
        { name: 'fp32', run: sweep(packedF32) },
        { name: 'bf16', run: sweep(packedBf16) },
        ...(stream ? [{ name: 'copy', run: async () => { bandwidths.push(await native().measureCopyBandwidth(threads, 256 << 20)); } }] : []),
      ];
      const ms = await timeAlternating(contenders, { minMs });
      ms.delete('copy');
      const caseGBs = median(bandwidths);
      const flop = 2 * M * N * K;
      const r: GemmResult = { case: c.name, M, N, K, ms: {}, gflops: {}, percentOfPeak: {}, weightGBs: {} };
      if (stream) { r.copies = copies; r.xFloor = {}; r.copyGBs = caseGBs; }
      for (const [name, sweepMs] of ms) {
        const t = sweepMs / (name === 'fp32' ? packedF32.length : packedBf16.length);
        const bytes = name === 'fp32' ? packedF32[0]!.bytes : packedBf16[0]!.bytes;
        r.ms[name] = t;
        r.gflops[name] = flop / t / 1e6;
        r.percentOfPeak[name] = (100 * r.gflops[name]!) / peak[name as 'fp32' | 'bf16'];
        r.weightGBs[name] = bytes / t / 1e6;
        if (r.xFloor) r.xFloor[name] = t / (bytes / caseGBs / 1e6);
      }
      results.push(r);
      if (!json) {
        console.log(`\n${c.name}: M=${M} N=${N} K=${K}` +
          (stream ? ` (${copies} fp32 / ${bf16Copies} bf16 weight copies cycled; copy bandwidth ${caseGBs.toFixed(1)} GB/s, ` +
            `median of ${bandwidths.length} in turns with the GEMMs)` : ''));
        for (const name of Object.keys(r.ms)) {
          const bw = stream ? `  weights ${r.weightGBs[name]!.toFixed(1)} GB/s = ${r.xFloor![name]!.toFixed(2)}x the floor` : '';
          console.log(`  ${name}  ${r.ms[name]!.toFixed(3).padStart(9)} ms  ${r.gflops[name]!.toFixed(1).padStart(7)} GFLOP/s  ` +
            `${r.percentOfPeak[name]!.toFixed(1).padStart(5)}% of peak${bw}`);
        }
      }
      for (const p of [...packedF32, ...packedBf16]) p.dispose();
      out.dispose();
    }
    if (json) console.log(JSON.stringify({ threads, peakGflops: peak, results }, null, 2));
    return 0;
  },
};
