// 2-D convolution, NCHW float32 (PyTorch nn.Conv2d semantics; see
// native/include/tessera/conv.h). Runs through the engine's GEMM: 1×1 convs
// are one matmul per image, 3×3 stride-1 convs on large maps Winograd
// F(4×4, 3×3), others channel-major or im2col tiles into a packed-weight GEMM.
import { fail } from '../errors.js';
import { native } from '../native.js';
import { Tensor, withTensors } from '../tensor.js';
import type { PackedWeight } from './gemm.js';

interface ConvNative {
  conv2d(args: Record<string, unknown>): Promise<void>;
}

export type Pair = number | readonly [number, number];
/** A number (all sides), [h, w] (symmetric per axis), or [top, bottom, left, right]. */
export type Padding = number | readonly [number, number] | readonly [number, number, number, number];

export interface Conv2dOptions {
  /** [N, Ci, H, W] float32 */
  x: Tensor;
  /** [Co, Ci/groups, kh, kw]; float32 (bfloat16/float16 with groups 1: the GEMM then rounds x to bf16). */
  weight: Tensor;
  /**
   * `weight` viewed as [Co, Ci·kh·kw] and packed once with packWeight(), used
   * instead of packing the weight on every call (groups 1; `weight` still
   * gives the kernel's shape).
   */
  packed?: PackedWeight;
  /** [Co] float32 */
  bias?: Tensor;
  stride?: Pair;
  /** VAR/LlamaGen downsample: [0, 1, 0, 1] (pad bottom and right by 1). */
  padding?: Padding;
  dilation?: Pair;
  groups?: number;
  /** [N, Co, Ho, Wo] float32; allocated if absent. */
  out?: Tensor;
  /** out += conv(x) + bias (a residual already in `out`); needs `out`. */
  accumulate?: boolean;
  /**
   * 2: convolve the nearest 2× upsample of x (VAR's Upsample2x followed by
   * its conv) without storing the upsampled map. Only for float32 3×3 convs
   * with stride 1, padding 1, dilation 1 and one group. Default 1.
   */
  upsample?: 1 | 2;
}

function pair(v: Pair | undefined, dflt: number, what: string): [number, number] {
  const p: readonly number[] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every((n) => Number.isInteger(n)))
    fail('ERR_INVALID_ARGUMENT', `${what} must be an integer or a pair of integers`);
  return [p[0]!, p[1]!];
}

/** [top, bottom, left, right] */
export function padding4(p: Padding | undefined): [number, number, number, number] {
  const v: readonly number[] = p === undefined ? [0] : typeof p === 'number' ? [p] : p;
  if (!v.every((n) => Number.isInteger(n) && n >= 0)) fail('ERR_INVALID_ARGUMENT', 'padding must hold integers >= 0');
  if (v.length === 1) return [v[0]!, v[0]!, v[0]!, v[0]!];
  if (v.length === 2) return [v[0]!, v[0]!, v[1]!, v[1]!];
  if (v.length === 4) return [v[0]!, v[1]!, v[2]!, v[3]!];
  return fail('ERR_INVALID_ARGUMENT', 'padding must be a number, [h, w] or [top, bottom, left, right]');
}

/** Output shape [N, Co, Ho, Wo] of conv2d for these options. */
export function conv2dOutputShape(opts: Omit<Conv2dOptions, 'out' | 'accumulate'>): [number, number, number, number] {
  const { x, weight } = opts;
  if (x.shape.length !== 4) fail('ERR_SHAPE', `x must be [N, Ci, H, W], got [${x.shape.join(', ')}]`);
  if (weight.shape.length !== 4) fail('ERR_SHAPE', `weight must be [Co, Ci/groups, kh, kw], got [${weight.shape.join(', ')}]`);
  const up = opts.upsample ?? 1;
  if (up !== 1 && up !== 2) fail('ERR_INVALID_ARGUMENT', `upsample must be 1 or 2, got ${String(up)}`);
  const [N, , h, w] = x.shape as [number, number, number, number];
  const H = h * up, W = w * up;
  const [Co, , kh, kw] = weight.shape as [number, number, number, number];
  const [sh, sw] = pair(opts.stride, 1, 'stride');
  const [dh, dw] = pair(opts.dilation, 1, 'dilation');
  const [pt, pb, pl, pr] = padding4(opts.padding);
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1) fail('ERR_INVALID_ARGUMENT', 'stride and dilation must be >= 1');
  const eh = H + pt + pb - dh * (kh - 1) - 1, ew = W + pl + pr - dw * (kw - 1) - 1;
  if (eh < 0 || ew < 0) fail('ERR_SHAPE', `the ${kh}x${kw} kernel is larger than the padded ${H}x${W} input`);
  return [N, Co, Math.floor(eh / sh) + 1, Math.floor(ew / sw) + 1];
}

/** out (+)= conv2d(x, weight) + bias */
export async function conv2d(opts: Conv2dOptions): Promise<Tensor> {
  const shape = conv2dOutputShape(opts);
  if (opts.accumulate && !opts.out) fail('ERR_INVALID_ARGUMENT', 'accumulate needs out (the tensor to add into)');
  const out = opts.out ?? Tensor.empty(shape, 'float32', opts.x.device);
  const [sh, sw] = pair(opts.stride, 1, 'stride');
  const [dh, dw] = pair(opts.dilation, 1, 'dilation');
  const [pt, pb, pl, pr] = padding4(opts.padding);
  const { x, weight, bias } = opts;
  await withTensors([x, weight, bias, out], () => (native() as unknown as ConvNative).conv2d({
    x: x.native(), weight: weight.native(), packed: opts.packed?.handle(), bias: bias?.native(), out: out.native(),
    strideH: sh, strideW: sw, padTop: pt, padBottom: pb, padLeft: pl, padRight: pr, dilationH: dh, dilationW: dw,
    groups: opts.groups ?? 1, accumulate: opts.accumulate ?? false, upsample: opts.upsample ?? 1,
  }));
  return out;
}
