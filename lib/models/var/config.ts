// VAR and its multi-scale VQVAE, configured from a checkpoint's tensor shapes
// alone (spec/var.md sections 1-2). Every mismatch names the key and why.
import { TesseraError } from '../../errors.js';
import type { StoredTensor } from '../../io/stored-tensor.js';

export type Tensors = Map<string, StoredTensor>;

/** The documented schedules, by L = Σ pn² (spec section 1). */
export const OFFICIAL_SCHEDULES: ReadonlyMap<number, readonly number[]> = new Map([
  [680, [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]],
  [2240, [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]],
]);

export interface VqvaeConfig {
  /** Channels per level: ch · ch_mult[i]. */
  channels: number[];
  numResBlocks: number;
  zChannels: number;
  vocabulary: number;
  /** Codebook width (= zChannels in the official file). */
  latentChannels: number;
  /**
   * Phi convolutions (phiNames gives their keys): K of PhiPartiallyShared or
   * PhiNonShared, 1 of PhiShared, 0 when the file has none (quant_resi = 0:
   * every Phi is the identity).
   */
  phiConvs: number;
  /** Downsampling factor 2^(levels-1). */
  downsample: number;
}

export interface VarConfig {
  depth: number;
  width: number;
  heads: number;
  headDim: number;
  classes: number;
  vocabulary: number;
  latentChannels: number;
  sharedAdaLN: boolean;
  /** FFN hidden width, round(C · mlp_ratio) (4C in the released models), from fc1's shape. */
  ffnHidden: number;
  /** Side length of each scale's token map, and where it was read from. */
  schedule: number[];
  scheduleSource: 'lvl_1L' | 'official' | 'solved';
  tokens: number;
}

function bad(file: string, key: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${file}: ${key} ${why}`);
}

export class ShapeReader {
  constructor(readonly tensors: Tensors, readonly file: string) {}

  has(key: string): boolean { return this.tensors.has(key); }

  /** The shape of `key`, which must exist with `rank` dims. */
  shape(key: string, rank: number, what: string): readonly number[] {
    const t = this.tensors.get(key);
    if (!t) bad(this.file, key, `is missing (${what})`);
    if (t.shape.length !== rank) bad(this.file, key, `has shape [${t.shape.join(', ')}], expected rank ${rank} (${what})`);
    return t.shape;
  }

  /** Checks `key` has exactly `expected`. */
  expect(key: string, expected: readonly number[], what: string): void {
    const s = this.shape(key, expected.length, what);
    if (s.some((d, i) => d !== expected[i]))
      bad(this.file, key, `has shape [${s.join(', ')}], expected [${expected.join(', ')}] (${what})`);
  }

  /** Number of consecutive indices i with some key starting `${prefix}${i}.`. */
  count(prefix: string): number {
    let n = 0;
    const names = [...this.tensors.keys()];
    while (names.some((k) => k.startsWith(`${prefix}${n}.`))) n++;
    return n;
  }
}

export function vqvaeConfig(tensors: Tensors, file: string): VqvaeConfig {
  const r = new ShapeReader(tensors, file);
  const [vocabulary, latentChannels] = r.shape('quantize.embedding.weight', 2, 'the codebook [V, Cvae]') as [number, number];
  const ch = r.shape('encoder.conv_in.weight', 4, 'conv_in [ch, 3, 3, 3]')[0]!;
  const levels = r.count('encoder.down.');
  if (levels === 0) bad(file, 'encoder.down.0.*', 'is missing: not a VAR VQVAE encoder');
  const channels: number[] = [];
  for (let i = 0; i < levels; i++) {
    const c = r.shape(`encoder.down.${i}.block.0.conv2.weight`, 4, `level ${i} width`)[0]!;
    if (c % 32 !== 0) bad(file, `encoder.down.${i}.block.0.conv2.weight`, `has ${c} channels: GroupNorm needs a multiple of 32`);
    channels.push(c);
  }
  const numResBlocks = r.count('encoder.down.0.block.');
  const zChannels = r.shape('encoder.conv_out.weight', 4, 'conv_out [z, C, 3, 3]')[0]!;
  if (zChannels !== latentChannels)
    bad(file, 'encoder.conv_out.weight', `gives z_channels ${zChannels}, the codebook has width ${latentChannels}`);
  const phi = phiNames(tensors);
  for (const name of phi) r.expect(`${name}.weight`, [latentChannels, latentChannels, 3, 3], 'Phi conv');
  const phiConvs = phi.length;
  if (r.count(`decoder.up.0.block.`) !== numResBlocks + 1)
    bad(file, 'decoder.up.0.block.*', `has ${r.count('decoder.up.0.block.')} blocks, expected ${numResBlocks + 1} (encoder blocks + 1)`);
  // VQVAE(quant_conv_ks=k): both convs are k×k with padding k//2 (3 in the released file).
  for (const name of ['quant_conv', 'post_quant_conv']) {
    const k = r.shape(`${name}.weight`, 4, `${name} [Cvae, Cvae, k, k]`)[2]!;
    if (k % 2 !== 1) bad(file, `${name}.weight`, `has an even kernel ${k}: quant_conv_ks must be odd ('same' padding k//2)`);
    r.expect(`${name}.weight`, [latentChannels, latentChannels, k, k], name);
  }
  return { channels, numResBlocks, zChannels, vocabulary, latentChannels, phiConvs, downsample: 2 ** (levels - 1) };
}

