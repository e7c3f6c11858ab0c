// `tessera watermark detect <img.png> --tokenizer <vq file> --key <key>`
// (issue 6): re-tokenises the image with the LlamaGen VQ encoder and runs the
// pooled z-test of lib/watermark; prints the z-score and the decision.
import { TesseraError } from '../errors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { LlamaGenVq } from '../models/llamagen/vq.js';
import { resolveWatermark, WATERMARK_DEFAULTS } from '../watermark/greenlist.js';
import { detectImage } from '../watermark/detect.js';
import { DETECT_ALPHA } from '../watermark/ztest.js';
import { parseArgs, type Command } from './args.js';
import { numberFlag } from './generate.js';

const VALUED = ['tokenizer', 'key', 'gamma', 'pool', 'alpha', 'image-size'];

export const watermarkCommand: Command = {
  name: 'watermark',
  summary: 'detect the keyed green-list watermark of a generated image',
  usage: `Usage: tessera watermark detect <img.png> --tokenizer <vq file> --key <key>
         [--gamma ${WATERMARK_DEFAULTS.gamma}] [--pool ${WATERMARK_DEFAULTS.pool}] [--alpha ${DETECT_ALPHA}] [--image-size <px>]

Re-tokenises the image with the VQ encoder and tests its tokens against the
key's pool of green lists: for each list, G of the T tokens are green and
z = (G - E[G])/sd[G] under the null of a key unrelated to the image, with
the moments of G given the image's token counts (with no repeated tokens
this is the textbook (G - gamma T)/sqrt(T gamma (1 - gamma)), also printed).
The largest z over the pool is reported. The decision is
"watermarked" when z exceeds the threshold whose false-positive rate over
the whole pool is alpha (Bonferroni over the pool, normal approximation).
Prints the z-score, the threshold and the decision.

  --gamma, --pool   must match generation's --watermark-gamma and pool (16)
  --image-size <px> resize to px x px before tokenising (default: the image's
                    size rounded to a multiple of the tokenizer's downsampling)`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '--help' || sub === '-h') { console.log(this.usage); return sub === undefined ? 2 : 0; }
    if (sub !== 'detect') { console.error(`tessera watermark: unknown subcommand '${sub}'\n\n${this.usage}`); return 2; }
    const args = parseArgs(rest, VALUED);
    const f = args.flags;
    if (f.has('help')) { console.log(this.usage); return 0; }
    const tokenizer = f.get('tokenizer'), key = f.get('key');
    if (args.positional.length !== 1 || typeof tokenizer !== 'string' || typeof key !== 'string') {
      console.error(`tessera watermark detect: one image, --tokenizer and --key are required\n\n${this.usage}`);
      return 2;
    }
    const watermark = resolveWatermark({ key, gamma: numberFlag(f, 'gamma', WATERMARK_DEFAULTS.gamma), pool: numberFlag(f, 'pool', WATERMARK_DEFAULTS.pool, true) });
    const size = f.has('image-size') ? numberFlag(f, 'image-size', 0, true) : undefined;
    if (size !== undefined && size < 1) throw new TesseraError('ERR_INVALID_ARGUMENT', `--image-size must be positive, got ${size}`);
    const file = openCheckpoint(tokenizer);
    try {
      const vq = LlamaGenVq.load(file.tensors, tokenizer);
      const alpha = numberFlag(f, 'alpha', DETECT_ALPHA);
      const d = await detectImage(vq, args.positional[0]!, { watermark, imageSize: size, alpha });
      console.log(`z-score: ${d.z.toFixed(4)} (green list ${d.list} of ${watermark.pool}: ${d.green}/${d.tokens} tokens green, gamma ${watermark.gamma}; textbook z ${d.zIndependent.toFixed(4)})`);
      console.log(`threshold: ${d.threshold.toFixed(4)} (false-positive rate ${alpha} over the pool of ${watermark.pool} lists)`);
      console.log(`decision: ${d.watermarked ? 'watermarked' : 'not watermarked'}`);
      return 0;
    } finally {
      file.close();
    }
  },
};
