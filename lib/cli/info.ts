// `tessera info`: what this install found (node-llama-cpp's `inspect gpu` habit).
import { createRequire } from 'node:module';

import { glibcVersion, nativeSelection, platformKey } from '../native.js';
import { runtimeInfo } from '../runtime.js';
import { parseArgs, type Command } from './args.js';

const GiB = 1024 ** 3;

/** CUDA encodes versions as 1000·major + 10·minor. */
function cudaVersion(v: number): string {
  return v > 0 ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : 'unknown';
}

/** The platform packages npm installed for this machine, with their versions. */
function platformPackages(): Record<string, string> {
  const req = createRequire(import.meta.url);
  const out: Record<string, string> = {};
  for (const name of [`@tessera/${platformKey()}`, `@tessera/${platformKey()}-cuda`]) {
    try {
      out[name] = (req(`${name}/package.json`) as { version: string }).version;
    } catch {
      out[name] = 'not installed';
    }
  }
  return out;
}

export const infoCommand: Command = {
  name: 'info',
  summary: 'show the version, backends (and why CUDA is absent), CPU features and threads',
  usage: `Usage: tessera info [--json]

Prints the Tessera, Node and N-API versions, the platform and libc, the native
addon in use and where it came from (TESSERA_ADDON_PATH, local build or the
@tessera/<platform> package), the CUDA library it looks for, the CPU (brand, features,
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
    const sel = nativeSelection()!;
    const cuda = info.backends.cuda;
    const defaultDevice = process.env.TESSERA_BACKEND === 'cpu' || !cuda.available ? 'cpu' : 'cuda:0';
    const loader = {
      ...sel, glibc: glibcVersion(), napi: process.versions.napi, packages: platformPackages(), defaultDevice,
    };
    if (args.flags.has('json')) { console.log(JSON.stringify({ ...info, loader }, null, 2)); return 0; }
    const feats = Object.entries(info.cpu.features).filter(([, on]) => on).map(([f]) => f).join(' ');
    const lines = [
      `tessera ${info.version} (node ${info.node}, N-API ${loader.napi}, ${sel.platform}` +
        `${loader.glibc ? `, glibc ${loader.glibc}` : sel.libc ? `, ${sel.libc}` : ''})`,
      `addon:    ${info.addon} (${sel.addonSource})`,
      `packages: ${Object.entries(loader.packages).map(([n, v]) => `${n} ${v}`).join(', ')}`,
      `cuda lib: ${sel.cudaLibrary ? `${sel.cudaLibrary} (${sel.cudaSource})` : 'none found'}`,
      `cpu:      ${info.cpu.brand} (${info.cpu.physicalCores} cores, ${info.cpu.logicalCpus} logical)`,
      `features: ${feats}`,
      `isa:      ${info.cpu.isa} (kernels chosen at run time; TESSERA_ISA caps it)`,
      `threads:  ${info.threads} (TESSERA_NUM_THREADS sets it)`,
      `default:  ${defaultDevice} (TESSERA_BACKEND=cpu|cuda forces it)`,
      'backends:',
      `  cpu     available (${info.backends.cpu.isa})`,
      cuda.available ? `  cuda    available (${cuda.buildInfo})` : `  cuda    unavailable: ${cuda.reason}`,
      ...cuda.devices.map((d, i) =>
        `    cuda:${i} ${d.name}, ${(d.totalMemory / GiB).toFixed(1)} GiB (${(d.freeMemory / GiB).toFixed(1)} free), ` +
        `sm ${d.computeCapability}, ${d.multiprocessors} SMs, driver CUDA ${cudaVersion(d.driverVersion)}, ` +
        `runtime ${cudaVersion(d.runtimeVersion)}`),
    ];
    console.log(lines.join('\n'));
    return 0;
  },
};
