// Timing helpers for the `tessera bench` commands: medians of alternated runs,
// so every implementation in a comparison shares the machine's noise.

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export interface Contender {
  name: string;
  run: () => Promise<unknown>;
}

export interface TimingOptions {
  warmup?: number;
  minRuns?: number;
  /** Minimum total time per contender, ms. */
  minMs?: number;
  maxRuns?: number;
  /**
   * Each turn runs one contender repeatedly for about this long (ms) before
   * the next takes over. Turns of a few tens of ms still share the machine's
   * noise, but keep one contender's leftover activity (onnxruntime's worker
   * threads spin for a while after each run) out of the other's short runs.
   */
  turnMs?: number;
  /**
   * Idle pause (ms, default 0) before each turn. onnxruntime's intra-op
   * threads keep spinning for ~40 ms after its last run; longer than a turn,
   * that spinning would be charged to whichever contender runs next.
   */
  settleMs?: number;
}

/**
 * Warms each contender up, then runs them in turns (A…, B…, C…, A…, ...)
 * until each has at least minRuns runs and minMs of measured time.
 * Returns the median ms per run for each contender.
 */
export async function timeAlternating(contenders: readonly Contender[], opts: TimingOptions = {}): Promise<Map<string, number>> {
  const { warmup = 3, minRuns = 7, minMs = 1000, maxRuns = 2000, turnMs = 40, settleMs = 0 } = opts;
  for (const c of contenders) for (let i = 0; i < warmup; i++) await c.run();
  const samples = contenders.map(() => [] as number[]);
  const total = contenders.map(() => 0);
  const done = () => samples.every((s, i) => s.length >= maxRuns || (s.length >= minRuns && total[i]! >= minMs));
  while (!done()) {
    for (let i = 0; i < contenders.length; i++) {
      if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
      let turn = 0;
      do {
        const t0 = process.hrtime.bigint();
        await contenders[i]!.run();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        samples[i]!.push(ms);
        total[i]! += ms;
        turn += ms;
      } while (turn < turnMs && samples[i]!.length < maxRuns);
    }
  }
  return new Map(contenders.map((c, i) => [c.name, median(samples[i]!)]));
}

/** Uniform values in [-1, 1) from a seeded LCG (the peers' baselines used the same generator). */
export function randomUniform(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}
