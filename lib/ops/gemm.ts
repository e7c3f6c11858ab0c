// Linear layers (PyTorch weight layout, fused bias/activation/residual
// epilogue), general matmul, and pre-packed weights for repeated use.
import { isFloat } from '../dtype.js';
import { fail } from '../errors.js';
import { native, type NativePackedWeight } from '../native.js';
import { Tensor, withTensors, type Device } from '../tensor.js';

export type Activation = 'none' | 'gelu_tanh' | 'silu';
const ACTIVATIONS: readonly Activation[] = ['none', 'gelu_tanh', 'silu'];

/** A weight [N, K] packed once for fast repeated linear() calls. */
export class PackedWeight {
  readonly n: number;
  readonly k: number;
  readonly compute: 'float32' | 'bfloat16';
  readonly device: Device;
  readonly #handle: NativePackedWeight;

  /** @internal use packWeight() */
  constructor(handle: NativePackedWeight, n: number, k: number, compute: 'float32' | 'bfloat16', device: Device) {
    this.#handle = handle;
    this.n = n;
    this.k = k;
    this.compute = compute;
    this.device = device;
  }

  get bytes(): number { return this.#handle.bytes; }
  get disposed(): boolean { return this.#handle.disposed; }

  /** @internal */
  handle(): NativePackedWeight {
    if (this.#handle.disposed) fail('ERR_DISPOSED', 'packed weight was disposed');
    return this.#handle;
  }

  dispose(): void { this.#handle.dispose(); }
  [Symbol.dispose](): void { this.dispose(); }
}

export async function packWeight(weight: Tensor, opts: { compute?: 'float32' | 'bfloat16' } = {}): Promise<PackedWeight> {
  const compute = opts.compute ?? 'float32';
  if (compute !== 'float32' && compute !== 'bfloat16') fail('ERR_DTYPE', `compute must be float32 or bfloat16`);
  if (weight.shape.length !== 2) fail('ERR_SHAPE', `weight must be [N, K], got [${weight.shape.join(', ')}]`);
  if (!isFloat(weight.dtype)) fail('ERR_DTYPE', `weight must be a float tensor, got ${weight.dtype}`);
  const [n, k] = weight.shape as [number, number];
  const handle = await weight.track(() => native().packWeight(weight.native(), compute));
  return new PackedWeight(handle, n, k, compute, weight.device);
}

export interface LinearOptions {
  /** [M, K] */
  x: Tensor;
  /** [N, K] (nn.Linear layout); or `packed`. */
  weight?: Tensor;
  packed?: PackedWeight;
  /** [N] float32 */
  bias?: Tensor;
  /** [M, N] float32, added after the activation (and the gate). */
  residual?: Tensor;
  /**
   * [G, N] float32 with G dividing M: multiplies act(x·Wᵀ + bias) before the
   * residual is added, row m by gate row ⌊m / (M/G)⌋ (one gate vector per
   * group of M/G consecutive rows, e.g. VAR's AdaLN gate per sample over its
   * tokens). Must not overlap `out`.
   */
  gate?: Tensor;
  activation?: Activation;
  /** [M, N] float32 (or bfloat16/float16); allocated float32 if absent. May be `residual` itself. */
  out?: Tensor;
}

/** y = gate ⊙ act(x·Wᵀ + bias) + residual */
export async function linear(opts: LinearOptions): Promise<Tensor> {
  const { x, weight, packed, bias, residual, gate } = opts;
  if (x.shape.length !== 2) fail('ERR_SHAPE', `x must be [M, K], got [${x.shape.join(', ')}]`);
  if (!isFloat(x.dtype)) fail('ERR_DTYPE', `x must be a float tensor, got ${x.dtype}`);
  const [M, K] = x.shape as [number, number];
  let N: number;
  if (packed) {
    if (weight) fail('ERR_INVALID_ARGUMENT', 'pass either weight or packed, not both');
    if (packed.k !== K) fail('ERR_SHAPE', `x has K=${K}, the packed weight K=${packed.k}`);
    N = packed.n;
  } else {
    if (!weight) fail('ERR_INVALID_ARGUMENT', 'linear needs a weight or a packed weight');
    if (weight.shape.length !== 2 || weight.shape[1] !== K)
      fail('ERR_SHAPE', `weight must be [N, ${K}] for x [${M}, ${K}], got [${weight.shape.join(', ')}]`);
    if (!isFloat(weight.dtype)) fail('ERR_DTYPE', `weight must be a float tensor, got ${weight.dtype}`);
    N = weight.shape[0]!;
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) fail('ERR_SHAPE', `bias must be [${N}]`);
  if (residual && (residual.shape.length !== 2 || residual.shape[0] !== M || residual.shape[1] !== N))
    fail('ERR_SHAPE', `residual must be [${M}, ${N}]`);
  if (gate) {
    const G = gate.shape[0]!;
    if (gate.shape.length !== 2 || gate.shape[1] !== N || !(G >= 1) || M % G !== 0)
      fail('ERR_SHAPE', `gate must be [G, ${N}] with G dividing M = ${M}, got [${gate.shape.join(', ')}]`);
    if (gate.dtype !== 'float32') fail('ERR_DTYPE', `gate must be float32, got ${gate.dtype}`);
  }
  const activation = opts.activation ?? 'none';
  const act = ACTIVATIONS.indexOf(activation);
  if (act < 0) fail('ERR_INVALID_ARGUMENT', `activation must be one of ${ACTIVATIONS.join(', ')}`);
  const out = opts.out ?? Tensor.empty([M, N], 'float32', x.device);
  if (out.shape.length !== 2 || out.shape[0] !== M || out.shape[1] !== N) fail('ERR_SHAPE', `out must be [${M}, ${N}]`);

  await withTensors([x, weight, bias, residual, gate, out], () => native().linear({
    x: x.native(), weight: weight?.native(), packed: packed?.handle(), bias: bias?.native(),
    residual: residual?.native(), gate: gate?.native(), out: out.native(), activation: act,
  }));
  return out;
}

export interface MatmulOptions {
  a: Tensor;
  b: Tensor;
  out?: Tensor;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** Scales the existing contents of `out` (needs `out`). */
  beta?: number;
}

/** out = alpha·op(a)·op(b) + beta·out, float32. */
export async function matmul(opts: MatmulOptions): Promise<Tensor> {
  const { a, b } = opts;
  if (a.shape.length !== 2 || b.shape.length !== 2) fail('ERR_SHAPE', 'matmul takes 2-D tensors');
  if (a.dtype !== 'float32' || b.dtype !== 'float32') fail('ERR_DTYPE', 'matmul takes float32 tensors');
  const [M, Ka] = (opts.transA ? [a.shape[1], a.shape[0]] : a.shape) as [number, number];
  const [Kb, N] = (opts.transB ? [b.shape[1], b.shape[0]] : b.shape) as [number, number];
  if (Ka !== Kb) fail('ERR_SHAPE', `inner dimensions differ: ${Ka} vs ${Kb}`);
  if (opts.beta !== undefined && opts.beta !== 0 && !opts.out) fail('ERR_INVALID_ARGUMENT', 'beta needs out');
  const out = opts.out ?? Tensor.empty([M, N], 'float32', a.device);
  await withTensors([a, b, out], () => native().matmul({
    a: a.native(), b: b.native(), c: out.native(), transA: opts.transA ?? false, transB: opts.transB ?? false,
    alpha: opts.alpha ?? 1, beta: opts.beta ?? 0,
  }));
  return out;
}
