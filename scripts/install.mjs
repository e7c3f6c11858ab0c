#!/usr/bin/env node
// `npm install` hook. An installed package first test-loads a prebuilt addon
// (a local build, or the @tessera/<platform> package npm picked by os/cpu/libc)
// in a child process and, when one loads, needs no compiler and no network.
// Only when none loads does it build from source with cmake-js (N-API headers
// come from the node-api-headers package, so nothing is fetched beyond the npm
// registry). A git checkout always builds from source, so `npm install`
// compiles edited C++.
//   TESSERA_BUILD_FROM_SOURCE=1  always build from source
//   TESSERA_BUILD_FROM_SOURCE=0  never build (use a prebuilt or fail at load)
//   TESSERA_CUDA=AUTO|ON|OFF     passes through to CMake
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.env.TESSERA_BUILD_FROM_SOURCE ?? (existsSync(join(root, '.git')) ? '1' : 'auto');
let prebuiltWhy = '';

function have(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** Test-loads the addon the package's loader would pick, in a child process (a bad binary cannot crash npm). */
function prebuilt() {
  const loader = join(root, 'dist', 'lib', 'native.js');
  if (!existsSync(loader)) return { ok: false, why: `${loader} is missing (the TypeScript is not built)` };
  const script = `const m = await import(${JSON.stringify(pathToFileURL(loader).href)});
    try { m.native(); } catch (e) { console.error(e.message); process.exit(1); }
    const s = m.nativeSelection(); console.log(s.addonSource + ': ' + s.addon);`;
  const env = { ...process.env };
  delete env.TESSERA_BACKEND; // a forced backend is a run-time choice, not an install failure
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  if (r.status === 0) return { ok: true, why: r.stdout.trim() };
  return { ok: false, why: (r.stderr || r.stdout || `exit ${r.status}`).trim().replace(/^tessera: /, '') };
}

if (mode !== '1') {
  const p = prebuilt();
  if (p.ok) {
    console.log(`tessera: using the prebuilt addon (${p.why}); set TESSERA_BUILD_FROM_SOURCE=1 to compile instead`);
    process.exit(0);
  }
  if (mode === '0') {
    console.error(`tessera: no prebuilt addon loads and TESSERA_BUILD_FROM_SOURCE=0, so nothing was built:\n${p.why}`);
    process.exit(0);
  }
  console.log(`tessera: no prebuilt addon loads here, building from source.\n${p.why.replace(/^/gm, '  ')}`);
  prebuiltWhy = p.why;
}

const missing = [];
if (!have('cmake')) missing.push('cmake (>= 3.20)');
const cxx = process.env.CXX || 'c++';
if (!have(cxx) && !have('g++') && !have('clang++')) missing.push('a C++20 compiler (g++ >= 10 or clang++ >= 14)');
if (missing.length) {
  console.error(`tessera: cannot build the native addon, missing: ${missing.join(', ')}.\n` +
    (prebuiltWhy ? 'No prebuilt binary matched this machine either (see above); check that npm installed ' +
      'the optional @tessera/<platform> package (`npm install --include=optional`).\n' : '') +
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
