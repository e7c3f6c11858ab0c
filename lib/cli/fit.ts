// `tessera fit <images dir> --cameras <cameras.json> --out <scene.ply>`.
import { readdirSync } from 'node:fs';
import { extname, join, parse } from 'node:path';

import { TesseraError } from '../errors.js';
import { readImage } from '../io/image-read.js';
import { writeScene } from '../io/scene-file.js';
import { readCameraFile } from '../splat/camera-file.js';
import { fitScene, type PosedImage } from '../splat/fit.js';
import { parseArgs, type Command } from './args.js';

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff']);

function intFlag(v: string | true | undefined, name: string, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v === true || !Number.isInteger(n) || n < min) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer >= ${min}, got ${String(v)}`);
  return n;
}

export const fitCommand: Command = {
  name: 'fit',
  summary: 'fit a 3DGS scene to posed images (Adam, densify/prune) and write a .ply',
  usage: `Usage: tessera fit <images dir> --cameras <cameras.json> --out <scene.ply> [--steps 7000] [--sh-degree 0]
                   [--gaussians 1000] [--seed 0] [--test-every 0] [--log-every 500]

Each camera's image is the file in the directory named by the camera entry
(3DGS img_name or "image", any image extension); entries without a name take
the directory's images in sorted order. Images must have the camera's size.
The fit starts from random Gaussians in a cube around the cameras' target and
follows the 3DGS schedule (lib/splat/fit.ts: learning rates, densify every 100
steps from 500 to steps/2, opacity reset every 3000, L1 loss).

Options:
  --cameras PATH   camera file (formats: lib/splat/camera-file.ts)
  --out PATH       output scene (.ply, .splat or .spz)
  --steps N        Adam steps (default 7000)
  --sh-degree D    final SH degree 0..3 (default 0; raised one band per 1000 steps)
  --gaussians N    initial random Gaussians (default 1000)
  --seed N         seed for the start, the view order and the splits (default 0)
  --test-every K   hold out every K-th view and report its PSNR (default 0: none)
  --log-every N    progress every N steps (default 500)
  --help           show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['cameras', 'out', 'steps', 'sh-degree', 'gaussians', 'seed', 'test-every', 'log-every']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const [dir] = args.positional;
    const camPath = args.flags.get('cameras'), out = args.flags.get('out');
    if (!dir || typeof camPath !== 'string' || typeof out !== 'string') { console.error(this.usage); return 2; }
    const cams = readCameraFile(camPath);
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => IMAGE_EXT.has(extname(f).toLowerCase())).sort();
    } catch (e) {
      throw new TesseraError('ERR_IO', `cannot list ${dir}: ${(e as Error).message}`);
    }
    const byStem = new Map(files.map((f) => [parse(f).name, f]));
    const views: PosedImage[] = [];
    for (const [i, c] of cams.entries()) {
      const file = c.image !== undefined ? (byStem.get(parse(c.image).name) ?? (files.includes(c.image) ? c.image : undefined)) : files[i];
      if (!file) throw new TesseraError('ERR_INVALID_ARGUMENT', `camera ${i}: no image ${c.image ?? `#${i}`} in ${dir}`);
      const img = await readImage(join(dir, file));
      if (img.width !== c.camera.width || img.height !== c.camera.height)
        throw new TesseraError('ERR_SHAPE', `${file} is ${img.width}x${img.height} but camera ${i} is ${c.camera.width}x${c.camera.height}`);
      views.push({ camera: c.camera, rgb: img.rgb });
    }
    const testEvery = intFlag(args.flags.get('test-every'), 'test-every', 0, 0);
    const train = testEvery ? views.filter((_, i) => i % testEvery !== 0) : views;
    const test = testEvery ? views.filter((_, i) => i % testEvery === 0) : undefined;
    const logEvery = intFlag(args.flags.get('log-every'), 'log-every', 500, 1);
    const t0 = performance.now();
    const { scene } = await fitScene(train, {
      steps: intFlag(args.flags.get('steps'), 'steps', 7000, 1), shDegree: intFlag(args.flags.get('sh-degree'), 'sh-degree', 0, 0),
      initialGaussians: intFlag(args.flags.get('gaussians'), 'gaussians', 1000, 1), seed: intFlag(args.flags.get('seed'), 'seed', 0, 0),
      background: cams[0]!.background, evalViews: test ?? train, evalEvery: logEvery,
      onProgress: (p) => console.log(`step ${String(p.step).padStart(6)}  L1 ${p.loss.toFixed(4)}  Gaussians ${String(p.gaussians).padStart(7)}  ` +
        `${test ? 'held-out' : 'training'} PSNR ${p.psnr?.toFixed(2)} dB  ${((performance.now() - t0) / 1000).toFixed(1)} s`),
    });
    writeScene(out, { kind: 'gaussians', scene, format: 'ply' });
    console.log(`wrote ${scene.count} Gaussians to ${out}`);
    return 0;
  },
};
