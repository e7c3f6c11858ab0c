// Mutation fuzzing of every loader: valid files are corrupted (bit flips,
// byte overwrites with boundary values, truncation, chunk duplication) and
// each must parse or fail with a TesseraError of a file-format code — never
// another exception, a crash or a hang. TESSERA_FUZZ_CASES sets the cases per
// format (default 10,000): `npm run fuzz` runs 200,000.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { openCheckpointSource } from '../lib/io/checkpoint.js';
import { emptyScene } from '../lib/io/gaussian-scene.js';
import { gaussiansToPly, gaussiansToSplat, gaussiansToSpz } from '../lib/io/gaussian-formats.js';
import { unpickle } from '../lib/io/pickle.js';
import { writePly } from '../lib/io/ply.js';
import { decodeScene } from '../lib/io/scene-file.js';
import { MemorySource } from '../lib/io/source.js';

const CASES = Number(process.env.TESSERA_FUZZ_CASES ?? 10_000);

/** The file of the first case matching `pick` in one of the official fixture bundles (manifest JSON + data). */
function officialFile(bundle: string, pick: (c: Record<string, unknown>) => boolean): Uint8Array {
  const raw = gunzipSync(readFileSync(join(__dirname, 'fixtures', 'official', bundle)));
  const manifest = JSON.parse(raw.subarray(4, 4 + raw.readUInt32LE(0)).toString('utf8')) as { cases: Record<string, unknown>[] };
  const c = manifest.cases.find(pick);
  if (!c) throw new Error(`${bundle}: no such case`);
  return new Uint8Array(Buffer.from(c.file as string, 'base64'));
}
const DIR = join(__dirname, 'fixtures', 'checkpoints');

let seed = 0x9e3779b9;
const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const pick = (n: number): number => Math.floor(rnd() * n);
const BOUNDARY = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

function mutate(src: Uint8Array): Uint8Array {
  const kind = pick(5);
  if (kind === 0) return src.subarray(0, pick(src.length)); // truncation
  if (kind === 1) { // duplicate a chunk in place of another
    const out = Uint8Array.from(src);
    const n = 1 + pick(32);
    const a = pick(Math.max(1, src.length - n)), b = pick(Math.max(1, src.length - n));
    out.copyWithin(b, a, a + n);
    return out;
  }
  const out = Uint8Array.from(src);
  const edits = 1 + pick(kind === 4 ? 16 : 4);
  for (let e = 0; e < edits; ++e) {
    const at = pick(out.length);
    if (kind === 2) out[at] = out[at]! ^ (1 << pick(8)); // bit flip
    else if (kind === 3) out[at] = BOUNDARY[pick(BOUNDARY.length)]!; // boundary byte
    else out[at] = pick(256); // random byte
  }
  return out;
}

const FORMAT_CODES = /^ERR_(FORMAT|UNSAFE)$/;

function fuzz(name: string, valid: Uint8Array, parse: (b: Uint8Array) => void): void {
  parse(valid); // the unmutated file must load
  let failures = 0;
  for (let i = 0; i < CASES; ++i) {
    const b = mutate(valid);
    try {
      parse(b);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'string' || !FORMAT_CODES.test(code)) {
        failures++;
        if (failures < 4) console.error(`${name} case ${i}: ${String(err)}`);
      }
    }
  }
  expect(failures, `${name}: mutations that escaped as non-format errors`).toBe(0);
}

const loadAll = (name: string) => (b: Uint8Array): void => {
  const ck = openCheckpointSource(new MemorySource(b, name), name);
  for (const t of ck.tensors.values()) t.load();
};

function smallScene() {
  const s = emptyScene(6, 2);
  for (let i = 0; i < s.means.length; ++i) s.means[i] = Math.sin(i) * 3;
  for (let i = 0; i < s.rotations.length; ++i) s.rotations[i] = Math.cos(i);
  for (let i = 0; i < s.sh.length; ++i) s.sh[i] = Math.sin(3 * i) * 0.5;
  s.logScales.fill(-2);
  return s;
}

describe(`loader fuzzing (${CASES} cases per format)`, { timeout: 600_000 }, () => {
  it('safetensors', () => fuzz('safetensors', readFileSync(join(DIR, 'reference.safetensors')), loadAll('st')));
  it('torch zip', () => fuzz('torch zip', readFileSync(join(DIR, 'plain_zip.pt')), loadAll('zip')));
  it('torch legacy', () => fuzz('torch legacy', readFileSync(join(DIR, 'legacy.pt')), loadAll('legacy')));
  it('pickle', () => {
    // A protocol-2 pickle of plain containers, taken from the zip's data.pkl.
    const zipBytes = readFileSync(join(DIR, 'wrapped_zip.pt'));
    const start = zipBytes.indexOf(Buffer.from([0x80, 0x02]));
    const end = zipBytes.indexOf(0x2e, start) + 1;
    const bytes = zipBytes.subarray(start, end);
    // With no globals allowed, the OrderedDict/tensor globals are refused
    // (ERR_UNSAFE): that too is an answer about the file, not a crash.
    expect(() => unpickle(bytes, { globals: new Map(), what: 'p', persistentLoad: () => null })).toThrow(/refuses/);
    const plain = new Uint8Array([0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x01, 0, 0, 0, 0x61, 0x4b, 0x05, 0x58, 0x01, 0, 0, 0, 0x62, 0x5d, 0x71, 0x01, 0x28, 0x47, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x4e, 0x88, 0x65, 0x75, 0x2e]);
    fuzz('pickle', plain, (b) => { unpickle(b, { globals: new Map(), what: 'p' }); });
  });
  it('3DGS ply', () => {
    fuzz('ply', gaussiansToPly(smallScene()), (b) => { decodeScene(b, 'f.ply'); });
  });
  it('ascii ply point cloud', () => {
    const text = 'ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n0 0 0 1 2 3\n1 1 1 4 5 6\n-1 2 0.5 7 8 9\n';
    fuzz('ascii ply', new TextEncoder().encode(text), (b) => { decodeScene(b, 'a.ply'); });
  });
  it('binary ply with a face list', () => {
    const bytes = writePly([
      { name: 'vertex', count: 3, columns: ['x', 'y', 'z'].map((n, a) => ({ name: n, type: 'float32' as const, data: [a, a + 1, a + 2] })) },
      { name: 'face', count: 1, columns: [], list: { name: 'vertex_indices', countType: 'uint8', type: 'int32', counts: [3], values: [0, 1, 2] } },
    ]);
    fuzz('binary ply', bytes, (b) => { decodeScene(b, 'b.ply'); });
  });
  it('.splat', () => fuzz('splat', gaussiansToSplat(smallScene()), (b) => { decodeScene(b, 'f.splat'); }));
  it('.spz', () => fuzz('spz', gaussiansToSpz(smallScene(), 3), (b) => { decodeScene(b, 'f.spz'); }));
  // Files the official writers produced (test/fixtures/official): an spz of
  // version 4 (plain header, ZSTD streams) and gsplat's compressed PLY.
  it('.spz version 4 (ZSTD)', () => {
    const v4 = officialFile('spz-cases.bin.gz', (c) => c.version === 4 && c.shDegree === 3);
    fuzz('spz v4', v4, (b) => { decodeScene(b, 'f.spz'); });
  });
  it('compressed ply (PlayCanvas layout)', () => {
    const ply = officialFile('render-files.bin.gz', (c) => c.fileName === 'compressed.ply');
    fuzz('compressed ply', ply, (b) => { decodeScene(b, 'c.ply'); });
  });
});