/**
 * Every strictly increasing schedule of `scales` sides starting at `first`
 * (1 in the released models) whose squares sum to `total` (smallest first;
 * stops after `limit` finds).
 */
export function solveSchedules(total: number, scales: number, limit = 8, first = 1): number[][] {
  const found: number[][] = [];
  const walk = (prefix: number[], left: number, need: number): void => {
    if (found.length >= limit) return;
    if (need === 0) { if (left === 0) found.push([...prefix]); return; }
    // The remaining sides are all >= p, so need·p² must fit in what is left.
    for (let p = prefix[prefix.length - 1]! + 1; p * p * need <= left; p++) walk([...prefix, p], left - p * p, need - 1);
  };
  if (scales >= 1 && total >= first * first) walk([first], total - first * first, scales - 1);
  return found;
}

/**
 * The scale schedule. Rule: (1) the lvl_1L buffer, when present, gives each
 * level's token count, which must be a square; (2) otherwise the documented
 * official schedule for L = pos_1LC's length with lvl_embed's number of
 * scales; (3) otherwise the unique strictly increasing schedule starting at
 * √(pos_start's length) with that many scales and Σ pn² = L. None or several
 * is an error.
 */
export function readSchedule(r: ShapeReader, width: number): { schedule: number[]; source: VarConfig['scheduleSource'] } {
  const L = r.shape('pos_1LC', 3, 'the position table [1, L, C]')[1]!;
  r.expect('pos_1LC', [1, L, width], 'the position table [1, L, C]');
  const SN = r.shape('lvl_embed.weight', 2, 'one level embedding per scale')[0]!;
  if (SN < 2) bad(r.file, 'lvl_embed.weight', `has ${SN} rows: VAR needs at least 2 scales`);
  const lvl = r.tensors.get('lvl_1L');
  if (lvl) {
    const data = lvl.load().data;
    if (data.length !== L) bad(r.file, 'lvl_1L', `has ${data.length} entries, pos_1LC has ${L} tokens`);
    const counts = new Array<number>(SN).fill(0);
    for (let t = 0; t < L; t++) {
      const level = Number(data[t]);
      if (!Number.isInteger(level) || level < 0 || level >= SN) bad(r.file, 'lvl_1L', `holds level ${level} at token ${t}, outside 0..${SN - 1}`);
      if (t > 0 && level < Number(data[t - 1])) bad(r.file, 'lvl_1L', `is not sorted by level at token ${t}`);
      counts[level]!++;
    }
    const schedule = counts.map((c) => Math.round(Math.sqrt(c)));
    schedule.forEach((p, i) => {
      if (p * p !== counts[i] || p === 0) bad(r.file, 'lvl_1L', `gives level ${i} ${counts[i]} tokens, not a non-zero square`);
    });
    return { schedule, source: 'lvl_1L' };
  }
  // pos_start holds the first scale's pn² start positions.
  const starts = r.has('pos_start') ? r.shape('pos_start', 3, 'the start positions [1, first_l, C]')[1]! : 1;
  const first = Math.round(Math.sqrt(starts));
  if (first * first !== starts) bad(r.file, 'pos_start', `has ${starts} start positions, not the square of the first scale's side`);
  const official = OFFICIAL_SCHEDULES.get(L);
  if (official && official.length === SN && official[0] === first) return { schedule: [...official], source: 'official' };
  const found = solveSchedules(L, SN, 2, first);
  if (found.length === 1) return { schedule: found[0]!, source: 'solved' };
  bad(r.file, 'pos_1LC', found.length === 0
    ? `has ${L} tokens: no increasing schedule of ${SN} scales from ${first} has Σ pn² = ${L}`
    : `has ${L} tokens: several schedules of ${SN} scales from ${first} fit (${found.map((s) => s.join(',')).join(' or ')}); add the lvl_1L buffer`);
}

