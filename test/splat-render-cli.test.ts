// `tessera render` (lib/cli/render.ts): the CLI contract of issue 5 part 5.
// PNGs are read back and compared with splat.render on the same scene and
// camera: 8-bit images must match the API's render quantised the same way
// (exactly: same code path), depth to within the 16-bit rounding.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { splat } from '../lib/index.js';
import { writeScene } from '../lib/io/scene-file.js';
import { framePath, orbitAround, renderCommand, sceneCentre } from '../lib/cli/render.js';

const W = 41, H = 27;  // odd sizes: partial tiles on both axes
let dir = '';
const scene = splat.syntheticScene({ count: 200, seed: 5, shDegree: 2 });
const cam = splat.lookAt([0.4, -0.3, -3.2], [0, 0, 0], { width: W, height: H });
const cam2 = splat.lookAt([2.5, 0, -2.5], [0, 0, 0], { width: W, height: H });
const issueEntry = (c: splat.PinholeCamera, background?: number[]) =>
  ({ width: c.width, height: c.height, fx: c.fx, fy: c.fy, cx: c.cx, cy: c.cy, viewMatrix: Array.from(c.worldToCamera), background });

async function readPng(path: string, channels: 1 | 3): Promise<Uint8Array> {
  const meta = await sharp(path).metadata();
  expect(meta.channels).toBe(channels);
  const img = sharp(path);
  const { data, info } = await (channels === 1 ? img.toColourspace('b-w') : img).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height, info.channels]).toEqual([W, H, channels]);
  return new Uint8Array(data);
}
async function readPng16(path: string): Promise<Uint16Array> {
  const meta = await sharp(path).metadata();
  expect(meta.depth).toBe('ushort');
  const { data } = await sharp(path).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  const b = Buffer.from(data);
  return Uint16Array.from({ length: W * H }, (_, i) => b.readUInt16LE(2 * i));
}
const q8 = (v: ArrayLike<number>) => Uint8Array.from(v, (x) => Math.min(255, Math.max(0, Math.floor(x * 255 + 0.5))));
async function run(...argv: string[]): Promise<number> {
  const log = console.log, err = console.error;
  console.log = () => {};
  console.error = () => {};
  try {
    return await renderCommand.run(argv);
  } finally {
    console.log = log;
    console.error = err;
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-render-'));
  writeScene(join(dir, 'scene.ply'), { kind: 'gaussians', scene, format: 'ply' });
  writeScene(join(dir, 'scene.splat'), { kind: 'gaussians', scene, format: 'splat' });
  writeScene(join(dir, 'scene.spz'), { kind: 'gaussians', scene, format: 'spz' });
  writeFileSync(join(dir, 'one.json'), JSON.stringify(issueEntry(cam, [0.2, 0.3, 0.4])));
  writeFileSync(join(dir, 'two.json'), JSON.stringify([issueEntry(cam), issueEntry(cam2)]));
  // The 3DGS training code's cameras.json: camera→world rotation rows, camera centre.
  const V = Array.from(cam2.worldToCamera);
  const rotation = [0, 1, 2].map((r) => [0, 1, 2].map((k) => V[4 * k + r]!));
  const position = [0, 1, 2].map((k) => -(V[k]! * V[3]! + V[4 + k]! * V[7]! + V[8 + k]! * V[11]!));
  writeFileSync(join(dir, 'cameras.json'), JSON.stringify([{ id: 0, img_name: 'a', width: W, height: H, position, rotation, fx: cam2.fx, fy: cam2.fy }]));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tessera render', () => {
  it('writes rgb (with the file\'s background), 16-bit depth and alpha PNGs equal to splat.render', async () => {
    const out = join(dir, 'a.png'), depth = join(dir, 'a-depth.png'), alpha = join(dir, 'a-alpha.png');
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'one.json'), '--out', out, '--depth', depth, '--alpha', alpha)).toBe(0);
    const { views: [v] } = await splat.render(scene, cam, { background: [0.2, 0.3, 0.4] });
    expect(await readPng(out, 3)).toEqual(q8(v!.rgb.data as Float32Array));
    expect(await readPng(alpha, 1)).toEqual(q8(v!.alpha.data as Float32Array));
    // depth·1000, rounded; 0 where nothing was blended.
    const d16 = await readPng16(depth), z = v!.depth.data as Float32Array;
    let covered = 0;
    for (let i = 0; i < z.length; i++) {
      if (z[i]! > 0) { covered++; expect(Math.abs(d16[i]! - z[i]! * 1000)).toBeLessThanOrEqual(0.5 + 1e-3); }
      else expect(d16[i]).toBe(0);
    }
    expect(covered).toBeGreaterThan(z.length / 4);
  });

  it('--depth-scale changes the depth units', async () => {
    const depth = join(dir, 'b-depth.png');
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'one.json'), '--out', join(dir, 'b.png'), '--depth', depth, '--depth-scale', '10000')).toBe(0);
    const { views: [v] } = await splat.render(scene, cam);
    const d16 = await readPng16(depth), z = v!.depth.data as Float32Array;
    const i = z.findIndex((x) => x > 0);
    expect(d16[i]).toBe(Math.round(z[i]! * 10000));
  });

  it('--camera-index picks from an array; a 3DGS cameras.json gives the same view', async () => {
    const a = join(dir, 'c1.png'), b = join(dir, 'c2.png');
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'two.json'), '--camera-index', '1', '--out', a)).toBe(0);
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'cameras.json'), '--out', b)).toBe(0);
    const { views: [v] } = await splat.render(scene, cam2);
    const ref = q8(v!.rgb.data as Float32Array), pa = await readPng(a, 3), pb = await readPng(b, 3);
    expect(pa).toEqual(ref);
    // cameras.json stores the pose as position + rotation: a float round trip, at most 1/255 apart.
    expect(Math.max(...pb.map((x, i) => Math.abs(x - ref[i]!)))).toBeLessThanOrEqual(1);
  });

  it('--sh-degree truncates the SH and --antialiased switches the mode', async () => {
    const a = join(dir, 'sh0.png'), b = join(dir, 'aa.png');
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'two.json'), '--sh-degree', '0', '--out', a)).toBe(0);
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'two.json'), '--antialiased', '--out', b)).toBe(0);
    const sh0 = (await splat.render(scene, cam, { shDegree: 0 })).views[0]!;
    const full = (await splat.render(scene, cam)).views[0]!;
    const aa = (await splat.render(scene, cam, { mode: 'antialiased' })).views[0]!;
    expect(await readPng(a, 3)).toEqual(q8(sh0.rgb.data as Float32Array));
    expect(q8(sh0.rgb.data as Float32Array)).not.toEqual(q8(full.rgb.data as Float32Array));
    expect(await readPng(b, 3)).toEqual(q8(aa.rgb.data as Float32Array));
  });

  it('reads .splat and .spz scenes (lossy formats: close to the .ply render)', async () => {
    const { views: [v] } = await splat.render(scene, cam, { background: [0.2, 0.3, 0.4], shDegree: 0 });
    const ref = q8(v!.rgb.data as Float32Array);
    for (const ext of ['splat', 'spz']) {
      const out = join(dir, `fmt-${ext}.png`);
      expect(await run(join(dir, `scene.${ext}`), '--camera', join(dir, 'one.json'), '--sh-degree', '0', '--out', out)).toBe(0);
      const px = await readPng(out, 3);
      let se = 0;
      for (let i = 0; i < px.length; i++) se += ((px[i]! - ref[i]!) / 255) ** 2;
      // 8-bit colours and quantised geometry: PSNR above 30 dB against the float scene.
      expect(10 * Math.log10(px.length / se)).toBeGreaterThan(30);
    }
  });

  it('--orbit N writes N frames <out>-kkkk.png around the scene centre', async () => {
    const out = join(dir, 'orbit.png');
    expect(await run(join(dir, 'scene.ply'), '--camera', join(dir, 'one.json'), '--orbit', '4', '--out', out, '--alpha', join(dir, 'orbit-a.png'))).toBe(0);
    for (let k = 0; k < 4; k++) {
      expect(existsSync(framePath(out, k))).toBe(true);
      expect(existsSync(framePath(join(dir, 'orbit-a.png'), k))).toBe(true);
    }
    expect(existsSync(framePath(out, 4))).toBe(false);
    const centre = sceneCentre(scene);
    const cams = orbitAround(cam, centre, 4);
    // Every frame looks at the centre (it projects to the principal point) from the same distance.
    const eye = (c: splat.PinholeCamera) => { const V = c.worldToCamera; return [0, 1, 2].map((k) => -(V[k]! * V[3]! + V[4 + k]! * V[7]! + V[8 + k]! * V[11]!)); };
    const dist = (c: splat.PinholeCamera) => Math.hypot(...eye(c).map((v, k) => v - centre[k]!));
    for (const c of cams) {
      const V = c.worldToCamera, p = [0, 1, 2].map((r) => V[4 * r]! * centre[0] + V[4 * r + 1]! * centre[1] + V[4 * r + 2]! * centre[2] + V[4 * r + 3]!);
      expect(p[0]! / p[2]!).toBeCloseTo(0, 9);
      expect(p[1]! / p[2]!).toBeCloseTo(0, 9);
      expect(dist(c)).toBeCloseTo(dist(cam), 9);
    }
    // Frame 0 starts at the given camera's centre; frame 2 is opposite it across the axis.
    eye(cams[0]!).forEach((v, k) => expect(v).toBeCloseTo(eye(cam)[k]!, 9));
    const { views: [v] } = await splat.render(scene, cams[2]!, { background: [0.2, 0.3, 0.4] });
    expect(await readPng(framePath(out, 2), 3)).toEqual(q8(v!.rgb.data as Float32Array));
  });

  it('refuses bad inputs with TesseraError codes and prints usage without required flags', async () => {
    const ply = join(dir, 'scene.ply'), one = join(dir, 'one.json'), out = join(dir, 'x.png');
    await expect(run(ply, '--camera', join(dir, 'none.json'), '--out', out)).rejects.toMatchObject({ code: 'ERR_IO' });
    await expect(run(join(dir, 'none.ply'), '--camera', one, '--out', out)).rejects.toMatchObject({ code: 'ERR_IO' });
    await expect(run(one, '--camera', one, '--out', out)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
    await expect(run(ply, '--camera', join(dir, 'two.json'), '--camera-index', '2', '--out', out)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(run(ply, '--camera', one, '--sh-degree', '4', '--out', out)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(run(ply, '--camera', one, '--sh-degree', '-1', '--out', out)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(run(ply, '--camera', one, '--orbit', '0', '--out', out)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(run(ply, '--camera', one, '--out', join(dir, 'x.jpg'))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(run(ply, '--camera', one, '--out', out, '--depth-scale', '0')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ width: W, height: H, fx: 10, fy: 10, cx: 1, cy: 1, viewMatrix: [1, 2] }));
    await expect(run(ply, '--camera', join(dir, 'bad.json'), '--out', out)).rejects.toMatchObject({ code: 'ERR_FORMAT' });
    expect(await run(ply, '--out', out)).toBe(2);
    expect(await run('--camera', one, '--out', out)).toBe(2);
  });
});
