// `tessera fit-image <in.png> --gaussians N --out <model.safetensors>`.
import { basename } from 'node:path';

import { TesseraError } from '../errors.js';
import { fitImage } from '../gauss2d/fit.js';
import { saveGauss2d } from '../gauss2d/io.js';
import { readImage } from '../io/image-read.js';
import { parseArgs, type Command } from './args.js';

function intFlag(v: string | true | undefined, name: string, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v === true || !Number.isInteger(n) || n < min) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer >= ${min}, got ${String(v)}`);
  return n;
}

export const fitImageCommand: Command = {
  name: 'fit-image',
  summary: 'represent an image by N 2D Gaussians (GaussianImage) and save them as safetensors',
  usage: `Usage: tessera fit-image <in.png> --gaussians 20000 --out <model.safetensors> [--steps 2000] [--seed 0] [--log-every 100]

Fits N 2D Gaussians (GaussianImage's Cholesky parameterisation, opacity 1,
accumulated-sum rendering) to the image with Adam on an L2 loss, printing the
PSNR as it goes, and writes the model (tensors xy, cholesky, color and the
image size in the metadata). Render it at any scale with
\`tessera render-image <model> --scale s --out <img.png>\`.

Options:
  --gaussians N   number of Gaussians (default 20000)
  --out PATH      output .safetensors file (required)
  --steps N       Adam steps (default 2000)
  --seed N        initialisation seed (default 0)
  --log-every N   print PSNR every N steps (default 100)
  --help          show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['gaussians', 'out', 'steps', 'seed', 'log-every']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const [input] = args.positional;
    const out = args.flags.get('out');
    if (!input || typeof out !== 'string') { console.error(this.usage); return 2; }
    const gaussians = intFlag(args.flags.get('gaussians'), 'gaussians', 20000, 1);
    const steps = intFlag(args.flags.get('steps'), 'steps', 2000, 0);
    const seed = intFlag(args.flags.get('seed'), 'seed', 0, 0);
    const logEvery = intFlag(args.flags.get('log-every'), 'log-every', 100, 1);
    const image = await readImage(input);
    console.log(`${basename(input)}: ${image.width}x${image.height}, fitting ${gaussians} Gaussians for ${steps} steps`);
    const t0 = performance.now();
    const { model, psnr } = await fitImage(image, {
      gaussians, steps, seed, logEvery,
      onProgress: (p) => console.log(`step ${String(p.step).padStart(6)}  PSNR ${p.psnr.toFixed(2)} dB  ${((performance.now() - t0) / 1000).toFixed(1)} s`),
    });
    saveGauss2d(out, model, { source: basename(input), psnr: psnr.toFixed(3), steps: String(steps), seed: String(seed) });
    console.log(`wrote ${model.count} Gaussians to ${out} (PSNR ${psnr.toFixed(2)} dB at scale 1)`);
    return 0;
  },
};
