// `tessera bench <what>`: benchmarks are commands, never timed tests.
import { parseArgs, type Command } from './args.js';
import { benchAttentionCommand } from './bench_attention.js';
import { benchGemmCommand } from './bench_gemm.js';
import { benchLlamaGenCommand } from './bench_llamagen.js';
import { benchLoadCommand } from './bench_load.js';
import { benchOctreeCommand } from './bench_octree.js';
import { benchVarCommand } from './bench_var.js';
import { benchSplatCommand } from './bench_splat.js';

const BENCHES: Command[] = [benchAttentionCommand, benchGemmCommand, benchLoadCommand, benchVarCommand, benchSplatCommand, benchLlamaGenCommand, benchOctreeCommand];

export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmarks side by side with peers or machine floors (attention, gemm, load, var, splat, llamagen, octree)',
  usage: `Usage: tessera bench <name> [options]

${BENCHES.map((b) => `  ${b.name.padEnd(10)} ${b.summary}`).join('\n')}

Run \`tessera bench <name> --help\` for each benchmark's options.`,
  async run(argv) {
    const [which, ...rest] = argv;
    const bench = BENCHES.find((b) => b.name === which);
    if (!bench) {
      if (which === undefined || parseArgs([which]).flags.has('help')) { console.log(this.usage); return which ? 0 : 2; }
      console.error(`tessera bench: unknown benchmark '${which}'\n\n${this.usage}`);
      return 2;
    }
    return bench.run(rest);
  },
};
