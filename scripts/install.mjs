#!/usr/bin/env node
// Builds the native addon: `cmake-js compile --out build`. TESSERA_CUDA
// (AUTO|ON|OFF) passes through to CMake. Fails with one clear message when
// cmake or a C++ compiler is missing.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function have(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

const missing = [];
if (!have('cmake')) missing.push('cmake (>= 3.20)');
const cxx = process.env.CXX || 'c++';
if (!have(cxx) && !have('g++') && !have('clang++')) missing.push('a C++20 compiler (g++ >= 11 or clang++ >= 14)');
if (missing.length) {
  console.error(`tessera: cannot build the native addon, missing: ${missing.join(', ')}.\n` +
    'Install them (Debian/Ubuntu: `apt-get install cmake g++`) and run `npx tessera build`.');
  process.exit(1);
}

const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const args = [cmakeJs, 'compile', '--out', 'build'];
if (process.env.TESSERA_CUDA) args.push(`--CDTESSERA_CUDA=${process.env.TESSERA_CUDA}`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
if (r.status !== 0) {
  console.error('tessera: the native build failed (see the compiler output above).');
  process.exit(r.status ?? 1);
}
