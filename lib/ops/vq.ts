// Vector quantisation: nearest codebook rows (argmin ‖z − e‖², first index on
// ties; optionally over L2-normalised vectors as in LlamaGen) and embedding
// lookup. See native/include/tessera/vq.h for the exact tie rule.
import { fail } from '../errors.js';
import { native, type NativeTensor } from '../native.js';
import { Tensor, withTensors } from '../tensor.js';

interface VqNative {
  vqNearest(args: Record<string, unknown>): Promise<void>;
  embedding(args: Record<string, unknown>): Promise<void>;
}
const nn = (): VqNative => native() as unknown as VqNative;

/** A contiguous [B, C, ...spatial] tensor read in place as [B, L, C] (L = spatial size). */
function channelsFirstAsRows(t: Tensor, what: string): NativeTensor {
  if (t.shape.length < 2) fail('ERR_SHAPE', `${what} must be [B, C, ...] with channelsFirst, got [${t.shape.join(', ')}]`);
  const [B, C] = t.shape as [number, number];
  const L = t.numel / (B * C);
  return { ...t.native(), shape: [B, L, C], strides: [C * L, 1, L] };
}

export interface VqNearestOptions {
  /** [N, C] or [B, L, C]; with channelsFirst, [B, C, ...spatial] (VAR's NCHW latents). */
  z: Tensor;
  /** [V, C] float32 */
  codebook: Tensor;
  /** LlamaGen: normalise z and the codebook rows first. */
  l2Normalize?: boolean;
  channelsFirst?: boolean;
  /** int32, one per vector ([N], [B, L], or [B, ...spatial]); allocated if absent. */
  out?: Tensor;
}

export async function vqNearest(opts: VqNearestOptions): Promise<Tensor> {
  const { z, codebook } = opts;
  const zDesc = opts.channelsFirst ? channelsFirstAsRows(z, 'z') : z.native();
  if (!opts.channelsFirst && (z.shape.length < 2 || z.shape.length > 3))
    fail('ERR_SHAPE', `z must be [N, C] or [B, L, C], got [${z.shape.join(', ')}]`);
  const idxShape = opts.channelsFirst ? [z.shape[0]!, ...z.shape.slice(2)] : z.shape.slice(0, -1);
  const out = opts.out ?? Tensor.empty(idxShape, 'int32', z.device);
  await withTensors([z, codebook, out], () => nn().vqNearest({
    z: zDesc, codebook: codebook.native(), indices: out.native(), l2Normalize: opts.l2Normalize ?? false,
  }));
  return out;
}

export interface EmbeddingOptions {
  /** [V, C] float32 */
  table: Tensor;
  /** int32 indices of any shape */
  indices: Tensor;
  /** Write rows L2-normalised (LlamaGen's decode_code). */
  l2Normalize?: boolean;
  /**
   * Write [B, C, ...rest] instead of [...indices.shape, C]: indices [B, ...rest]
   * become channels-first maps (VAR: h = E[idx] as [B, Cvae, pn, pn]).
   */
  channelsFirst?: boolean;
  out?: Tensor;
}

export async function embedding(opts: EmbeddingOptions): Promise<Tensor> {
  const { table, indices } = opts;
  if (table.shape.length !== 2) fail('ERR_SHAPE', `table must be [V, C], got [${table.shape.join(', ')}]`);
  const C = table.shape[1]!;
  let out: Tensor;
  let outDesc: NativeTensor;
  if (opts.channelsFirst) {
    if (indices.shape.length < 1) fail('ERR_SHAPE', 'channelsFirst needs indices [B, ...]');
    out = opts.out ?? Tensor.empty([indices.shape[0]!, C, ...indices.shape.slice(1)], 'float32', table.device);
    outDesc = channelsFirstAsRows(out, 'out');
  } else {
    out = opts.out ?? Tensor.empty([...indices.shape, C], 'float32', table.device);
    outDesc = { ...out.native(), shape: [indices.numel, C], strides: [C, 1] };
  }
  if (out.numel !== indices.numel * C) fail('ERR_SHAPE', `out must hold ${indices.numel} rows of ${C}`);
  await withTensors([table, indices, out], () => nn().embedding({
    table: table.native(), indices: indices.native(), out: outDesc, l2Normalize: opts.l2Normalize ?? false,
  }));
  return out;
}
