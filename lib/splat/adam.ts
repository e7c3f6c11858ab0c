// Adam over a row-structured parameter (one row per Gaussian), with the
// value, gradient and both moments in buffers that are reused step after
// step. Rows can be appended (densification: new rows start with zero
// moments, as 3DGS does when it concatenates tensors into its optimizer) and
// removed (pruning); buffers grow geometrically, so steps never allocate.
//
// Update (Kingma & Ba 2015, Algorithm 1), t counted from 1:
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,
//   x ← x − lr·col[j] · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)
// with an optional per-column learning-rate multiplier col (3DGS gives the
// SH DC and higher-order coefficients different rates within one tensor).

export interface AdamSettings {
  beta1?: number;
  beta2?: number;
  /** 3DGS uses 1e-15 (its Adam is torch.optim.Adam with eps=1e-15). */
  eps?: number;
}

export class AdamRows {
  readonly dim: number;
  rows = 0;
  value: Float32Array;
  grad: Float32Array;
  m: Float32Array;
  v: Float32Array;
  readonly colScale: Float32Array | null;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(dim: number, capacity: number, colScale: Float32Array | null = null, s: AdamSettings = {}) {
    this.dim = dim;
    const n = Math.max(1, capacity) * dim;
    this.value = new Float32Array(n);
    this.grad = new Float32Array(n);
    this.m = new Float32Array(n);
    this.v = new Float32Array(n);
    this.colScale = colScale;
    this.beta1 = s.beta1 ?? 0.9;
    this.beta2 = s.beta2 ?? 0.999;
    this.eps = s.eps ?? 1e-15;
  }

  get capacity(): number { return this.value.length / this.dim; }

  /** The live rows of the value (a view: native code reads it in place). */
  values(): Float32Array { return this.value.subarray(0, this.rows * this.dim); }
  /** The live rows of the gradient buffer (native backward writes it). */
  grads(): Float32Array { return this.grad.subarray(0, this.rows * this.dim); }

  /** One Adam step with learning rate lr at step t (t >= 1). */
  step(lr: number, t: number): void {
    const { beta1: b1, beta2: b2, eps, dim } = this;
    const c1 = 1 / (1 - b1 ** t), c2 = 1 / (1 - b2 ** t);
    const x = this.value, g = this.grad, m = this.m, v = this.v, cs = this.colScale;
    const n = this.rows * dim;
    for (let i = 0; i < n; i++) {
      const gi = g[i]!;
      const mi = b1 * m[i]! + (1 - b1) * gi;
      const vi = b2 * v[i]! + (1 - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const rate = cs ? lr * cs[i % dim]! : lr;
      x[i] = x[i]! - rate * (mi * c1) / (Math.sqrt(vi * c2) + eps);
    }
  }

  /** Makes room for `rows` rows, keeping the live ones. */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    const cap = Math.max(rows, Math.ceil(this.capacity * 1.5)) * this.dim;
    const grow = (a: Float32Array) => { const b = new Float32Array(cap); b.set(a.subarray(0, this.rows * this.dim)); return b; };
    this.value = grow(this.value);
    this.grad = new Float32Array(cap);
    this.m = grow(this.m);
    this.v = grow(this.v);
  }

  /** Appends a row (moments zero); `src` holds dim values. */
  push(src: ArrayLike<number>, at = 0): void {
    this.reserve(this.rows + 1);
    const o = this.rows * this.dim;
    for (let j = 0; j < this.dim; j++) {
      this.value[o + j] = src[at + j]!;
      this.m[o + j] = 0;
      this.v[o + j] = 0;
    }
    this.rows++;
  }

  /** Keeps the rows whose flag is set, in order (in place). */
  keep(flags: Uint8Array): void {
    const d = this.dim;
    let w = 0;
    for (let r = 0; r < this.rows; r++) {
      if (!flags[r]) continue;
      if (w !== r) {
        this.value.copyWithin(w * d, r * d, (r + 1) * d);
        this.m.copyWithin(w * d, r * d, (r + 1) * d);
        this.v.copyWithin(w * d, r * d, (r + 1) * d);
      }
      w++;
    }
    this.rows = w;
  }

  /** Zeroes both moments of every row (after a parameter reset, as 3DGS does). */
  resetMoments(): void {
    this.m.fill(0, 0, this.rows * this.dim);
    this.v.fill(0, 0, this.rows * this.dim);
  }
}
