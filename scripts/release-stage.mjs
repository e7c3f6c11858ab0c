#!/usr/bin/env node
// Copies the built binaries into the platform package folders, debug symbols
// stripped: build/Release/tessera.node -> npm/<platform>/tessera.node and
// build/Release/libtessera_cuda.so -> npm/<platform>-cuda/libtessera_cuda.so.
// The copies are git-ignored (npm/.gitignore); `npm pack` in each folder then
// makes the platform tarball.
//   node scripts/release-stage.mjs [--build-dir build] [--no-strip]
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const buildDir = argv.includes('--build-dir') ? argv[argv.indexOf('--build-dir') + 1] : join(root, 'build');
const strip = !argv.includes('--no-strip');
const { platformKey } = await import(join(root, 'dist', 'lib', 'native.js'));
const key = platformKey();

const items = [
  { from: 'tessera.node', pkg: key, required: true },
  { from: 'libtessera_cuda.so', pkg: `${key}-cuda`, required: false },
];
for (const it of items) {
  const src = join(buildDir, 'Release', it.from);
  const dir = join(root, 'npm', it.pkg);
  if (!existsSync(src)) {
    if (it.required) { console.error(`release-stage: ${src} is missing (build first: npm run build:native)`); process.exit(1); }
    // A copy staged from an earlier build would otherwise be packed with this one.
    const stale = join(dir, it.from);
    if (existsSync(stale)) rmSync(stale);
    console.log(`release-stage: ${src} not built (no nvcc?), npm/${it.pkg} left empty`);
    continue;
  }
  if (!existsSync(join(dir, 'package.json'))) { console.error(`release-stage: no npm/${it.pkg}/package.json`); process.exit(1); }
  const dst = join(dir, it.from);
  copyFileSync(src, dst);
  if (strip) execFileSync('strip', ['--strip-debug', dst]);
  const mib = (p) => (statSync(p).size / 2 ** 20).toFixed(1);
  console.log(`release-stage: npm/${it.pkg}/${it.from} ${mib(dst)} MiB (built ${mib(src)} MiB${strip ? ', debug info stripped' : ''})`);
}
