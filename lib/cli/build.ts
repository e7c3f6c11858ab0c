// `tessera build`: compiles the native addon from the package sources (the
// same script `npm install` runs).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../native.js';
import { parseArgs, type Command } from './args.js';

export const buildCommand: Command = {
  name: 'build',
  summary: 'compile the native addon (cmake-js); --cuda requires the CUDA backend',
  usage: `Usage: tessera build [--cuda | --no-cuda]

Compiles the native addon into build/Release of the installed package with
cmake-js, even when a prebuilt @tessera/<platform> binary exists (the loader
tries build/Release first, so the new build wins). The CUDA backend is
built whenever nvcc is found; --cuda makes a missing nvcc an error, --no-cuda
skips it. Needs cmake (>= 3.20) and a C++20 compiler.`,
  async run(argv) {
    const args = parseArgs(argv);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    // Skip install.mjs's prebuilt check: asking to build means build.
    const env: NodeJS.ProcessEnv = { ...process.env, TESSERA_BUILD_FROM_SOURCE: '1' };
    if (args.flags.has('cuda')) env.TESSERA_CUDA = 'ON';
    if (args.flags.has('no-cuda')) env.TESSERA_CUDA = 'OFF';
    const root = packageRoot();
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'install.mjs')], { cwd: root, env, stdio: 'inherit' });
    return r.status ?? 1;
  },
};
