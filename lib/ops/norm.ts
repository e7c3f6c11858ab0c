// GroupNorm (+SiLU), LayerNorm (+affine, +AdaLN scale/shift) and RMSNorm,
// float32, statistics in float64 (native/include/tessera/norm.h).
import { fail } from '../errors.js';
import { native, type NativeTensor } from '../native.js';
import { Tensor, withTensors } from '../tensor.js';

interface NormNative {
  groupNorm(args: Record<string, unknown>): Promise<void>;
  layerNorm(args: Record<string, unknown>): Promise<void>;
  rmsNorm(args: Record<string, unknown>): Promise<void>;
}
const nn = (): NormNative => native() as unknown as NormNative;

/**
 * Columns [start, start + width) of a 2-D CPU tensor, read in place as a
 * strided [rows, width] view: VAR's AdaLN scale/shift are chunks of one
 * ada_lin output [B, 6C], so `columns(ada, 2 * C, C)` needs no copy.
 */
export class Columns {
  constructor(readonly tensor: Tensor, readonly start: number, readonly width: number) {
    const [rows, cols] = tensor.shape as [number, number];
    if (tensor.shape.length !== 2 || rows === undefined) fail('ERR_SHAPE', 'columns() takes a 2-D tensor');
    if (!Number.isInteger(start) || !Number.isInteger(width) || start < 0 || width < 1 || start + width > cols)
      fail('ERR_SHAPE', `columns [${start}, ${start + width}) do not fit in ${cols}`);
  }
  get shape(): [number, number] { return [this.tensor.shape[0]!, this.width]; }
  native(): NativeTensor {
    const cols = this.tensor.shape[1]!;
    return { ...this.tensor.native(), shape: this.shape, strides: [cols, 1], offset: this.start };
  }
}

export function columns(t: Tensor, start: number, width: number): Columns {
  return new Columns(t, start, width);
}

export interface GroupNormOptions {
  /** [N, C, ...] float32 */
  x: Tensor;
  /** [C] */
  weight?: Tensor;
  bias?: Tensor;
  /** Default 32. */
  groups?: number;
  /** Default 1e-6 (VAR, LlamaGen VQ). */
  eps?: number;
  /** Apply SiLU (swish) after the affine. */
  silu?: boolean;
  /** Like x; may be x itself. */
  out?: Tensor;
}

export async function groupNorm(opts: GroupNormOptions): Promise<Tensor> {
  const { x, weight, bias } = opts;
  if (x.shape.length < 2) fail('ERR_SHAPE', `x must be [N, C, ...], got [${x.shape.join(', ')}]`);
  const out = opts.out ?? Tensor.empty(x.shape, 'float32', x.device);
  await withTensors([x, weight, bias, out], () => nn().groupNorm({
    x: x.native(), weight: weight?.native(), bias: bias?.native(), out: out.native(),
    groups: opts.groups ?? 32, eps: opts.eps ?? 1e-6, silu: opts.silu ?? false,
  }));
  return out;
}

export interface LayerNormOptions {
  /** [..., C] float32; AdaLN needs [B, ..., C]. */
  x: Tensor;
  weight?: Tensor;
  bias?: Tensor;
  /** AdaLN: y·(1 + scale[b]) + shift[b], [B, C] each (a Tensor or columns of one). */
  scale?: Tensor | Columns;
  shift?: Tensor | Columns;
  /** Default 1e-6 (VAR). */
  eps?: number;
  /** Like x; may be x itself. */
  out?: Tensor;
}

function owner(t: Tensor | Columns | undefined): Tensor | undefined {
  return t instanceof Columns ? t.tensor : t;
}

export async function layerNorm(opts: LayerNormOptions): Promise<Tensor> {
  const { x, weight, bias, scale, shift } = opts;
  if (x.shape.length < 1) fail('ERR_SHAPE', 'x must have a last dimension');
  const out = opts.out ?? Tensor.empty(x.shape, 'float32', x.device);
  await withTensors([x, weight, bias, owner(scale), owner(shift), out], () => nn().layerNorm({
    x: x.native(), weight: weight?.native(), bias: bias?.native(), scale: scale?.native(), shift: shift?.native(),
    out: out.native(), eps: opts.eps ?? 1e-6,
  }));
  return out;
}

export interface RmsNormOptions {
  /** [..., C] float32 */
  x: Tensor;
  weight?: Tensor;
  /** Default 1e-5 (LlamaGen). */
  eps?: number;
  out?: Tensor;
}

/** y = x / sqrt(mean(x²) + eps) · weight */
export async function rmsNorm(opts: RmsNormOptions): Promise<Tensor> {
  const { x, weight } = opts;
  const out = opts.out ?? Tensor.empty(x.shape, 'float32', x.device);
  await withTensors([x, weight, out], () => nn().rmsNorm({
    x: x.native(), weight: weight?.native(), out: out.native(), eps: opts.eps ?? 1e-5,
  }));
  return out;
}
