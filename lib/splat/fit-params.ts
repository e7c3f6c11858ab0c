// The trainable state of a 3DGS fit: one AdamRows per parameter tensor of
// GaussianScene (raw parameterisation: means, log-scales, quaternions,
// opacity logits, SH [K,3]), plus the densification statistics, and the
// densify / prune / opacity-reset operations of 3DGS (Kerbl et al. 2023,
// §5.2 and its training code's densify_and_prune) in a simple form.
import type { GaussianScene } from '../io/gaussian-scene.js';
import { AdamRows } from './adam.js';
import type { SeededRandom } from './random.js';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) => Math.log(p / (1 - p));

export class SplatParams {
  readonly shDegree: number;
  readonly K: number;
  readonly means: AdamRows;
  readonly logScales: AdamRows;
  readonly rotations: AdamRows;
  readonly opacity: AdamRows;
  readonly sh: AdamRows;
  /** Σ over views of the view-space positional gradient norm, and the number of views that saw each Gaussian. */
  gradAccum: Float32Array;
  gradCount: Int32Array;

  constructor(shDegree: number, capacity: number, shRestScale: number) {
    this.shDegree = shDegree;
    this.K = (shDegree + 1) ** 2;
    // The SH rows hold [K,3]: the DC columns at rate 1, the rest at shRestScale (3DGS: 1/20).
    const col = new Float32Array(3 * this.K).fill(shRestScale);
    col.fill(1, 0, 3);
    this.means = new AdamRows(3, capacity);
    this.logScales = new AdamRows(3, capacity);
    this.rotations = new AdamRows(4, capacity);
    this.opacity = new AdamRows(1, capacity);
    this.sh = new AdamRows(3 * this.K, capacity, col);
    this.gradAccum = new Float32Array(capacity);
    this.gradCount = new Int32Array(capacity);
  }

  get count(): number { return this.means.rows; }
  get groups(): AdamRows[] { return [this.means, this.logScales, this.rotations, this.opacity, this.sh]; }

  /** A GaussianScene whose arrays are views of the live rows (valid until the next densify). */
  scene(): GaussianScene {
    return {
      count: this.count, shDegree: this.shDegree, antialiased: false, means: this.means.values(),
      logScales: this.logScales.values(), rotations: this.rotations.values(), opacityLogits: this.opacity.values(),
      sh: this.sh.values(),
    };
  }

  /** Appends one Gaussian (zero Adam moments, zero densification statistics). */
  push(mean: ArrayLike<number>, logScale: ArrayLike<number>, rot: ArrayLike<number>, opacityLogit: number,
    sh: ArrayLike<number>, shAt = 0): void {
    this.means.push(mean);
    this.logScales.push(logScale);
    this.rotations.push(rot);
    this.opacity.push([opacityLogit]);
    this.sh.push(sh, shAt);
    if (this.gradAccum.length < this.count) {
      const a = new Float32Array(this.means.capacity); a.set(this.gradAccum); this.gradAccum = a;
      const c = new Int32Array(this.means.capacity); c.set(this.gradCount); this.gradCount = c;
    }
    this.gradAccum[this.count - 1] = 0;
    this.gradCount[this.count - 1] = 0;
  }

  /** Keeps the flagged rows of every tensor and statistic. */
  keep(flags: Uint8Array): void {
    let w = 0;
    for (let r = 0; r < this.count; r++) {
      if (!flags[r]) continue;
      this.gradAccum[w] = this.gradAccum[r]!;
      this.gradCount[w] = this.gradCount[r]!;
      w++;
    }
    for (const g of this.groups) g.keep(flags);
  }

  maxScale(i: number): number {
    const s = this.logScales.value;
    return Math.exp(Math.max(s[3 * i]!, s[3 * i + 1]!, s[3 * i + 2]!));
  }

