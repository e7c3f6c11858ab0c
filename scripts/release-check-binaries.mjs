#!/usr/bin/env node
// Release spot check of built binaries (issue 10): one CPU binary must run on
// every x86-64, so
//   1. no compile command uses -march=native, and -mavx* appears only on the
//      per-ISA files (*_avx2.cpp, *_avx512.cpp, *_avx512bf16.cpp);
//   2. every function whose code holds VEX/EVEX instructions (v*, k*) comes
//      from a per-ISA object, and is not also a weak (inline/template) symbol
//      of a baseline object: the linker keeps one copy of such a symbol, and
//      keeping the AVX one would make baseline code SIGILL on an older CPU;
//   3. the newest GLIBC_/GLIBCXX_/CXXABI_ symbol version each binary needs
//      (its glibc and libstdc++ floor) is printed with the symbols that need
//      it, and checked with --max-glibc X.Y, --max-glibcxx 3.4.N, --max-cxxabi 1.3.N.
// Usage: node scripts/release-check-binaries.mjs [--build-dir build] [--max-glibc 2.31]
//          [--max-glibcxx 3.4.28] [--max-cxxabi 1.3.12] [binary...]
// scripts/release-build.sh runs it on its bullseye build with --max-glibc 2.28
// --max-glibcxx 3.4.25 --max-cxxabi 1.3.11 (the floor the packages declare).
// Needs binutils (objdump, nm). Exit 1 on a violation.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

const argv = process.argv.slice(2);
let buildDir = 'build';
const max = { GLIBC: '', GLIBCXX: '', CXXABI: '' };
const binaries = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--build-dir') buildDir = argv[++i];
  else if (argv[i] === '--max-glibc') max.GLIBC = argv[++i];
  else if (argv[i] === '--max-glibcxx') max.GLIBCXX = argv[++i];
  else if (argv[i] === '--max-cxxabi') max.CXXABI = argv[++i];
  else binaries.push(argv[i]);
}
if (binaries.length === 0) {
  for (const f of ['tessera.node', 'libtessera_cuda.so']) {
    const p = join(buildDir, 'Release', f);
    if (existsSync(p)) binaries.push(p);
  }
}
if (binaries.length === 0) {
  console.error(`release-check: no binaries found under ${buildDir}/Release`);
  process.exit(1);
}

const PER_ISA = /_avx(2|512|512bf16)\.(cpp|cc)\.o$/;
const problems = [];
const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });

// 1. Compile flags, from the ninja or make build files.
function checkFlags() {
  const ninja = join(buildDir, 'build.ninja');
  if (!existsSync(ninja)) {
    console.log(`flags:   ${ninja} not found, skipped (configure with -G Ninja to check flags)`);
    return;
  }
  let edge = '';
  let checked = 0;
  for (const line of readFileSync(ninja, 'utf8').split('\n')) {
    const m = /^build (\S+\.o): \S*COMPILER\S* (\S+)/.exec(line);
    if (m) { edge = m[2]; checked++; continue; }
    if (!line.startsWith('  FLAGS = ') || !edge) continue;
    if (line.includes('-march=native') || line.includes('-mtune=native')) problems.push(`${edge}: compiled with -march/-mtune=native`);
    if (/\s-m(avx|fma|f16c|bmi)/.test(line) && !/_avx(2|512|512bf16)\.(cpp|cc)$/.test(edge))
      problems.push(`${edge}: ISA flags on a baseline file: ${line.match(/-m(avx|fma|f16c|bmi)\S*/g).join(' ')}`);
    edge = '';
  }
  console.log(`flags:   ${checked} compile commands, no -march=native, -mavx* only on per-ISA files` +
    (problems.length ? ' (VIOLATED, see below)' : ''));
}

// 2. Symbols: which objects define what.
function objects(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) objects(p, out);
    else if (p.endsWith('.o')) out.push(p);
  }
  return out;
}
const isaDefined = new Set();
const baselineWeak = new Set();
for (const o of objects(join(buildDir, 'CMakeFiles'))) {
  if (/tests?\.dir/.test(o)) continue;
  for (const line of run('nm', ['--defined-only', o]).split('\n')) {
    const [, type, name] = line.split(' ');
    if (!name || !/[TtWw]/.test(type)) continue;
    if (PER_ISA.test(o)) isaDefined.add(name);
    else if (/[Ww]/.test(type)) baselineWeak.add(name);
  }
}

