// `tessera generate` for LlamaGen GPT checkpoints (issue 6's CLI contract):
// lib/cli/generate.ts hands over when --weights holds a LlamaGen GPT.
import { writeFileSync } from 'node:fs';

import { generateWithDraft } from '../../decoding/draft.js';
import { generateLantern, LANTERN_DELTA, LANTERN_K } from '../../decoding/lantern.js';
import { generateNar } from '../../decoding/nar.js';
import { generateSjd } from '../../decoding/sjd.js';
import { TesseraError } from '../../errors.js';
import { parseArgs } from '../../cli/args.js';
import { openCheckpoint } from '../../io/checkpoint.js';
import { detectFamily } from '../../io/detect.js';
import { writeImage } from '../../io/image.js';
import { generateAr, type DecodeStats, type Generated } from './generate.js';
import { loadLlamaGen } from './load.js';
import { resolveWatermark, watermarkBias } from '../../watermark/greenlist.js';

export type DecodeMode = 'ar' | 'sjd' | 'lantern' | 'draft' | 'nar';
const MODES: readonly DecodeMode[] = ['ar', 'sjd', 'lantern', 'draft', 'nar'];

export interface LlamaGenFileOptions {
  tokenizer: string;
  weights: string;
  classId: number;
  /** Pixels per side; the token grid is imageSize / the tokenizer's downsampling (256 → 16, 384 → 24 for VQ-16). */
  imageSize?: number;
  cfg?: number;
  /** The official --cfg-interval (plain decoding): guided only while decode step i <= it; -1 = always. */
  cfgInterval?: number;
  /** Default 1 (greedy), as the CLI contract `[--top-k 1]`; the library's generate* functions default to the official 2000. */
  topK?: number;
  topP?: number;
  temperature?: number;
  seed?: number;
  decode?: DecodeMode;
  /** Tokens per target pass (default 16 for Jacobi drafts, 5 with a draft model). */
  window?: number;
  /** Draft model (a smaller LlamaGen GPT) for --decode draft, or lantern with model drafts. */
  draft?: string;
  /** LANTERN neighbours per draft (default 1000) and total-variation budget (default 0.1). */
  lanternK?: number;
  lanternDelta?: number;
  /** LANTERN++'s multiplicative bound λ > 1 (moved mass ≤ (λ − 1)·p(x)), instead of δ. */
  lanternLambda?: number;
  /** Green-list watermark: key (enables it), bias δ and green fraction γ (lib/watermark/greenlist.ts). */
  watermarkKey?: string;
  watermarkDelta?: number;
  watermarkGamma?: number;
  /** Head count when the rule does not fit the checkpoint (see gptConfig). */
  heads?: number;
  /** Weight arithmetic, the --compute flag: fp32 (default) or bf16 (weights rounded to bfloat16, fp32 accumulation). */
  compute?: string | true;
  out: string;
  /** JSON file for the tokens: [[...G·G ids in raster order]]. */
  tokens?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Generates one image of `classId` and writes it (and the tokens); returns the decoding counters. */
export async function generateLlamaGenToFile(o: LlamaGenFileOptions): Promise<DecodeStats> {
  const decode = o.decode ?? 'ar';
  if (!MODES.includes(decode)) throw new TesseraError('ERR_INVALID_ARGUMENT', `--decode must be one of ${MODES.join(', ')}, got ${String(decode)}`);
  if (decode === 'draft' && o.draft === undefined) throw new TesseraError('ERR_INVALID_ARGUMENT', '--decode draft needs --draft <gpt file>');
  if (o.draft !== undefined && decode !== 'draft' && decode !== 'lantern')
    throw new TesseraError('ERR_INVALID_ARGUMENT', '--draft is only used with --decode draft or lantern');
  if (o.cfgInterval !== undefined && decode !== 'ar') throw new TesseraError('ERR_INVALID_ARGUMENT', '--cfg-interval is only used with --decode ar');
  if (o.window !== undefined && (decode === 'ar' || decode === 'nar')) throw new TesseraError('ERR_INVALID_ARGUMENT', '--window is only used with speculative decoding');
  if ((o.lanternK !== undefined || o.lanternDelta !== undefined || o.lanternLambda !== undefined) && decode !== 'lantern')
    throw new TesseraError('ERR_INVALID_ARGUMENT', '--lantern-k, --lantern-delta and --lantern-lambda are only used with --decode lantern');
  if (o.lanternDelta !== undefined && o.lanternLambda !== undefined)
    throw new TesseraError('ERR_INVALID_ARGUMENT', '--lantern-delta and --lantern-lambda are alternatives: give one');
  if ((o.watermarkDelta !== undefined || o.watermarkGamma !== undefined) && o.watermarkKey === undefined)
    throw new TesseraError('ERR_INVALID_ARGUMENT', '--watermark-delta and --watermark-gamma need --watermark-key');
  const compute = computeFlag(o.compute);
  const p = await loadLlamaGen(o.tokenizer, o.weights, { heads: o.heads, compute, draft: o.draft });
  try {
    const { model, drafter } = p;
    const grid = p.grid(o.imageSize ?? 256, '--image-size');
    if (decode === 'nar' && !model.hasVerticalHead)
      throw new TesseraError('ERR_INVALID_ARGUMENT', `--decode nar needs a NAR checkpoint with the vertical head (layers.{n_layer}, medusa_norm, medusa_output): ${o.weights} has none`);
    const watermark = o.watermarkKey === undefined ? undefined
      : resolveWatermark({ key: o.watermarkKey, delta: o.watermarkDelta, gamma: o.watermarkGamma });
    const options = {
      classes: [o.classId], grid, cfg: o.cfg, topK: o.topK ?? 1, topP: o.topP, temperature: o.temperature, seed: o.seed,
      onProgress: o.onProgress, window: o.window,
      logitBias: watermark && watermarkBias(watermark, model.config.vocabulary, o.seed ?? 0, 1),
    };
    let result: Generated;
    if (decode === 'sjd') result = await generateSjd(model, options);
    else if (decode === 'draft') result = await generateWithDraft(model, drafter!, options);
    else if (decode === 'nar') result = await generateNar(model, options);
    else if (decode === 'lantern') {
      const table = await p.neighbourTable(o.lanternK ?? LANTERN_K);
      result = await generateLantern(model, { ...options, table, k: o.lanternK, drafter,
        ...(o.lanternLambda !== undefined ? { lambda: o.lanternLambda } : { delta: o.lanternDelta ?? LANTERN_DELTA }) });
    } else result = await generateAr(model, { ...options, cfgInterval: o.cfgInterval });
    const img = await p.decodeImages(result.tokens, grid);
    await writeImage(o.out, img, 0);
    img.dispose();
    if (o.tokens !== undefined) writeFileSync(o.tokens, `${JSON.stringify(result.tokens)}\n`);
    return result.stats;
  } finally {
    p.close();
  }
}

const VALUED = ['tokenizer', 'weights', 'class', 'image-size', 'cfg', 'cfg-interval', 'top-k', 'top-p', 'temperature', 'seed', 'decode', 'draft', 'window', 'heads', 'compute', 'out', 'tokens',
  'lantern-k', 'lantern-delta', 'lantern-lambda', 'watermark-key', 'watermark-delta', 'watermark-gamma'];

export const LLAMAGEN_USAGE = `Usage: tessera generate --tokenizer <vq file> --weights <gpt file> --class <int>
         [--image-size 256] [--cfg 2.0] [--cfg-interval -1] [--top-k 1] [--top-p 1] [--temperature 1]
         [--decode ar|sjd|lantern|draft|nar] [--window 16] [--draft <gpt file>]
         [--lantern-k 1000] [--lantern-delta 0.1 | --lantern-lambda L]
         [--watermark-key <key>] [--watermark-delta 2] [--watermark-gamma 0.25]
         [--seed 0] [--heads H] [--compute fp32|bf16] --out <file.png> [--tokens <file.json>]

LlamaGen class-conditional next-token generation (chosen when --weights is a
LlamaGen GPT checkpoint). Prints the decoding counters on stdout.

  --image-size <px>   256 (16x16 tokens) or 384 (24x24) with VQ-16 (default 256)
  --cfg <s>           guidance l_u + s(l_c - l_u), applied when s > 1 (default 2.0)
  --cfg-interval <i>  the official cfg_interval (--decode ar): decode step i
                      (token i+1) is guided only while i <= this; -1 = every
                      token (default)
  --top-k <k>         keep the k largest logits; 1 greedy (the default), 0 off;
                      the official sample_c2i.py samples with 2000
  --top-p <p>         nucleus mass, 1 off (default); 0 keeps only the most
                      likely token (greedy), as the official filter
  --decode <mode>     ar (plain); sjd (speculative Jacobi, lossless); draft
                      (speculative sampling with --draft, lossless); lantern
                      (relaxed acceptance over codebook neighbours, lossy; Jacobi
                      drafts, or the --draft model's); nar (next-neighbour
                      order, one anti-diagonal per pass: 2G-1 passes; needs a
                      NAR checkpoint with the vertical head medusa_output)
  --window <n>        tokens per target pass, x0 included (default 16; 5 with --draft)
  --draft <file>      a smaller LlamaGen GPT (same tokenizer and classes) to draft with
  --lantern-k <k>     LANTERN neighbours per draft (default 1000, at most V - 1)
  --lantern-delta <d> LANTERN total-variation budget (default 0.1; 0 = exact)
  --lantern-lambda <L> LANTERN++'s multiplicative bound L > 1 instead of delta
                      (moved neighbour mass at most (L - 1)·p(x))
  --watermark-key <s> add the keyed green-list bias (detect: tessera watermark detect)
  --watermark-delta   logit bias on green tokens (default 2)
  --watermark-gamma   green fraction of the vocabulary (default 0.25)
  --heads <H>         head count, when not head_dim 64 (100 for dim 3200)
  --compute <c>       fp32 (default) or bf16: the GPT's weights rounded to
                      bfloat16 (half the bytes per token; fp32 accumulation)
  --tokens <file>     JSON [[...]]: the G*G token ids in raster order`;

function numberFlag(flags: Map<string, string | true>, name: string, integer = false): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} needs ${integer ? 'an integer' : 'a number'}, got ${String(v)}`);
  return n;
}

/** `--compute fp32|bf16` (absent: fp32) as the packed-weight arithmetic. */
export function computeFlag(v: string | true | undefined): 'float32' | 'bfloat16' {
  if (v === undefined || v === 'fp32') return 'float32';
  if (v === 'bf16') return 'bfloat16';
  throw new TesseraError('ERR_INVALID_ARGUMENT', `--compute must be fp32 or bf16, got ${v === true ? 'nothing' : v}`);
}

/** Whether `path` is a LlamaGen GPT checkpoint (by its keys; see lib/io/detect.ts). */
export function isLlamaGenGpt(path: string): boolean {
  const c = openCheckpoint(path);
  try {
    return detectFamily(c.tensors).family === 'llamagen-gpt';
  } finally {
    c.close();
  }
}

/** Formats the counters with vLLM's spec-decode names. */
export function formatStats(s: DecodeStats): string {
  return [
    `forward_passes=${s.forwardPasses}`, `tokens=${s.tokens}`, `tokens_per_pass=${s.tokensPerPass.toFixed(3)}`,
    `spec_decode_num_drafts=${s.numDrafts}`, `spec_decode_num_draft_tokens=${s.numDraftTokens}`,
    `spec_decode_num_accepted_tokens=${s.numAcceptedTokens}`, `acceptance_rate=${s.acceptanceRate.toFixed(4)}`,
    `mean_acceptance_length=${s.meanAcceptanceLength.toFixed(3)}`,
    ...(s.numAcceptedTokensPerPos ? [`spec_decode_num_accepted_tokens_per_pos=[${s.numAcceptedTokensPerPos.join(',')}]`] : []),
    ...(s.draftForwardPasses !== undefined ? [`draft_forward_passes=${s.draftForwardPasses}`] : []),
  ].join(' ');
}

/**
 * `tessera generate` with argv, when --weights is a LlamaGen GPT checkpoint:
 * returns the exit code; undefined when the file is another family (or
 * --weights is absent), so the caller runs its own pipeline.
 */
export async function runLlamaGenGenerate(argv: readonly string[]): Promise<number | undefined> {
  const args = parseArgs(argv, VALUED);
  const f = args.flags;
  const weights = f.get('weights');
  if (typeof weights !== 'string' || !isLlamaGenGpt(weights)) return undefined;
  if (f.has('help')) { console.log(LLAMAGEN_USAGE); return 0; }
  const tokenizer = f.get('tokenizer'), out = f.get('out'), tokens = f.get('tokens'), draft = f.get('draft'), decode = f.get('decode');
  if (typeof tokenizer !== 'string' || typeof out !== 'string' || !f.has('class')) {
    console.error(`tessera generate: --tokenizer, --weights, --class and --out are required\n\n${LLAMAGEN_USAGE}`);
    return 2;
  }
  if (args.positional.length > 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `unexpected argument ${args.positional[0]}`);
  const progress = (done: number, total: number): void => {
    if (!process.stderr.isTTY) return;
    const width = 30, filled = Math.round((done / total) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] token ${done}/${total}${done === total ? '\n' : ''}`);
  };
  const stats = await generateLlamaGenToFile({
    tokenizer, weights, out, classId: numberFlag(f, 'class', true)!, imageSize: numberFlag(f, 'image-size', true),
    cfg: numberFlag(f, 'cfg'), cfgInterval: numberFlag(f, 'cfg-interval'), topK: numberFlag(f, 'top-k', true), topP: numberFlag(f, 'top-p'),
    temperature: numberFlag(f, 'temperature'), seed: numberFlag(f, 'seed', true), window: numberFlag(f, 'window', true),
    heads: numberFlag(f, 'heads', true), compute: f.get('compute'), decode: typeof decode === 'string' ? decode as DecodeMode : undefined,
    lanternK: numberFlag(f, 'lantern-k', true), lanternDelta: numberFlag(f, 'lantern-delta'), lanternLambda: numberFlag(f, 'lantern-lambda'),
    watermarkKey: typeof f.get('watermark-key') === 'string' ? f.get('watermark-key') as string : undefined,
    watermarkDelta: numberFlag(f, 'watermark-delta'), watermarkGamma: numberFlag(f, 'watermark-gamma'),
    draft: typeof draft === 'string' ? draft : undefined, tokens: typeof tokens === 'string' ? tokens : undefined,
    onProgress: progress,
  });
  console.log(formatStats(stats));
  return 0;
}
