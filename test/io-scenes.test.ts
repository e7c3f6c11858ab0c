// Scene files: writer → reader round trips, the frame change of .spz, PLY
// point clouds in every encoding, and corrupted input.
import { gunzipSync, gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { emptyScene, shCoefficients, SH_FLIP_YZ, type GaussianScene } from '../lib/io/gaussian-scene.js';
import { gaussiansFromSplat, gaussiansFromSpz, gaussiansToSplat, gaussiansToSpz } from '../lib/io/gaussian-formats.js';
import { parsePly } from '../lib/io/ply.js';
import { pointCloudFromPly } from '../lib/io/point-cloud.js';
import { decodeScene, encodeScene } from '../lib/io/scene-file.js';

let seed = 99;
const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const uni = (lo: number, hi: number): number => lo + (hi - lo) * rnd();

function randomScene(n: number, degree: number): GaussianScene {
  const s = emptyScene(n, degree, true);
  for (let i = 0; i < 3 * n; ++i) { s.means[i] = uni(-50, 50); s.logScales[i] = uni(-6, 1); }
  for (let i = 0; i < 4 * n; ++i) s.rotations[i] = uni(-1, 1);
  for (let i = 0; i < n; ++i) s.opacityLogits[i] = uni(-4, 4);
  for (let i = 0; i < s.sh.length; ++i) s.sh[i] = uni(-0.9, 0.9);
  return s;
}

/** Unit quaternions q and −q are the same rotation: compare up to sign. */
function quatClose(a: ArrayLike<number>, b: ArrayLike<number>, i: number, tol: number): boolean {
  const qa = [0, 1, 2, 3].map((k) => a[4 * i + k]!), qb = [0, 1, 2, 3].map((k) => b[4 * i + k]!);
  const na = Math.hypot(...qa), nb = Math.hypot(...qb);
  const dot = qa.reduce((s, x, k) => s + (x / na) * (qb[k]! / nb), 0);
  return 1 - Math.abs(dot) < tol;
}

describe('3DGS .ply', () => {
  for (const degree of [0, 1, 3]) {
    it(`round-trips exactly at SH degree ${degree}`, () => {
      const s = randomScene(37, degree);
      const back = decodeScene(encodeScene({ kind: 'gaussians', scene: s, format: 'ply' }, '.ply'), 'x.ply');
      expect(back.kind).toBe('gaussians');
      if (back.kind !== 'gaussians') return;
      expect(back.scene.shDegree).toBe(degree);
      expect(back.scene.antialiased).toBe(true);
      for (const k of ['means', 'logScales', 'rotations', 'opacityLogits', 'sh'] as const) expect(back.scene[k]).toEqual(s[k]);
    });
  }

  it('reads f_rest channel-major and transposes to [N, K, 3]', () => {
    // One Gaussian, degree 1: f_rest_0..2 = R coeffs 1..3, 3..5 = G, 6..8 = B.
    const props = ['x', 'y', 'z', 'f_dc_0', 'f_dc_1', 'f_dc_2', ...Array.from({ length: 9 }, (_, i) => `f_rest_${i}`), 'opacity', 'scale_0', 'scale_1', 'scale_2', 'rot_0', 'rot_1', 'rot_2', 'rot_3'];
    const vals = [1, 2, 3, 0.1, 0.2, 0.3, 10, 11, 12, 20, 21, 22, 30, 31, 32, 0.5, -1, -2, -3, 1, 0, 0, 0];
    const text = `ply\nformat ascii 1.0\nelement vertex 1\n${props.map((p) => `property float ${p}`).join('\n')}\nend_header\n${vals.join(' ')}\n`;
    const d = decodeScene(new TextEncoder().encode(text), 'a.ply');
    if (d.kind !== 'gaussians') throw new Error('expected Gaussians');
    expect(Array.from(d.scene.sh)).toEqual([0.1, 0.2, 0.3, 10, 20, 30, 11, 21, 31, 12, 22, 32].map((x) => Math.fround(x)));
  });
});

describe('.splat', () => {
  it('round-trips within its 8-bit quantisation, sorted by size·opacity', () => {
    const s = randomScene(50, 0);
    const back = gaussiansFromSplat(gaussiansToSplat(s), 'x.splat');
    expect(back.count).toBe(50);
    // Records are re-ordered: match each by its (exact float32) position.
    const key = (m: ArrayLike<number>, i: number): string => `${m[3 * i]},${m[3 * i + 1]},${m[3 * i + 2]}`;
    const index = new Map(Array.from({ length: 50 }, (_, i) => [key(s.means, i), i]));
    for (let j = 0; j < 50; ++j) {
      const i = index.get(key(back.means, j));
      expect(i).toBeDefined();
      for (let a = 0; a < 3; ++a) expect(Math.abs(back.logScales[3 * j + a]! - s.logScales[3 * i! + a]!)).toBeLessThan(1e-6);
      const qa = Float32Array.from([0, 1, 2, 3].map((k) => back.rotations[4 * j + k]!));
      const qb = Float32Array.from([0, 1, 2, 3].map((k) => s.rotations[4 * i! + k]!));
      expect(quatClose(qa, qb, 0, 2e-3)).toBe(true);
      const sig = (x: number): number => 1 / (1 + Math.exp(-x));
      expect(Math.abs(sig(back.opacityLogits[j]!) - sig(s.opacityLogits[i!]!))).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
    }
    // Largest exp(Σ log s)·sigmoid(o) first.
    const keyOf = (k: number): number => Math.exp(back.logScales[3 * k]! + back.logScales[3 * k + 1]! + back.logScales[3 * k + 2]!) / (1 + Math.exp(-back.opacityLogits[k]!));
    for (let j = 1; j < 50; ++j) expect(keyOf(j - 1) * 1.05).toBeGreaterThanOrEqual(keyOf(j));
  });
});

describe('.spz', () => {
  for (const version of [2, 3] as const) {
    it(`version ${version} round-trips within quantisation and keeps the RDF frame`, () => {
      const s = randomScene(40, 2);
      const back = gaussiansFromSpz(gaussiansToSpz(s, version), 'x.spz');
      expect(back.shDegree).toBe(2);
      expect(back.antialiased).toBe(true);
      for (let i = 0; i < 120; ++i) expect(Math.abs(back.means[i]! - s.means[i]!)).toBeLessThanOrEqual(0.5 / 4096 + 1e-6);
      for (let i = 0; i < 120; ++i) expect(Math.abs(back.logScales[i]! - s.logScales[i]!)).toBeLessThanOrEqual(1 / 32 + 1e-6);
      for (let i = 0; i < 40; ++i) expect(quatClose(back.rotations, s.rotations, i, version === 3 ? 2e-5 : 2e-3)).toBe(true);
      const K = shCoefficients(2);
      for (let i = 0; i < 40; ++i) for (let k = 1; k < K; ++k) for (let c = 0; c < 3; ++c) {
        const bucket = k <= 3 ? 8 : 16;
        expect(Math.abs(back.sh[(i * K + k) * 3 + c]! - s.sh[(i * K + k) * 3 + c]!)).toBeLessThanOrEqual((bucket / 2 + 0.5) / 128 + 1e-6);
      }
    });
  }

  it('stores RUB: y and z of positions are negated in the file, with the matching SH signs', () => {
    const s = randomScene(1, 1);
    s.means.set([1, 2, 3]);
    const raw = new Uint8Array(gunzipSync(gaussiansToSpz(s, 3)));
    const v = new DataView(raw.buffer);
    const read24 = (o: number): number => { let x = raw[o]! | (raw[o + 1]! << 8) | (raw[o + 2]! << 16); if (x & 0x800000) x -= 1 << 24; return x / 4096; };
    expect([read24(16), read24(19), read24(22)]).toEqual([1, -2, -3]);
    expect(v.getUint32(0, true)).toBe(0x5053474e);
    // SH band 1 in the 3DGS order is (y, z, x): the first two flip under the frame change.
    expect(SH_FLIP_YZ.slice(0, 4)).toEqual([1, -1, -1, 1]);
  });

  it('rejects bad headers and truncated data with ERR_FORMAT', () => {
    const header = new Uint8Array(16);
    const dv = new DataView(header.buffer);
    dv.setUint32(0, 0x5053474e, true);
    dv.setUint32(4, 9, true);
    expect(() => gaussiansFromSpz(gzipSync(header), 'v9.spz')).toThrow(/version 9/);
    dv.setUint32(4, 2, true);
    dv.setUint32(8, 1000, true);
    expect(() => gaussiansFromSpz(gzipSync(header), 'short.spz')).toThrow(expect.objectContaining({ code: 'ERR_FORMAT' }));
    expect(() => gaussiansFromSpz(new Uint8Array([1, 2, 3]), 'junk.spz')).toThrow(expect.objectContaining({ code: 'ERR_FORMAT' }));
  });
});

describe('PLY point clouds', () => {
  const body = [[0.5, 1, -2, 0, 0, 1, 255, 0, 10], [3, 4, 5, 1, 0, 0, 1, 2, 3]];
  const header = (fmt: string): string => `ply\nformat ${fmt} 1.0\ncomment made by a test\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nproperty float nx\nproperty float ny\nproperty float nz\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n`;
  const binary = (le: boolean): Uint8Array => {
    const h = new TextEncoder().encode(header(le ? 'binary_little_endian' : 'binary_big_endian'));
    const out = new Uint8Array(h.length + 2 * 27 + 1 + 12);
    out.set(h);
    const v = new DataView(out.buffer);
    let o = h.length;
    for (const r of body) { for (let k = 0; k < 6; ++k, o += 4) v.setFloat32(o, r[k]!, le); for (let k = 6; k < 9; ++k) out[o++] = r[k]!; }
    out[o++] = 3;
    for (const idx of [0, 1, 0]) { v.setInt32(o, idx, le); o += 4; }
    return out;
  };
  const ascii = new TextEncoder().encode(`${header('ascii')}${body.map((r) => r.join(' ')).join('\n')}\n3 0 1 0\n`);

  for (const [name, bytes] of [['ascii', ascii], ['little-endian', binary(true)], ['big-endian', binary(false)]] as const) {
    it(`reads ${name} with normals, colours and a face list`, () => {
      const ply = parsePly(bytes, name);
      const pc = pointCloudFromPly(ply, name);
      expect(Array.from(pc.positions)).toEqual([0.5, 1, -2, 3, 4, 5]);
      expect(Array.from(pc.normals!)).toEqual([0, 0, 1, 1, 0, 0]);
      expect(Array.from(pc.colors!)).toEqual([255, 0, 10, 1, 2, 3]);
      const faces = ply.elements[1]!.lists.get('vertex_indices')!;
      expect(Array.from(faces.counts)).toEqual([3]);
      expect(Array.from(faces.values)).toEqual([0, 1, 0]);
    });
  }

  it('round-trips through the binary writer', () => {
    const d = decodeScene(ascii, 'a.ply');
    if (d.kind !== 'points') throw new Error('expected points');
    const back = decodeScene(encodeScene(d, '.ply'), 'b.ply');
    expect(back).toEqual(d);
  });

  it('survives random corruption (fuzz): parses or throws ERR_FORMAT', () => {
    for (const src of [ascii, binary(true), gaussiansToSpz(randomScene(5, 1), 3)]) {
      for (let t = 0; t < 300; ++t) {
        const b = Uint8Array.from(src);
        for (let f = 0; f < 1 + Math.floor(rnd() * 4); ++f) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        try {
          decodeScene(b, src === ascii ? 'f.ply' : 'f.spz');
        } catch (err) {
          expect((err as { code?: string }).code, String(err)).toBe('ERR_FORMAT');
        }
      }
    }
  });
});
