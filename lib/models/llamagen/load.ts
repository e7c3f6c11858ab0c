// Opens a LlamaGen tokenizer (VQ) file, a GPT file and optionally a smaller
// draft GPT (.pt/.pth or .safetensors) and builds the models: the public
// entry point of the TypeScript API (the CLI uses it too). The files stay
// open (float32 tensors are views of the mapping) until close().
import { TesseraError } from '../../errors.js';
import { openCheckpoint, type Checkpoint } from '../../io/checkpoint.js';
import { vqNeighbourTable, LANTERN_K } from '../../decoding/lantern.js';
import type { NeighbourTable } from '../../decoding/verify.js';
import type { Tensor } from '../../tensor.js';
import { checkPair } from './config.js';
import { LlamaGenGpt } from './gpt.js';
import { LlamaGenVq, toUnitRange } from './vq.js';

export interface LlamaGenLoadOptions {
  /** Weight arithmetic: float32 (default) or bfloat16 (weights rounded to bf16, fp32 accumulation; bf16 KV caches). */
  compute?: 'float32' | 'bfloat16';
  /** Head count, when the checkpoint's dim/64 rule does not fit (see gptConfig). */
  heads?: number;
  /** A smaller LlamaGen GPT on the same tokenizer, for draft-model speculative decoding or LANTERN with model drafts. */
  draft?: string;
}

export interface LlamaGenPipeline {
  vq: LlamaGenVq;
  model: LlamaGenGpt;
  /** The draft model, when `draft` was given. */
  drafter?: LlamaGenGpt;
  /**
   * Token grid side for an image size in pixels (256 → 16 and 384 → 24 with
   * VQ-16); `what` names the size in the error (default "the image size").
   */
  grid(imageSize?: number, what?: string): number;
  /** LANTERN's neighbour table over the tokenizer's codebook (k nearest codes per code; default 1000). */
  neighbourTable(k?: number): Promise<NeighbourTable>;
  /** Token ids (one array of G·G ids per image, raster order) → images [B, 3, H, W] in [0, 1]. */
  decodeImages(tokens: readonly (readonly number[])[], grid: number): Promise<Tensor>;
  close(): void;
}

export async function loadLlamaGen(tokenizerPath: string, weightsPath: string, opts: LlamaGenLoadOptions = {}): Promise<LlamaGenPipeline> {
  const files: Checkpoint[] = [];
  let model: LlamaGenGpt | undefined, drafter: LlamaGenGpt | undefined, vq: LlamaGenVq | undefined;
  const closeAll = (): void => {
    model?.dispose();
    drafter?.dispose();
    for (const f of files.splice(0)) f.close();
  };
  try {
    const tok = openCheckpoint(tokenizerPath);
    files.push(tok);
    vq = LlamaGenVq.load(tok.tensors, tokenizerPath);
    const weights = openCheckpoint(weightsPath);
    files.push(weights);
    model = await LlamaGenGpt.load(weights.tensors, weightsPath, { heads: opts.heads, extras: weights.extras, compute: opts.compute });
    checkPair(vq.config, model.config, { tokenizer: tokenizerPath, weights: weightsPath });
    if (opts.draft !== undefined) {
      const d = openCheckpoint(opts.draft);
      files.push(d);
      drafter = await LlamaGenGpt.load(d.tensors, opts.draft, { extras: d.extras, compute: opts.compute });
      checkPair(vq.config, drafter.config, { tokenizer: tokenizerPath, weights: opts.draft });
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  const v = vq, f = v.config.downsample;
  return {
    vq: v, model, drafter,
    grid(imageSize = 256, what = 'the image size') {
      if (!Number.isInteger(imageSize) || imageSize < f || imageSize % f !== 0)
        throw new TesseraError('ERR_INVALID_ARGUMENT', `${what} must be a positive multiple of the tokenizer's downsampling ${f} (256 or 384 for VQ-16), got ${imageSize}`);
      return imageSize / f;
    },
    neighbourTable: (k = LANTERN_K) => vqNeighbourTable(files[0]!.tensors, tokenizerPath, k),
    async decodeImages(tokens, grid) {
      if (!Array.isArray(tokens) || tokens.length === 0) throw new TesseraError('ERR_INVALID_ARGUMENT', 'give the token ids of at least one image');
      const ids = new Int32Array(tokens.length * grid * grid);
      tokens.forEach((t, b) => {
        if (t.length !== grid * grid) throw new TesseraError('ERR_SHAPE', `image ${b} has ${t.length} token ids; a ${grid}x${grid} grid needs ${grid * grid}`);
        ids.set(t, b * grid * grid);
      });
      return toUnitRange(await v.decodeCodes(ids, tokens.length, grid));
    },
    close: closeAll,
  };
}