export function varConfig(tensors: Tensors, file: string): VarConfig {
  const r = new ShapeReader(tensors, file);
  const [rows, width] = r.shape('class_emb.weight', 2, 'class embeddings [classes + 1, C]') as [number, number];
  const depth = r.count('blocks.');
  if (depth === 0) bad(file, 'blocks.0.*', 'is missing: a VAR transformer has at least one block');
  const heads = r.shape('blocks.0.attn.scale_mul_1H11', 4, 'per-head multipliers [1, H, 1, 1] (attn_l2_norm)')[1]!;
  if (width % heads !== 0) bad(file, 'blocks.0.attn.scale_mul_1H11', `has ${heads} heads, which do not divide the width ${width}`);
  const headDim = width / heads;
  const latentChannels = r.shape('word_embed.weight', 2, 'word_embed [C, Cvae]')[1]!;
  r.expect('word_embed.weight', [width, latentChannels], 'word_embed');
  const vocabulary = r.shape('head.weight', 2, 'the output head [V, C]')[0]!;
  r.expect('head.weight', [vocabulary, width], 'the output head');
  r.expect('head_nm.ada_lin.1.weight', [2 * width, width], 'the head AdaLN');
  const ffnHidden = r.shape('blocks.0.ffn.fc1.weight', 2, 'FFN fc1 [round(C·mlp_ratio), C]')[0]!;
  const sharedAdaLN = r.has('shared_ada_lin.1.weight');
  if (sharedAdaLN) r.expect('shared_ada_lin.1.weight', [6 * width, width], 'the shared AdaLN');
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}`;
    r.expect(`${p}.attn.scale_mul_1H11`, [1, heads, 1, 1], 'per-head multipliers');
    r.expect(`${p}.attn.mat_qkv.weight`, [3 * width, width], 'fused q/k/v weight');
    r.expect(`${p}.attn.q_bias`, [width], 'q bias');
    r.expect(`${p}.attn.v_bias`, [width], 'v bias');
    r.expect(`${p}.attn.proj.weight`, [width, width], 'attention output');
    r.expect(`${p}.ffn.fc1.weight`, [ffnHidden, width], 'FFN fc1 (one mlp_ratio for every block)');
    r.expect(`${p}.ffn.fc1.bias`, [ffnHidden], 'FFN fc1 bias');
    r.expect(`${p}.ffn.fc2.weight`, [width, ffnHidden], 'FFN fc2');
    if (sharedAdaLN) r.expect(`${p}.ada_gss`, [1, 1, 6, width], 'per-block AdaLN offsets (shared AdaLN)');
    else r.expect(`${p}.ada_lin.1.weight`, [6 * width, width], 'per-block AdaLN');
  }
  const { schedule, source } = readSchedule(r, width);
  r.expect('lvl_embed.weight', [schedule.length, width], 'level embeddings');
  // The first scale's pn² tokens each have their own start position (first_l = patch_nums[0]²).
  r.expect('pos_start', [1, schedule[0]! ** 2, width], 'the start positions [1, first scale tokens, C]');
  const tokens = schedule.reduce((a, p) => a + p * p, 0);
  return {
    depth, width, heads, headDim, classes: rows - 1, vocabulary, latentChannels, sharedAdaLN, ffnHidden,
    schedule, scheduleSource: source, tokens,
  };
}

/** Checks a tokenizer and a transformer belong together. */
export function checkPair(vae: VqvaeConfig, v: VarConfig, files: { vae: string; var: string }): void {
  if (vae.vocabulary !== v.vocabulary || vae.latentChannels !== v.latentChannels)
    throw new TesseraError('ERR_FORMAT',
      `${files.var} (vocabulary ${v.vocabulary}, latent ${v.latentChannels}) does not fit the tokenizer ${files.vae} ` +
      `(vocabulary ${vae.vocabulary}, latent ${vae.latentChannels})`);
}

/**
 * The keys (without .weight/.bias) of the Phi convolutions, by the official
 * quantizer's three layouts: PhiPartiallyShared `quantize.quant_resi.qresi_ls.k`
 * (share_quant_resi = K ≥ 2; the released file has K = 4), PhiShared
 * `quantize.quant_resi.qresi` (share_quant_resi = 1) and PhiNonShared
 * `quantize.quant_resi.k` (share_quant_resi = 0). None at all is
 * quant_resi = 0, where every Phi is an nn.Identity without parameters.
 */
export function phiNames(tensors: Tensors): string[] {
  const r = new ShapeReader(tensors, '');
  const partial = r.count('quantize.quant_resi.qresi_ls.');
  if (partial > 0) return Array.from({ length: partial }, (_, k) => `quantize.quant_resi.qresi_ls.${k}`);
  if (r.has('quantize.quant_resi.qresi.weight')) return ['quantize.quant_resi.qresi'];
  return Array.from({ length: r.count('quantize.quant_resi.') }, (_, k) => `quantize.quant_resi.${k}`);
}

/**
 * The official choice of Phi conv for scale si of SN among K: argmin over
 * |ticks − si/(SN−1)| in float64, first index on a tie, with
 * ticks = numpy.linspace(1/3/K, 1 − 1/3/K, K) when K = 4 and
 * numpy.linspace(1/2/K, 1 − 1/2/K, K) otherwise (PhiPartiallyShared and
 * PhiNonShared alike; PhiShared's single conv is K = 1). For SN = 10, K = 4
 * this gives [0,0,1,1,1,2,2,3,3,3] (spec section 1).
 */
export function phiIndex(si: number, SN: number, K: number): number {
  if (K === 1) return 0;
  const edge = K === 4 ? 1 / 3 / K : 1 / 2 / K;
  const start = edge, stop = 1 - edge, step = (stop - start) / (K - 1);
  const at = si / (SN - 1);
  let best = 0, bestD = Infinity;
  for (let k = 0; k < K; k++) {
    const tick = k === K - 1 ? stop : k * step + start;  // numpy: arange·step + start, last = stop
    const d = Math.abs(tick - at);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best;
}
