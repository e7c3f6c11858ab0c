// Float64 references for the op tests: plain loops over dense BHLD arrays,
// the same semantics as native/include/tessera/attention.h and gemm.h.

export interface RefMask {
  causal?: boolean;
  blocks?: number[];
  qSeg?: Int32Array; // [B*Lq]
  kSeg?: Int32Array; // [B*Lk]
  additive?: Float32Array; // [Lq*Lk], shared by batch and heads
  kvLen?: number[];
}

export function refAttention(
  B: number, Hq: number, Hkv: number, Lq: number, Lk: number, D: number,
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, scale: number, m: RefMask = {},
): Float64Array {
  const out = new Float64Array(B * Hq * Lq * D);
  const blockOf: number[] = [];
  (m.blocks ?? []).forEach((n, i) => { for (let t = 0; t < n; t++) blockOf.push(i); });
  const logits = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    const kvl = m.kvLen ? m.kvLen[b]! : Lk;
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hkv));
      for (let i = 0; i < Lq; i++) {
        const p = kvl - Lq + i;
        let mx = -Infinity;
        for (let j = 0; j < Lk; j++) {
          let vis = j < kvl;
          if (m.causal && j > p) vis = false;
          if (m.blocks && vis) vis = p >= 0 && blockOf[j]! <= blockOf[p]!;
          if (m.qSeg && m.qSeg[b * Lq + i] !== m.kSeg![b * Lk + j]) vis = false;
          if (!vis) { logits[j] = -Infinity; continue; }
          let s = 0;
          for (let d = 0; d < D; d++) s += q[((b * Hq + h) * Lq + i) * D + d]! * k[((b * Hkv + hk) * Lk + j) * D + d]!;
          s *= scale;
          if (m.additive) s += m.additive[i * Lk + j]!;
          logits[j] = s;
          mx = Math.max(mx, s);
        }
        if (mx === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < Lk; j++) { logits[j] = Math.exp(logits[j]! - mx); sum += logits[j]!; }
        for (let j = 0; j < Lk; j++) {
          const w = logits[j]! / sum;
          if (w === 0) continue;
          for (let d = 0; d < D; d++) out[((b * Hq + h) * Lq + i) * D + d] += w * v[((b * Hkv + hk) * Lk + j) * D + d]!;
        }
      }
    }
  }
  return out;
}

export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** y = act(x·Wᵀ + bias) + residual; x [M,K], w [N,K]. */
export function refLinear(M: number, N: number, K: number, x: ArrayLike<number>, w: ArrayLike<number>,
  bias?: ArrayLike<number>, residual?: ArrayLike<number>, act: 'none' | 'gelu_tanh' | 'silu' = 'none'): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = bias ? bias[n]! : 0;
    for (let kk = 0; kk < K; kk++) s += x[m * K + kk]! * w[n * K + kk]!;
    if (act === 'gelu_tanh') s = gelu(s); else if (act === 'silu') s = silu(s);
    y[m * N + n] = s + (residual ? residual[m * N + n]! : 0);
  }
  return y;
}

/** ‖a − b‖ / ‖b‖ (the native tests' normalised error). */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** Fresh random values in [-1, 1) (Math.random: every run sees new inputs). */
export function randomArray(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** [B,H,L,D] → [B,L,H,D] */
export function bhldToBlhd(a: Float32Array, B: number, H: number, L: number, D: number): Float32Array {
  const o = new Float32Array(a.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++)
    for (let d = 0; d < D; d++) o[((b * L + l) * H + h) * D + d] = a[((b * H + h) * L + l) * D + d]!;
  return o;
}
