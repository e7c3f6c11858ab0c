// `tessera generate`: class-conditional VAR sampling to PNG (issue 4's CLI contract).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { TesseraError } from '../errors.js';
import { writeImage } from '../io/image.js';
import { runEmbeddedGenerate } from '../models/embedded.js';
import { computeFlag, runLlamaGenGenerate } from '../models/llamagen/cli.js';
import { generate } from '../models/var/generate.js';
import { loadVar } from '../models/var/load.js';
import { parseArgs, type Command } from './args.js';

const VALUED = ['tokenizer', 'weights', 'class', 'cfg', 'top-k', 'top-p', 'seed', 'batch', 'out', 'tokens', 'temperature', 'compute'];

/** A numeric flag's value, or `fallback` when absent (shared by the VAR commands). */
export function numberFlag(flags: Map<string, string | true>, name: string, fallback: number, integer = false): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === true || v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} needs ${integer ? 'an integer' : 'a number'}, got ${String(v)}`);
  return n;
}

/** A per-scale progress bar on stderr when it is a terminal. */
export function progress(si: number, scales: number): void {
  if (!process.stderr.isTTY) return;
  const width = 30, done = Math.round(((si + 1) / scales) * width);
  process.stderr.write(`\r[${'#'.repeat(done)}${' '.repeat(width - done)}] scale ${si + 1}/${scales}${si + 1 === scales ? '\n' : ''}`);
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'class-conditional image generation: VAR (next-scale) or LlamaGen (next-token, speculative decoding)',
  usage: `Usage: tessera generate [--class <name|id>] [--seed 0] [--batch 8] [--out tessera-samples.png]
       tessera generate --tokenizer <vae file> --weights <var file> --class <int>
         [--cfg 1.5] [--top-k 900] [--top-p 0.96] [--seed 0] [--batch N]
         [--temperature 1] [--more-smooth] [--compute fp32|bf16] --out <file.png>
         [--tokens <file.json>]

Without --tokenizer and --weights: the embedded tiny VAR (models/tiny-var,
ten shapes) writes a labelled grid, one row of --batch samples per class (or
only --class, by name or id), with the model's own sampling settings.

Runs VAR's next-scale sampling (official CFG ramp: scale si uses
cfg·si/(SN−1)) and decodes with the multi-scale VQVAE. Both files may be
.pth (PyTorch) or .safetensors; the architecture is read from them.

A LlamaGen GPT in --weights (told from its keys) runs LlamaGen instead:
       tessera generate --tokenizer <vq file> --weights <gpt file> --class <int>
         [--image-size 256] [--cfg 2.0] [--top-k 1] [--decode ar|sjd|lantern|draft|nar]
         [--draft <gpt file>] [--seed 0] --out <file.png> [--tokens <file.json>]
\`tessera generate --tokenizer <vq file> --weights <gpt file> --help\` lists
its options (speculative decoding, watermarking, bf16 weights).

Options:
  --tokenizer <file>  the VQVAE (vae_ch160v4096z32.pth)
  --weights <file>    the VAR transformer (var_d16.pth ... var_d36.pth)
  --class <int>       ImageNet class id; -1 for the null class (unconditional)
  --cfg <x>           guidance at the last scale (default 1.5)
  --top-k <k>         keep the k largest logits; 1 is greedy, 0 off (default 900)
  --top-p <p>         nucleus mass; 0 or 1 off (default 0.96)
  --temperature <t>   logit divisor (default 1)
  --seed <n>          image b of the batch draws from seed + b (default 0)
  --more-smooth       the official Gumbel-softmax codebook mix (smoother
                      images; for viewing, not for FID)
  --compute <c>       fp32 (default) or bf16: the transformer's weights rounded
                      to bfloat16 (fp32 accumulation; fastest on CPUs with
                      AVX512-BF16)
  --batch <N>         images of the class (default 1). With N > 1, --out is a
                      DIRECTORY and image b is written to <out>/<b>.png
                      (b zero-padded to 4 digits), from seed + b.
  --out <path>        PNG file (or directory with --batch N > 1)
  --tokens <file>     JSON token ids: one array per scale (row-major); with
                      --batch N > 1, an array of those, one per image
  --help              show this help`,
  async run(argv) {
    // A LlamaGen GPT in --weights takes its own path (lib/models/llamagen/cli.ts).
    const llamagen = await runLlamaGenGenerate(argv);
    if (llamagen !== undefined) return llamagen;
    const args = parseArgs(argv, VALUED);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const f = args.flags;
    const tokenizer = f.get('tokenizer'), weights = f.get('weights'), out = f.get('out');
    if (tokenizer === undefined && weights === undefined) {
      if (f.has('compute')) throw new TesseraError('ERR_INVALID_ARGUMENT', '--compute applies to --tokenizer/--weights models, not the embedded one');
      return runEmbeddedGenerate(f, (name, fb, int) => numberFlag(f, name, fb, int));
    }
    if (typeof tokenizer !== 'string' || typeof weights !== 'string' || typeof out !== 'string' || !f.has('class')) {
      console.error(`tessera generate: --tokenizer, --weights, --class and --out are required\n\n${this.usage}`);
      return 2;
    }
    if (args.positional.length > 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `unexpected argument ${args.positional[0]}`);
    const cls = numberFlag(f, 'class', 0, true);
    const batch = numberFlag(f, 'batch', 1, true);
    if (batch < 1 || batch > 4096) throw new TesseraError('ERR_INVALID_ARGUMENT', `--batch must be in 1..4096, got ${batch}`);
    const options = {
      classes: new Array<number>(batch).fill(cls), cfg: numberFlag(f, 'cfg', 1.5), topK: numberFlag(f, 'top-k', 900, true),
      topP: numberFlag(f, 'top-p', 0.96), temperature: numberFlag(f, 'temperature', 1), seed: numberFlag(f, 'seed', 0, true),
      moreSmooth: f.has('more-smooth'), onScale: progress,
    };
    const compute = computeFlag(f.get('compute'));
    const pipe = await loadVar(tokenizer, weights, { compute });
    try {
      const result = await generate(pipe.vae, pipe.model, options);
      if (batch === 1) {
        await writeImage(out, result.images, 0);
      } else {
        mkdirSync(out, { recursive: true });
        for (let b = 0; b < batch; b++) await writeImage(join(out, `${String(b).padStart(4, '0')}.png`), result.images, b);
      }
      const tokensPath = f.get('tokens');
      if (typeof tokensPath === 'string')
        writeFileSync(tokensPath, `${JSON.stringify(batch === 1 ? result.tokens[0] : result.tokens)}\n`);
      result.images.dispose();
      return 0;
    } finally {
      pipe.close();
    }
  },
};