function vectorFunctions(bin) {
  const found = new Map();
  let fn = '';
  for (const line of run('objdump', ['-d', '--no-show-raw-insn', bin]).split('\n')) {
    const h = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (h) { fn = h[1].replace(/@plt$/, ''); continue; }
    const ins = /^\s+[0-9a-f]+:\s+(\S+)/.exec(line);
    if (!ins || !fn) continue;
    const op = ins[1];
    if ((/^v/.test(op) && !/^ver[rw]$/.test(op)) || /^k(mov|and|or|xor|not|test|shift|unpck|add)/.test(op))
      found.set(fn, (found.get(fn) ?? 0) + 1);
  }
  return found;
}

/** The newest version of each of GLIBC/GLIBCXX/CXXABI the binary's undefined dynamic symbols need, and which symbols need it. */
function glibcFloor(bin) {
  const top = {};
  // objdump -T: "0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.29) exp"
  for (const line of run('objdump', ['-T', bin]).split('\n')) {
    const m = /\*UND\*\s+\S+\s+\(?(GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = m[2].split('.').map(Number);
    const cur = top[m[1]];
    if (!cur || cmp(v, cur.v) > 0) top[m[1]] = { v, syms: [m[3]] };
    else if (cmp(v, cur.v) === 0) cur.syms.push(m[3]);
  }
  return Object.fromEntries(Object.entries(top).map(([k, { v, syms }]) => [k, { version: v.join('.'), syms }]));
}
function cmp(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

checkFlags();
if (isaDefined.size === 0) console.log(`isa:     no per-ISA objects under ${buildDir}/CMakeFiles; symbol attribution skipped`);
for (const bin of binaries) {
  const vec = vectorFunctions(bin);
  let fromIsa = 0, clones = 0;
  for (const [fn, n] of vec) {
    // GCC target_clones copies (name.avx2, name.avx512f, ...; gcc 10 adds a
    // number: name.avx2.1) are chosen at load time by an ifunc resolver from
    // CPUID: run-time dispatch, allowed.
    if (/\.(avx2|avx512[a-z0-9]*|arch_[a-z0-9_]+|fma|sse4_2)(\.[0-9]+)?$/.test(fn)) { clones++; continue; }
    const base = fn.replace(/\.(cold|isra|constprop|part|lto_priv)[.0-9a-z_]*$/, '');
    if (isaDefined.size && !isaDefined.has(base) && !isaDefined.has(fn))
      problems.push(`${basename(bin)}: ${fn} has ${n} AVX instruction(s) but is not from a per-ISA file`);
    else if (baselineWeak.has(base))
      problems.push(`${basename(bin)}: ${fn} is a weak symbol of both a per-ISA and a baseline object (ODR: the AVX copy may win)`);
    else fromIsa++;
  }
  const floor = glibcFloor(bin);
  console.log(`${basename(bin)}: ${(statSync(bin).size / 2 ** 20).toFixed(1)} MiB, ${vec.size} functions with AVX code ` +
    `(${fromIsa} from per-ISA files, ${clones} target_clones copies), needs ` +
    Object.entries(floor).map(([k, { version }]) => `${k}_${version}`).join(' '));
  for (const [k, { version, syms }] of Object.entries(floor)) {
    const shown = syms.slice(0, 6).join(', ') + (syms.length > 6 ? `, ... (${syms.length} symbols)` : '');
    const limit = max[k];
    const over = limit && cmp(version.split('.').map(Number), limit.split('.').map(Number)) > 0;
    console.log(`  ${k}_${version}: ${shown}${limit ? (over ? `  ABOVE the limit ${limit}` : `  (limit ${limit}: ok)`) : ''}`);
    if (over) problems.push(`${basename(bin)}: needs ${k}_${version} (${shown}), above the limit ${k}_${limit} ` +
      (k === 'GLIBC'
        ? '(build with scripts/release-build.sh: Debian bullseye, TESSERA_GLIBC_COMPAT=ON; a symbol that glibc gave a new version can be pinned to its old one in cmake/glibc_compat.h)'
        : '(build with scripts/release-build.sh; there, a version above gcc 8\'s libstdc++ means the code uses a newer library feature)'));
  }
}
if (problems.length) {
  console.error('release-check: FAILED\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log('release-check: ok');
