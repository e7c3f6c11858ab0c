// `tessera edit`: VAR zero-shot in-painting, out-painting and class-conditional
// editing of an image inside a box (issue 4's CLI contract).
import { writeFileSync } from 'node:fs';

import sharp from 'sharp';

import { TesseraError } from '../errors.js';
import { writeImage } from '../io/image.js';
import { edit, type Box, type EditMode } from '../models/var/edit.js';
import { loadVar } from '../models/var/load.js';
import { Tensor } from '../tensor.js';
import { parseArgs, type Command } from './args.js';
import { numberFlag, progress } from './generate.js';

const VALUED = ['tokenizer', 'weights', 'image', 'box', 'mode', 'class', 'cfg', 'top-k', 'top-p', 'seed', 'out', 'tokens', 'temperature'];

/** An RGB image file as [1, 3, H, W] in [0, 1] (byte / 255, as torchvision's ToTensor). */
export async function readRgbImage(path: string): Promise<Tensor> {
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    raw = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new TesseraError('ERR_IO', `cannot read ${path}: ${(e as Error).message}`);
  }
  const { width: W, height: H, channels } = raw.info;
  if (channels !== 3)
    throw new TesseraError('ERR_SHAPE', `${path} has ${channels} channel${channels === 1 ? '' : 's'}; edit needs an RGB image (3 channels, no alpha)`);
  const x = new Float32Array(3 * H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) x[c * H * W + p] = raw.data[p * 3 + c]! / 255;
  return Tensor.from(x, [1, 3, H, W]);
}

function parseBox(v: string | true | undefined): Box {
  const parts = typeof v === 'string' ? v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s))) : [];
  if (parts.length !== 4 || !parts.every(Number.isFinite))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--box needs four numbers x0,y0,x1,y1 (pixels), got ${String(v)}`);
  return parts as unknown as Box;
}

export const editCommand: Command = {
  name: 'edit',
  summary: 'VAR zero-shot in-painting, out-painting and class-conditional editing in a box',
  usage: `Usage: tessera edit --tokenizer <vae file> --weights <var file> --image <in.png>
         --box x0,y0,x1,y1 [--mode inpaint|outpaint] [--class <int>]
         [--cfg 1.5] [--top-k 900] [--top-p 0.96] [--seed 0] [--temperature 1]
         [--more-smooth] --out <file.png> [--tokens <file.json>]

VAR's zero-shot editing (the official demo's procedure): the image is encoded
into per-scale tokens; the box, as fractions of the image rounded onto the
last scale's token grid, marks the tokens to regenerate; at every scale the
kept source tokens (that grid resized bilinearly to the scale, > 0.5; the
first 1x1 scale always) replace the prediction before it feeds the next
scale. Both files may be .pth or .safetensors.

Options:
  --tokenizer <file>  the VQVAE (vae_ch160v4096z32.pth)
  --weights <file>    the VAR transformer (var_d16.pth ... var_d36.pth)
  --image <file>      RGB image (PNG, JPEG, ...) of exactly the model's size:
                      last scale x 16 (256x256; 512x512 for d36)
  --box x0,y0,x1,y1   pixels of the input image, x1 and y1 exclusive;
                      0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height
  --mode <m>          inpaint (default): regenerate inside the box;
                      outpaint: keep the box, regenerate around it
  --class <int>       class id to paint in (class-conditional editing);
                      absent or -1: the null class, plain in/out-painting
  --cfg <x>           guidance at the last scale (default 1.5; no effect
                      with the null class)
  --top-k <k>         keep the k largest logits; 1 is greedy, 0 off (default 900)
  --top-p <p>         nucleus mass; 0 or 1 off (default 0.96)
  --temperature <t>   logit divisor (default 1)
  --seed <n>          random seed (default 0)
  --more-smooth       the official Gumbel-softmax codebook mix (the demo uses it)
  --out <file>        the edited image (PNG, or the extension's format)
  --tokens <file>     JSON token ids of the result: one array per scale
                      (row-major), the source's ids where kept
  --help              show this help`,
  async run(argv) {
    const args = parseArgs(argv, VALUED);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const f = args.flags;
    const tokenizer = f.get('tokenizer'), weights = f.get('weights'), image = f.get('image'), out = f.get('out');
    if (typeof tokenizer !== 'string' || typeof weights !== 'string' || typeof image !== 'string' || typeof out !== 'string' || !f.has('box')) {
      console.error(`tessera edit: --tokenizer, --weights, --image, --box and --out are required\n\n${this.usage}`);
      return 2;
    }
    if (args.positional.length > 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `unexpected argument ${args.positional[0]}`);
    const mode = f.get('mode') ?? 'inpaint';
    if (mode !== 'inpaint' && mode !== 'outpaint') throw new TesseraError('ERR_INVALID_ARGUMENT', `--mode must be inpaint or outpaint, got ${String(mode)}`);
    const options = {
      box: parseBox(f.get('box')), mode: mode as EditMode, classes: [numberFlag(f, 'class', -1, true)],
      cfg: numberFlag(f, 'cfg', 1.5), topK: numberFlag(f, 'top-k', 900, true), topP: numberFlag(f, 'top-p', 0.96),
      temperature: numberFlag(f, 'temperature', 1), seed: numberFlag(f, 'seed', 0, true), moreSmooth: f.has('more-smooth'),
      onScale: progress,
    };
    const img = await readRgbImage(image);
    const pipe = await loadVar(tokenizer, weights);
    try {
      const result = await edit(pipe.vae, pipe.model, { ...options, image: img });
      await writeImage(out, result.images, 0);
      const tokensPath = f.get('tokens');
      if (typeof tokensPath === 'string') writeFileSync(tokensPath, `${JSON.stringify(result.tokens[0])}\n`);
      result.images.dispose();
      return 0;
    } finally {
      img.dispose();
      pipe.close();
    }
  },
};
