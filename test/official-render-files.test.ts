// `tessera render` on scene and camera FILES against the OFFICIAL gsplat code
// (test/fixtures/official/render-files.bin.gz, written by
// scripts/reference/official/check_scene_render.py; no Python here): PLY in
// the INRIA training code's layout (SH 3, binary), gsplat's exporter PLY (no
// normals) and .splat, an ascii PLY (SH 1), a big-endian float64 PLY with
// shuffled and unknown properties (SH 2 rendered with --sh-degree 1); the
// INRIA cameras.json (--camera-index) and the viewMatrix form with an
// off-centre principal point and a background; --antialiased. The expected
// images are gsplat's PyTorch reference renders of the values each file
// holds. Opacities stay below 0.343 there, so Tessera's 3σ tile rectangles
// and gsplat's 3.33σ boxes list the same contributors and every 8-bit pixel
// must equal round(255·official) up to one level of rounding; alpha likewise;
// gsplat's compressed-PLY export (PlayCanvas layout, two chunks) too;
// the 16-bit depth (× 1000) within 2 units where the alpha is at least 1/255.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { renderCommand } from '../lib/cli/render.js';
import { decodeScene } from '../lib/io/scene-file.js';
import { codeOf } from './error-code.js';

interface Arr { dtype: 'float32'; shape: number[]; offset: number; bytes: number }
interface Case { name: string; fileName: string; file: string; flags: string[]; width: number; height: number; image: Record<'rgb' | 'alpha' | 'depth', Arr> }
const raw = gunzipSync(readFileSync(join(import.meta.dirname, 'fixtures', 'official', 'render-files.bin.gz')));
const mlen = raw.readUInt32LE(0);
const manifest = JSON.parse(raw.subarray(4, 4 + mlen).toString('utf8')) as { files: Record<string, string>; cases: Case[] };
const base = Math.ceil((4 + mlen) / 8) * 8;
const bin = new Uint8Array(raw.buffer, raw.byteOffset + base, raw.length - base).slice();
const f32 = (a: Arr) => new Float32Array(bin.buffer, a.offset, a.bytes / 4);

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-official-render-'));
  for (const [name, text] of Object.entries(manifest.files)) writeFileSync(join(dir, name), text);
  for (const c of manifest.cases) writeFileSync(join(dir, c.fileName), Buffer.from(c.file, 'base64'));
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

async function run(argv: string[]): Promise<number> {
  const log = console.log, err = console.error;
  console.log = () => {};
  console.error = () => {};
  try { return await renderCommand.run(argv); } finally { console.log = log; console.error = err; }
}
async function pixels(path: string, channels: 1 | 3, bits: 8 | 16): Promise<number[]> {
  const img = sharp(path);
  if (bits === 16) {
    const { data } = await img.toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    const b = Buffer.from(data);
    return Array.from({ length: b.length / 2 }, (_, i) => b.readUInt16LE(2 * i));
  }
  const { data, info } = await (channels === 1 ? img.toColourspace('b-w') : img).raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(channels);
  return Array.from(data);
}

describe('tessera render on official-written files vs gsplat reference images', () => {
  for (const c of manifest.cases) {
    it(c.name, async () => {
      const out = join(dir, `${c.name}.png`), depth = join(dir, `${c.name}-d.png`), alpha = join(dir, `${c.name}-a.png`);
      const flags = c.flags.map((f) => (f.endsWith('.json') ? join(dir, f) : f));
      expect(await run([join(dir, c.fileName), ...flags, '--out', out, '--depth', depth, '--alpha', alpha])).toBe(0);
      const rgb = await pixels(out, 3, 8), a = await pixels(alpha, 1, 8), z = await pixels(depth, 1, 16);
      const refRgb = f32(c.image.rgb), refA = f32(c.image.alpha), refZ = f32(c.image.depth);
      expect(rgb.length).toBe(refRgb.length);
      const q = (v: number) => Math.min(255, Math.max(0, Math.floor(v * 255 + 0.5)));
      let maxRgb = 0, offRgb = 0, maxA = 0, maxZ = 0, lit = 0;
      for (let i = 0; i < refRgb.length; i++) {
        const d = Math.abs(rgb[i]! - q(refRgb[i]!));
        maxRgb = Math.max(maxRgb, d);
        if (d) offRgb++;
      }
      for (let i = 0; i < refA.length; i++) {
        maxA = Math.max(maxA, Math.abs(a[i]! - q(refA[i]!)));
        if (refA[i]! >= 1 / 255) {
          lit++;
          maxZ = Math.max(maxZ, Math.abs(z[i]! - Math.round(refZ[i]! * 1000)));
        }
      }
      // A half-pixel shift of the principal point, a transposed f_rest or a
      // wrong camera conversion moves whole regions by many levels.
      expect(maxRgb, `${offRgb} of ${refRgb.length} channel values differ from round(255·official)`).toBeLessThanOrEqual(1);
      expect(offRgb).toBeLessThanOrEqual(Math.ceil(0.01 * refRgb.length));
      expect(maxA).toBeLessThanOrEqual(1);
      expect(lit).toBeGreaterThan(0.1 * refA.length);
      expect(maxZ).toBeLessThanOrEqual(2);
    });
  }
});

describe('scene-file details', () => {
  const compressed = manifest.cases.find((c) => c.fileName === 'compressed.ply')!;
  it('the antialiased tags of Brush (SplatRenderMode: mip) and Postshot (antialiased 1) set the mode', () => {
    const plain = Buffer.from(manifest.cases.find((c) => c.fileName === 'inria.ply')!.file, 'base64');
    const tagged = (tag: string) => Buffer.concat([Buffer.from(`ply\ncomment ${tag}`), plain.subarray(3)]);
    const aa = (b: Buffer) => { const d = decodeScene(b, 'x.ply'); return d.kind === 'gaussians' && d.scene.antialiased; };
    expect([aa(plain), aa(tagged('SplatRenderMode: mip')), aa(tagged('antialiased 1')), aa(tagged('SplatRenderMode: default'))])
      .toEqual([false, true, true, false]);
  });
  it('a compressed PLY lacking chunk bounds, or with too few chunks, is refused with ERR_FORMAT', async () => {
    const b = Buffer.from(compressed.file, 'base64');
    const renamed = Buffer.from(b.toString('latin1').replace('property float max_scale_z', 'property float max_scale_w'), 'latin1');
    expect(await codeOf(() => decodeScene(renamed, 'c.ply'))).toBe('ERR_FORMAT');
    const fewer = Buffer.from(b.toString('latin1').replace('element chunk 2', 'element chunk 1'), 'latin1');
    expect(await codeOf(() => decodeScene(fewer, 'c.ply'))).toBe('ERR_FORMAT');
  });
});

describe('ascii PLY number spellings', () => {
  it('reads inf, -inf, nan (C printf / numpy) and refuses other words', async () => {
    const head = 'ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty double z\nend_header\n';
    const d = decodeScene(Buffer.from(`${head}inf -INF nan\n1e-3 -Infinity 2\n`), 'p.ply');
    expect(d.kind === 'points' && Array.from(d.cloud.positions)).toEqual([Infinity, -Infinity, NaN, 0.0010000000474974513, -Infinity, 2]);
    expect(await codeOf(() => decodeScene(Buffer.from(`${head}1 2 three\n4 5 6\n`), 'p.ply'))).toBe('ERR_FORMAT');
  });
});