  /**
   * 3DGS densification: Gaussians whose mean view-space positional gradient
   * reaches `threshold` are cloned when small (max scale <= `cloneScale`) and
   * split into two when large: the children are drawn from the parent's own
   * distribution (x = μ + R·diag(s)·n, n ~ N(0, I)) with scales divided by
   * 1.6 (= 0.8·2), and the parent is removed. At most `maxCount` Gaussians.
   */
  densify(threshold: number, cloneScale: number, maxCount: number, rng: SeededRandom): { cloned: number; split: number } {
    const n = this.count;
    let cloned = 0, split = 0;
    const remove = new Uint8Array(n);
    const row = new Float32Array(3 * this.K);
    for (let i = 0; i < n; i++) {
      const c = this.gradCount[i]!;
      if (c === 0 || this.gradAccum[i]! / c < threshold) continue;
      if (this.count - split + 1 > maxCount) break;  // clone and split both add one net
      const mean = this.means.value.subarray(3 * i, 3 * i + 3);
      const ls = this.logScales.value.subarray(3 * i, 3 * i + 3);
      const q = this.rotations.value.subarray(4 * i, 4 * i + 4);
      const op = this.opacity.value[i]!;
      row.set(this.sh.value.subarray(3 * this.K * i, 3 * this.K * (i + 1)));
      if (this.maxScale(i) <= cloneScale) {
        this.push(Float32Array.from(mean), Float32Array.from(ls), Float32Array.from(q), op, row);
        cloned++;
        continue;
      }
      const R = rotationMatrix(q);
      const s = [Math.exp(ls[0]!), Math.exp(ls[1]!), Math.exp(ls[2]!)];
      const childLs = [ls[0]! - Math.log(1.6), ls[1]! - Math.log(1.6), ls[2]! - Math.log(1.6)];
      const qc = Float32Array.from(q);
      const mc = Float32Array.from(mean);
      for (let k = 0; k < 2; k++) {
        const z = [s[0]! * rng.normal(), s[1]! * rng.normal(), s[2]! * rng.normal()];
        const x = [0, 1, 2].map((r) => mc[r]! + R[3 * r]! * z[0]! + R[3 * r + 1]! * z[1]! + R[3 * r + 2]! * z[2]!);
        this.push(x, childLs, qc, op, row);
      }
      remove[i] = 1;
      split++;
    }
    const flags = new Uint8Array(this.count).fill(1);
    for (let i = 0; i < n; i++) if (remove[i]) flags[i] = 0;
    this.keep(flags);
    return { cloned, split };
  }

  /** Removes Gaussians with opacity below `minOpacity` or max scale above `maxScale`; returns how many. */
  prune(minOpacity: number, maxScale: number): number {
    const n = this.count;
    const flags = new Uint8Array(n);
    let removed = 0;
    for (let i = 0; i < n; i++) {
      const keep = sigmoid(this.opacity.value[i]!) >= minOpacity && this.maxScale(i) <= maxScale;
      flags[i] = keep ? 1 : 0;
      removed += keep ? 0 : 1;
    }
    if (removed && removed < n) this.keep(flags);
    return removed < n ? removed : 0;
  }

  /** 3DGS opacity reset: opacity ← min(opacity, `to`), with fresh Adam moments for it. */
  resetOpacity(to: number): void {
    const cap = logit(to), o = this.opacity.value;
    for (let i = 0; i < this.count; i++) o[i] = Math.min(o[i]!, cap);
    this.opacity.resetMoments();
  }

  clearStats(): void {
    this.gradAccum.fill(0);
    this.gradCount.fill(0);
  }
}

/** Row-major rotation matrix of the quaternion (w, x, y, z), normalised here. */
export function rotationMatrix(q: ArrayLike<number>): number[] {
  const n = Math.hypot(q[0]!, q[1]!, q[2]!, q[3]!) || 1;
  const w = q[0]! / n, x = q[1]! / n, y = q[2]! / n, z = q[3]! / n;
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
    2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
    2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
  ];
}
