// Opt-in per-op profile of VAR generation: wall and CPU time (process-wide
// user+system, all threads, from process.cpuUsage()) per op family and per
// stage (transformer scale s0..s9, decode resolution). Ops run one at a time
// (every op is awaited before the next starts), so the process CPU time
// between an op's start and end is that op's. Enabled by
// TESSERA_VAR_PROFILE=1 (the report goes to stderr when generate() ends) or
// by `tessera bench var --profile`. Off, each hook costs one branch.

interface Entry { calls: number; wallMs: number; cpuMs: number; flop: number }

export class OpProfile {
  /** family → stage → totals */
  readonly entries = new Map<string, Map<string, Entry>>();
  /** The stage new ops are booked under (set by the generation loop). */
  stage = '';
  private readonly stages: string[] = [];

  setStage(s: string): void {
    this.stage = s;
    if (!this.stages.includes(s)) this.stages.push(s);
  }

  add(family: string, wallMs: number, cpuMs: number, flop: number): void {
    let byStage = this.entries.get(family);
    if (!byStage) this.entries.set(family, (byStage = new Map()));
    const e = byStage.get(this.stage) ?? { calls: 0, wallMs: 0, cpuMs: 0, flop: 0 };
    e.calls++; e.wallMs += wallMs; e.cpuMs += cpuMs; e.flop += flop;
    byStage.set(this.stage, e);
  }

  /** A table: one row per family, CPU ms per stage, totals, GFLOP per CPU-second where FLOPs are known. */
  report(): string {
    const stages = this.stages;
    const fam = [...this.entries.keys()];
    const w = Math.max(12, ...fam.map((f) => f.length));
    const head = `${'op (CPU ms)'.padEnd(w)} ${stages.map((s) => s.padStart(7)).join(' ')} ${'total'.padStart(8)} ${'wall'.padStart(8)} ${'calls'.padStart(6)} GFLOP/CPU-s`;
    const lines = [head];
    const colTotals = stages.map(() => 0);
    let all = 0, allWall = 0;
    for (const f of fam) {
      const byStage = this.entries.get(f)!;
      let cpu = 0, wall = 0, calls = 0, flop = 0;
      const cells = stages.map((s, i) => {
        const e = byStage.get(s);
        if (!e) return ''.padStart(7);
        cpu += e.cpuMs; wall += e.wallMs; calls += e.calls; flop += e.flop;
        colTotals[i]! += e.cpuMs;
        return e.cpuMs.toFixed(0).padStart(7);
      });
      all += cpu; allWall += wall;
      const rate = flop > 0 && cpu > 0 ? (flop / 1e9 / (cpu / 1000)).toFixed(1) : '';
      lines.push(`${f.padEnd(w)} ${cells.join(' ')} ${cpu.toFixed(0).padStart(8)} ${wall.toFixed(0).padStart(8)} ${String(calls).padStart(6)} ${rate}`);
    }
    lines.push(`${'all ops'.padEnd(w)} ${colTotals.map((c) => c.toFixed(0).padStart(7)).join(' ')} ${all.toFixed(0).padStart(8)} ${allWall.toFixed(0).padStart(8)}`);
    return lines.join('\n');
  }
}

let active: OpProfile | undefined = process.env.TESSERA_VAR_PROFILE === '1' ? new OpProfile() : undefined;

/** The profile being recorded, if any. */
export function varProfile(): OpProfile | undefined { return active; }

/** Starts (or with `undefined`, stops) recording into `p`. */
export function setVarProfile(p: OpProfile | undefined): void { active = p; }

let depth = 0;

/**
 * Runs `fn` and books its wall and CPU time under `family` (and `flop`
 * operations) when profiling. A timed call inside another is booked to the
 * outer one only.
 */
export async function timed<T>(family: string, fn: () => Promise<T> | T, flop = 0): Promise<T> {
  const p = active;
  if (!p || depth > 0) return fn();
  depth++;
  const c0 = process.cpuUsage(), t0 = performance.now();
  try {
    return await fn();
  } finally {
    depth--;
    const t1 = performance.now(), c1 = process.cpuUsage(c0);
    p.add(family, t1 - t0, (c1.user + c1.system) / 1000, flop);
  }
}

/** Sets the stage label when profiling. */
export function profileStage(s: string): void { active?.setStage(s); }
