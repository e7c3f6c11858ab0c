// LlamaGen's GPT and VQ tokenizer, configured from checkpoint tensor shapes
// (spec llamagen-and-decoding.md section 1). Every mismatch names the key.
import { TesseraError } from '../../errors.js';
import { PickleObject } from '../../io/pickle.js';
import { ShapeReader, type Tensors } from '../var/config.js';

/** The official c2i configurations by name (spec table): [layers, heads, dim]. */
export const OFFICIAL_GPT: ReadonlyMap<string, readonly [number, number, number]> = new Map([
  ['GPT-B', [12, 12, 768]], ['GPT-L', [24, 16, 1024]], ['GPT-XL', [36, 20, 1280]],
  ['GPT-XXL', [48, 24, 1536]], ['GPT-3B', [24, 32, 3200]],
]);

export interface GptConfig {
  layers: number;
  dim: number;
  heads: number;
  /** Key/value heads (grouped-query attention; = heads in the released models). */
  kvHeads: number;
  headDim: number;
  /** Where the head count came from (see gptConfig). */
  headsSource: 'override' | 'args' | 'head-dim rule';
  vocabulary: number;
  /** Real classes; the table has one more row, the null class. */
  classes: number;
  ffnHidden: number;
  /**
   * NAR's vertical head (spec section 5): the checkpoint carries one more
   * block, layers.{layers}, plus medusa_norm / medusa_output. `layers` counts
   * the trunk only. Absent on plain LlamaGen checkpoints.
   */
  verticalHead?: true;
}

export interface VqConfig {
  /** Encoder channels per level (decoder: the same, deepest first). */
  channels: number[];
  /** Res blocks per encoder level (the decoder has one more). */
  numResBlocks: number;
  zChannels: number;
  vocabulary: number;
  codeDim: number;
  /** Image side / token grid side: 2^(levels - 1). */
  downsample: number;
}

