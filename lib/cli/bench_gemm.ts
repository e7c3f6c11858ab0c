// `tessera bench gemm`: linear layers in GFLOP/s against the FMA peak
// measured in the same run on the same threads.
import { native } from '../native.js';
import { linear, packWeight } from '../ops/gemm.js';
import { getThreads } from '../runtime.js';
import { Tensor } from '../tensor.js';
import { randomUniform, timeAlternating } from '../bench/timing.js';
import { parseArgs, type Command } from './args.js';

interface GemmCase { name: string; M: number; N: number; K: number }

const CASES: GemmCase[] = [
  { name: 'square_1024x4096x1024', M: 1024, N: 4096, K: 1024 },
  { name: 'mlp_down_1024x1024x4096', M: 1024, N: 1024, K: 4096 },
  { name: 'small_256x1024x1024', M: 256, N: 1024, K: 1024 },
  { name: 'decode_1x4096x1024', M: 1, N: 4096, K: 1024 },
];

interface GemmResult {
  case: string; M: number; N: number; K: number;
  ms: Record<string, number>;
  gflops: Record<string, number>;
  percentOfPeak: Record<string, number>;
  /** Weight bytes streamed per second (decode is bandwidth-bound). */
  weightGBs: Record<string, number>;
}

export const benchGemmCommand: Command = {
  name: 'gemm',
  summary: 'linear layers (fp32 and bf16 packed weights) as % of the measured FMA peak',
  usage: `Usage: tessera bench gemm [--case <name>] [--json] [--min-ms <ms>]

y = x·Wᵀ (M×K times K×N, PyTorch weight layout) with weights packed once,
fp32 and bf16 compute, median of >= 7 runs and >= 1 s each after warm-up.
GFLOP/s = 2·M·N·K / time, printed with the fraction of the FMA peak measured
in the same run on the pool's threads (fp32 FMA for fp32, the bf16 dot
product for bf16). M=1 is a decode step: weight GB/s is printed too.

Cases: ${CASES.map((c) => c.name).join(', ')}

Options:
  --case <name>   run only cases whose name contains <name>
  --json          print results as JSON
  --min-ms <ms>   minimum measured time per variant and case (default 1000)`,
  async run(argv) {
    const args = parseArgs(argv, ['case', 'min-ms']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const filter = args.flags.get('case');
    const cases = CASES.filter((c) => typeof filter !== 'string' || c.name.includes(filter));
    if (cases.length === 0) {
      console.error(`no case matches ${String(filter)}; cases: ${CASES.map((c) => c.name).join(', ')}`);
      return 2;
    }
    const json = args.flags.has('json');
    const minMs = Number(args.flags.get('min-ms') ?? 1000);
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
      const packedF32 = await packWeight(w, { compute: 'float32' });
      const packedBf16 = await packWeight(w, { compute: 'bfloat16' });
      const ms = await timeAlternating([
        { name: 'fp32', run: () => linear({ x, packed: packedF32, out }) },
        { name: 'bf16', run: () => linear({ x, packed: packedBf16, out }) },
      ], { minMs });
      const flop = 2 * M * N * K;
      const r: GemmResult = { case: c.name, M, N, K, ms: {}, gflops: {}, percentOfPeak: {}, weightGBs: {} };
      for (const [name, t] of ms) {
        r.ms[name] = t;
        r.gflops[name] = flop / t / 1e6;
        r.percentOfPeak[name] = (100 * r.gflops[name]!) / peak[name as 'fp32' | 'bf16'];
        r.weightGBs[name] = (N * K * (name === 'fp32' ? 4 : 2)) / t / 1e6;
      }
      results.push(r);
      if (!json) {
        console.log(`\n${c.name}: M=${M} N=${N} K=${K}`);
        for (const name of Object.keys(r.ms)) {
          const bw = M === 1 ? `  weights ${r.weightGBs[name]!.toFixed(1)} GB/s` : '';
          console.log(`  ${name}  ${r.ms[name]!.toFixed(3).padStart(9)} ms  ${r.gflops[name]!.toFixed(1).padStart(7)} GFLOP/s  ` +
            `${r.percentOfPeak[name]!.toFixed(1).padStart(5)}% of peak${bw}`);
        }
      }
      packedF32.dispose(); packedBf16.dispose(); out.dispose();
    }
    if (json) console.log(JSON.stringify({ threads, peakGflops: peak, results }, null, 2));
    return 0;
  },
};
