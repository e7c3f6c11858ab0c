// Resizing NCHW float32 tensors with PyTorch's interpolate semantics (float32
// index arithmetic as in PyTorch; see native/include/tessera/resize.h):
// 'nearest', 'area' (adaptive average pooling, overlapping bins), 'bicubic'
// (A = -0.75) and 'bilinear', both align_corners=False without antialias.
import { fail } from '../errors.js';
import { native } from '../native.js';
import { Tensor, withTensors } from '../tensor.js';

interface ResizeNative {
  resize(args: Record<string, unknown>): Promise<void>;
}

export type ResizeMode = 'nearest' | 'area' | 'bicubic' | 'bilinear';
const MODES: readonly ResizeMode[] = ['nearest', 'area', 'bicubic', 'bilinear'];

export interface ResizeOptions {
  /** [N, C, H, W] float32 */
  x: Tensor;
  /** [Ho, Wo] */
  size: readonly [number, number];
  mode: ResizeMode;
  /** [N, C, Ho, Wo]; allocated if absent. */
  out?: Tensor;
}

export async function resize(opts: ResizeOptions): Promise<Tensor> {
  const { x, size } = opts;
  if (x.shape.length !== 4) fail('ERR_SHAPE', `x must be [N, C, H, W], got [${x.shape.join(', ')}]`);
  const mode = MODES.indexOf(opts.mode);
  if (mode < 0) fail('ERR_INVALID_ARGUMENT', `mode must be one of ${MODES.join(', ')}`);
  if (size.length !== 2 || !size.every((n) => Number.isInteger(n) && n >= 1))
    fail('ERR_SHAPE', 'size must be [Ho, Wo] with positive integers');
  const out = opts.out ?? Tensor.empty([x.shape[0]!, x.shape[1]!, size[0], size[1]], 'float32', x.device);
  await withTensors([x, out], () => (native() as unknown as ResizeNative).resize({
    x: x.native(), out: out.native(), mode,
  }));
  return out;
}
