#!/usr/bin/env node
// Keeps the main package and the platform packages (npm/*/) in lockstep: one
// version for all, and the main package's optionalDependencies pin every
// platform package at exactly that version (sharp's rule: a main package only
// ever loads binaries built from the same commit).
//   node scripts/release-version.mjs 0.2.0     stamp 0.2.0 everywhere
//   node scripts/release-version.mjs --check   exit 1 if anything disagrees
// With no argument it re-stamps the main package's current version.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (p) => JSON.parse(readFileSync(p, 'utf8'));
const write = (p, json) => writeFileSync(p, JSON.stringify(json, null, 2) + '\n');

const mainPath = join(root, 'package.json');
const main = read(mainPath);
const platformPaths = readdirSync(join(root, 'npm'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, 'npm', d.name, 'package.json')))
  .map((d) => join(root, 'npm', d.name, 'package.json'))
  .sort();

const arg = process.argv[2];
if (arg === '--check') {
  const bad = [];
  const want = main.version;
  const names = new Set();
  for (const p of platformPaths) {
    const pkg = read(p);
    names.add(pkg.name);
    if (pkg.version !== want) bad.push(`${pkg.name} is ${pkg.version}, main is ${want}`);
    if (main.optionalDependencies?.[pkg.name] !== want)
      bad.push(`optionalDependencies["${pkg.name}"] is ${main.optionalDependencies?.[pkg.name] ?? 'missing'}, want ${want}`);
  }
  for (const name of Object.keys(main.optionalDependencies ?? {}))
    if (name.startsWith('@tessera/') && !names.has(name)) bad.push(`optionalDependencies["${name}"] has no npm/ folder`);
  if (bad.length) {
    console.error('release-version: not in lockstep:\n  ' + bad.join('\n  ') + '\nRun `node scripts/release-version.mjs <version>`.');
    process.exit(1);
  }
  console.log(`release-version: ${main.name} and ${platformPaths.length} platform packages at ${want}`);
  process.exit(0);
}

const version = arg ?? main.version;
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  console.error(`release-version: '${version}' is not a semver version`);
  process.exit(1);
}
main.version = version;
const optional = { ...(main.optionalDependencies ?? {}) };
for (const p of platformPaths) {
  const pkg = read(p);
  pkg.version = version;
  write(p, pkg);
  optional[pkg.name] = version;
}
main.optionalDependencies = Object.fromEntries(Object.entries(optional).sort(([a], [b]) => a.localeCompare(b)));
write(mainPath, main);
console.log(`release-version: stamped ${version} into package.json and ${platformPaths.map((p) => dirname(p).slice(root.length + 1)).join(', ')}`);