function bad(file: string, key: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${file}: ${key} ${why}`);
}

/** args.gpt_model of a DDP checkpoint ({"model", "optimizer", "steps", "args"}), if any. */
export function argsModelName(extras: ReadonlyMap<string, unknown> | undefined): string | undefined {
  const args = extras?.get('args');
  if (!(args instanceof PickleObject) || !(args.state instanceof Map)) return undefined;
  const name = args.state.get('gpt_model');
  return typeof name === 'string' ? name : undefined;
}

/**
 * Shapes give layers, dim, vocabulary, classes and the FFN width. The head
 * count is in no shape, so the rule is: (1) an explicit `heads`; (2) the
 * checkpoint's args.gpt_model when it names an official configuration (its
 * dim and layers must then match the file); (3) head_dim 64, except dim 3200
 * (GPT-3B) with head_dim 100. Rule 3 gives every official model's count.
 */
export function gptConfig(tensors: Tensors, file: string, opts: { heads?: number; extras?: ReadonlyMap<string, unknown> } = {}): GptConfig {
  const r = new ShapeReader(tensors, file);
  const [vocabulary, dim] = r.shape('tok_embeddings.weight', 2, 'token embeddings [V, dim]') as [number, number];
  if (r.has('cls_embedding.cap_proj.fc1.weight'))
    bad(file, 'cls_embedding.cap_proj.fc1.weight', 'is the caption projection of a text-conditional (t2i) GPT: Tessera runs class-conditional (c2i) LlamaGen only');
  const classRows = r.shape('cls_embedding.embedding_table.weight', 2, 'class embeddings [classes + 1, dim]')[0]!;
  r.expect('cls_embedding.embedding_table.weight', [classRows, dim], 'class embeddings');
  if (classRows < 2) bad(file, 'cls_embedding.embedding_table.weight', `has ${classRows} rows: needs the classes and the null-class row`);
  const vertical = r.has('medusa_output.weight') || r.has('medusa_norm.weight');
  const blocks = r.count('layers.'), layers = vertical ? blocks - 1 : blocks;
  if (layers <= 0) bad(file, 'layers.0.*', 'is missing: not a LlamaGen GPT');
  const ffnHidden = r.shape('layers.0.feed_forward.w1.weight', 2, 'FFN w1 [hidden, dim]')[0]!;

  let heads: number, headsSource: GptConfig['headsSource'];
  const name = argsModelName(opts.extras);
  const official = name !== undefined ? OFFICIAL_GPT.get(name) : undefined;
  if (opts.heads !== undefined) {
    if (!Number.isInteger(opts.heads) || opts.heads < 1) throw new TesseraError('ERR_INVALID_ARGUMENT', `heads must be a positive integer, got ${opts.heads}`);
    heads = opts.heads; headsSource = 'override';
  } else if (official) {
    if (official[2] !== dim || official[0] !== layers)
      bad(file, 'args.gpt_model', `says ${name} (${official[0]} layers, dim ${official[2]}), the weights have ${layers} layers of dim ${dim}`);
    heads = official[1]; headsSource = 'args';
  } else {
    const hd = dim === 3200 ? 100 : 64;
    if (dim % hd !== 0) bad(file, 'tok_embeddings.weight', `has dim ${dim}, not a multiple of head_dim ${hd}: give the head count explicitly`);
    heads = dim / hd; headsSource = 'head-dim rule';
  }
  if (dim % heads !== 0 || (dim / heads) % 4 !== 0)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `${heads} heads do not split dim ${dim} into head sizes divisible by 4 (2D RoPE)`);

  // Grouped-query attention: wqkv holds n_head query heads and n_kv_head key
  // and value heads, [(n_head + 2·n_kv_head)·head_dim, dim]; query head h
  // reads key/value head h / (n_head / n_kv_head) (the official repeat_interleave).
  const headDim = dim / heads;
  const qkvRows = r.shape('layers.0.attention.wqkv.weight', 2, 'fused [q|k|v] [(n_head + 2·n_kv_head)·head_dim, dim]')[0]!;
  const kvHeads = (qkvRows - dim) / 2 / headDim;
  if (!Number.isInteger(kvHeads) || kvHeads < 1 || heads % kvHeads !== 0)
    bad(file, 'layers.0.attention.wqkv.weight', `has ${qkvRows} rows: not (n_head + 2·n_kv_head)·head_dim for ${heads} heads of ` +
      `${headDim} with n_kv_head dividing n_head (check the head count: --heads)`);
  for (let i = 0; i < blocks; i++) {
    const p = `layers.${i}`;
    r.expect(`${p}.attention.wqkv.weight`, [qkvRows, dim], `fused [q|k|v] (n_kv_head = ${kvHeads})`);
    r.expect(`${p}.attention.wo.weight`, [dim, dim], 'attention output');
    r.expect(`${p}.feed_forward.w1.weight`, [ffnHidden, dim], 'SwiGLU gate');
    r.expect(`${p}.feed_forward.w3.weight`, [ffnHidden, dim], 'SwiGLU up');
    r.expect(`${p}.feed_forward.w2.weight`, [dim, ffnHidden], 'SwiGLU down');
    r.expect(`${p}.attention_norm.weight`, [dim], 'RMSNorm');
    r.expect(`${p}.ffn_norm.weight`, [dim], 'RMSNorm');
  }
  r.expect('norm.weight', [dim], 'final RMSNorm');
  r.expect('output.weight', [vocabulary, dim], 'output head');
  if (vertical) {
    r.expect('medusa_norm.weight', [dim], "NAR vertical head's RMSNorm");
    r.expect('medusa_output.weight', [vocabulary, dim], 'NAR vertical head');
  }
  return {
    layers, dim, heads, headDim, kvHeads, headsSource, vocabulary, classes: classRows - 1, ffnHidden,
    ...(vertical ? { verticalHead: true as const } : {}),
  };
}

export function vqConfig(tensors: Tensors, file: string): VqConfig {
  const r = new ShapeReader(tensors, file);
  const [vocabulary, codeDim] = r.shape('quantize.embedding.weight', 2, 'the codebook [V, D]') as [number, number];
  const levels = r.count('encoder.conv_blocks.');
  if (levels === 0) bad(file, 'encoder.conv_blocks.0.*', 'is missing: not a LlamaGen VQ tokenizer');
  const numResBlocks = r.count('encoder.conv_blocks.0.res.');
  const channels: number[] = [];
  for (let i = 0; i < levels; i++) {
    const key = `encoder.conv_blocks.${i}.res.0.conv2.weight`;
    const c = r.shape(key, 4, `level ${i} width`)[0]!;
    if (c % 32 !== 0) bad(file, key, `has ${c} channels: GroupNorm needs a multiple of 32`);
    channels.push(c);
  }
  const zChannels = r.shape('encoder.conv_out.weight', 4, 'conv_out [z, C, 3, 3]')[0]!;
  r.expect('quant_conv.weight', [codeDim, zChannels, 1, 1], 'quant_conv');
  r.expect('post_quant_conv.weight', [zChannels, codeDim, 1, 1], 'post_quant_conv');
  if (r.count('decoder.conv_blocks.') !== levels)
    bad(file, 'decoder.conv_blocks.*', `has ${r.count('decoder.conv_blocks.')} levels, the encoder ${levels}`);
  if (r.count('decoder.conv_blocks.0.res.') !== numResBlocks + 1)
    bad(file, 'decoder.conv_blocks.0.res.*', `has ${r.count('decoder.conv_blocks.0.res.')} blocks, expected ${numResBlocks + 1} (encoder blocks + 1)`);
  return { channels, numResBlocks, zChannels, vocabulary, codeDim, downsample: 2 ** (levels - 1) };
}

/** Checks the GPT's vocabulary is the tokenizer's codebook. */
export function checkPair(vq: VqConfig, gpt: GptConfig, files: { tokenizer: string; weights: string }): void {
  if (vq.vocabulary !== gpt.vocabulary)
    throw new TesseraError('ERR_FORMAT',
      `${files.weights} predicts ${gpt.vocabulary} token ids, the tokenizer ${files.tokenizer} has ${vq.vocabulary} codes`);
}
