// `tessera info`: what this install found (node-llama-cpp's `inspect gpu` habit).
import { runtimeInfo } from '../runtime.js';
import { parseArgs, type Command } from './args.js';

const GiB = 1024 ** 3;

export const infoCommand: Command = {
  name: 'info',
  summary: 'show the version, backends (and why CUDA is absent), CPU features and threads',
  usage: `Usage: tessera info [--json]

Prints the Tessera version, the native addon in use, the CPU (brand, features,
the kernel ISA chosen at run time), the thread-pool size, and each backend:
CUDA devices with name, memory and driver when present, otherwise the reason
CUDA cannot be used.

Options:
  --json    print the same facts as one JSON object
  --help    show this help`,
  async run(argv) {
    const args = parseArgs(argv);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const info = runtimeInfo();
    if (args.flags.has('json')) { console.log(JSON.stringify(info, null, 2)); return 0; }
    const feats = Object.entries(info.cpu.features).filter(([, on]) => on).map(([f]) => f).join(' ');
    const cuda = info.backends.cuda;
    const lines = [
      `tessera ${info.version} (node ${info.node})`,
      `addon:    ${info.addon}`,
      `cpu:      ${info.cpu.brand} (${info.cpu.physicalCores} cores, ${info.cpu.logicalCpus} logical)`,
      `features: ${feats}`,
      `isa:      ${info.cpu.isa} (kernels chosen at run time; TESSERA_ISA caps it)`,
      `threads:  ${info.threads} (TESSERA_NUM_THREADS sets it)`,
      'backends:',
      `  cpu     available (${info.backends.cpu.isa})`,
      cuda.available ? `  cuda    available (${cuda.buildInfo})` : `  cuda    unavailable: ${cuda.reason}`,
      ...cuda.devices.map((d, i) =>
        `    cuda:${i} ${d.name}, ${(d.totalMemory / GiB).toFixed(1)} GiB (${(d.freeMemory / GiB).toFixed(1)} free), ` +
        `sm ${d.computeCapability}, ${d.multiprocessors} SMs, driver ${d.driverVersion}, runtime ${d.runtimeVersion}`),
    ];
    console.log(lines.join('\n'));
    return 0;
  },
};
