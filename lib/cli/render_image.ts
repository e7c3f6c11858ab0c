// `tessera render-image <model.safetensors> --scale s --out <img.png>`.
import { TesseraError } from '../errors.js';
import { loadGauss2d } from '../gauss2d/io.js';
import { renderGauss2d } from '../gauss2d/render.js';
import { writeImage } from '../io/image.js';
import { Tensor } from '../tensor.js';
import { parseArgs, type Command } from './args.js';

export const renderImageCommand: Command = {
  name: 'render-image',
  summary: 'render a 2D-Gaussian model (from fit-image) at any scale factor',
  usage: `Usage: tessera render-image <model.safetensors> --scale 3.7 --out <big.png> [--width W] [--height H] [--no-clamp]
       tessera render-image <gaussian_model.pth.tar> --image-size WxH --scale 3.7 --out <big.png>

Renders the model's accumulated sum at round(scale·W) x round(scale·H) pixels.
Every output pixel samples the continuous image where its centre falls
(image pixel j sits at j, as in GaussianImage), so each Gaussian's footprint
grows with the factor (GSASR's scale-aware rendering); scale 1 is
GaussianImage's own render of the model (and the fitting render).

Options:
  --scale S       scale factor > 0 (default 1)
  --width W       output width instead of a scale (height follows the aspect unless given)
  --height H      output height instead of a scale
  --out PATH      output image; the format follows the extension (required)
  --no-clamp      keep values outside [0, 1] before quantisation (they are clipped anyway)
  --image-size WxH  for an official GaussianImage checkpoint (Cholesky or RS,
                  not quantised): the size of the image it was trained on,
                  which its file does not store
  --help          show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['scale', 'out', 'width', 'height', 'image-size']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const [input] = args.positional;
    const out = args.flags.get('out');
    if (!input || typeof out !== 'string') { console.error(this.usage); return 2; }
    const num = (name: string): number | undefined => {
      const v = args.flags.get(name);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (v === true || !Number.isFinite(n)) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be a number, got ${String(v)}`);
      return n;
    };
    const sizeFlag = args.flags.get('image-size');
    let imageSize: { width: number; height: number } | undefined;
    if (sizeFlag !== undefined) {
      const m = typeof sizeFlag === 'string' ? /^(\d+)x(\d+)$/.exec(sizeFlag) : null;
      if (!m) throw new TesseraError('ERR_INVALID_ARGUMENT', `--image-size must be WxH (e.g. 768x512), got ${String(sizeFlag)}`);
      imageSize = { width: Number(m[1]), height: Number(m[2]) };
    }
    const { model } = loadGauss2d(input, { imageSize });
    const t0 = performance.now();
    const r = await renderGauss2d(model, { scale: num('scale'), width: num('width'), height: num('height'), clamp: !args.flags.has('no-clamp') });
    const ms = performance.now() - t0;
    // [H,W,3] → [1,3,H,W] for the PNG writer.
    const P = r.width * r.height, chw = Tensor.empty([1, 3, r.height, r.width]);
    const d = chw.data as Float32Array;
    for (let p = 0; p < P; p++) for (let c = 0; c < 3; c++) d[c * P + p] = r.rgb[3 * p + c]!;
    await writeImage(out, chw);
    chw.dispose();
    console.log(`rendered ${model.count} Gaussians (${model.width}x${model.height}) at ${r.width}x${r.height} in ${ms.toFixed(1)} ms -> ${out}`);
    return 0;
  },
};
