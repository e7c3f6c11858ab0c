// Steps several VAR requests through one transformer together: per scale,
// one forwardScale over the stacked rows [cond of every request, then uncond
// of every request] (the layout generate() uses for one request's images).
// Sampling and decoding stay per request, with each request's own settings
// and seeds; the VQVAE's per-scale steps (f_hat update, next input) run once
// over every request's stacked images. A request's output equals generate()
// run alone: every transformer op is row-wise (linear, LayerNorm, per-row
// attention over the row's own cache) and the VQVAE steps are per image,
// which the server tests check byte for byte. (One f_hat step per request
// instead cost ~1.5 ms of CPU per image on the embedded tiny VAR, where a
// whole image costs ~18 ms: the load test's server-vs-engine gap.)
import { checkGenerateOptions, decodeEach, keepSource, sampleScale, type GenerateOptions, type Generated, type KeptTokens } from '../models/var/generate.js';
import { disposeConditioning, VarCache, type Conditioning, type VarTransformer } from '../models/var/transformer.js';
import type { Vqvae } from '../models/var/vqvae.js';
import { Tensor } from '../tensor.js';

export interface VarWork {
  options: Omit<GenerateOptions, 'onScale'>;
  /** Source tokens to keep (editing). */
  kept?: KeptTokens;
  signal: AbortSignal;
  /** After scale si; fHat [B, Cvae, last, last] is the request's running latent (read it, do not keep it). */
  onScale?: (si: number, scales: number, fHat: Tensor) => void | Promise<void>;
}

export type Settled<T = Generated> = { ok: true; value: T } | { ok: false; error: unknown };

interface Member {
  work: VarWork;
  o: ReturnType<typeof checkGenerateOptions>;
  B: number;
  tokens: number[][][];
  /** Index into the results array. */
  slot: number;
}

/** Rows `rows` of t along its first axis, as a new contiguous tensor. */
export function selectRows(t: Tensor, rows: readonly number[]): Tensor {
  const size = t.numel / t.shape[0]!;
  const src = t.data as Float32Array, out = Tensor.empty([rows.length, ...t.shape.slice(1)]);
  const dst = out.data as Float32Array;
  rows.forEach((r, i) => dst.set(src.subarray(r * size, (r + 1) * size), i * size));
  return out;
}

/**
 * One conditioning for several requests: each request's own (computed alone,
 * because the AdaLN linears take a different kernel for <= 4 rows, which
 * would change the last bits) stacked as [cond rows of all, uncond rows of all].
 */
function stackConditioning(parts: readonly Conditioning[], C: number): Conditioning {
  const total = parts.reduce((a, p) => a + p.rows, 0);
  const order: [number, number][] = [];  // (part, row) in stacked order
  for (const half of [0, 1]) parts.forEach((p, i) => { for (let r = 0; r < p.rows / 2; r++) order.push([i, half * (p.rows / 2) + r]); });
  const stack = (pick: (p: Conditioning) => Float32Array): Float32Array => {
    const out = new Float32Array(total * C);
    order.forEach(([i, r], at) => out.set(pick(parts[i]!).subarray(r * C, (r + 1) * C), at * C));
    return out;
  };
  const t = (pick: (p: Conditioning) => Tensor): Tensor => Tensor.from(stack((p) => pick(p).data as Float32Array), [total, C]);
  return {
    rows: total, classRows: stack((p) => p.classRows),
    blocks: parts[0]!.blocks.map((_, j) => ({
      g1: t((p) => p.blocks[j]!.g1), g2: t((p) => p.blocks[j]!.g2), s1: t((p) => p.blocks[j]!.s1),
      s2: t((p) => p.blocks[j]!.s2), b1: t((p) => p.blocks[j]!.b1), b2: t((p) => p.blocks[j]!.b2),
    })),
    headScale: t((p) => p.headScale), headShift: t((p) => p.headShift),
  };
}

/** Row indices of the kept members in the [cond all, uncond all] layout of `all` members. */
function keptRows(all: readonly Member[], kept: readonly Member[]): number[] {
  const total = all.reduce((a, m) => a + m.B, 0);
  const cond: number[] = [];
  let off = 0;
  for (const m of all) {
    if (kept.includes(m)) for (let b = 0; b < m.B; b++) cond.push(off + b);
    off += m.B;
  }
  return [...cond, ...cond.map((r) => total + r)];
}

function compactConditioning(c: Conditioning, rows: readonly number[], C: number): Conditioning {
  const classRows = new Float32Array(rows.length * C);
  rows.forEach((r, i) => classRows.set(c.classRows.subarray(r * C, (r + 1) * C), i * C));
  return {
    rows: rows.length, classRows,
    blocks: c.blocks.map((b) => ({
      g1: selectRows(b.g1, rows), g2: selectRows(b.g2, rows), s1: selectRows(b.s1, rows),
      s2: selectRows(b.s2, rows), b1: selectRows(b.b1, rows), b2: selectRows(b.b2, rows),
    })),
    headScale: selectRows(c.headScale, rows), headShift: selectRows(c.headShift, rows),
  };
}

function compactCache(model: VarTransformer, cache: VarCache, rows: readonly number[]): VarCache {
  const next = new VarCache(model.config, rows.length);
  for (let i = 0; i < cache.k.length; i++)
    for (const [src, dst] of [[cache.k[i]!, next.k[i]!], [cache.v[i]!, next.v[i]!]] as const) {
      const t = selectRows(src, rows);
      (dst.data as Float32Array).set(t.data as Float32Array);
      t.dispose();
    }
  next.length = cache.length;
  return next;
}

/** Member m's logits [2B_m, n, V] out of the stacked [2·total, n, V]. */
function memberLogits(all: Float32Array, offset: number, B: number, total: number, nv: number): Tensor {
  const out = new Float32Array(2 * B * nv);
  out.set(all.subarray(offset * nv, (offset + B) * nv));
  out.set(all.subarray((total + offset) * nv, (total + offset + B) * nv), B * nv);
  return Tensor.from(out, [2 * B, nv]);
}

/**
 * Runs `works` to completion (or cancellation) in one cohort. A work whose
 * signal aborts is dropped at the next scale boundary, its rows removed from
 * the stacked caches, and settles with the signal's reason. `onStep` sees
 * each transformer call's image count and duration (metrics).
 */
export async function runVarCohort(vae: Vqvae, model: VarTransformer, works: readonly VarWork[],
  onStep?: (images: number, seconds: number) => void): Promise<Settled[]> {
  const { schedule, vocabulary: V, latentChannels: Cvae, width: C } = model.config;
  const SN = schedule.length, last = schedule[SN - 1]!;
  const results: Settled[] = new Array(works.length);
  let active: Member[] = [];
  works.forEach((work, slot) => {
    try {
      const o = checkGenerateOptions(work.options, model.config.classes);
      const B = o.classes.length;
      active.push({ work, o, B, slot, tokens: o.classes.map(() => []) });
    } catch (error) {
      results[slot] = { ok: false, error };
    }
  });
  const drop = (m: Member, error: unknown): void => { results[m.slot] = { ok: false, error }; };
  /** Image rows of `members` within the stacked f_hat of `of` (members in order, B_m images each). */
  const imageRows = (of: readonly Member[], members: readonly Member[]): number[] => {
    const rows: number[] = [];
    let off = 0;
    for (const m of of) {
      if (members.includes(m)) for (let b = 0; b < m.B; b++) rows.push(off + b);
      off += m.B;
    }
    return rows;
  };
  // fHat: every active request's images stacked [total, Cvae, last, last], in `active` order.
  let cond: Conditioning | undefined, cache: VarCache | undefined, x: Tensor | undefined, fHat: Tensor | undefined;
  try {
    active = active.filter((m) => (m.work.signal.aborted ? (drop(m, m.work.signal.reason), false) : true));
    if (active.length === 0) return results;
    const parts: Conditioning[] = [];
    try {
      for (const m of active) parts.push(await model.condition(m.o.classes));
      cond = stackConditioning(parts, C);
    } finally {
      for (const p of parts) disposeConditioning(p);
    }
    let total = active.reduce((a, m) => a + m.B, 0);
    cache = new VarCache(model.config, 2 * total);
    fHat = Tensor.zeros([total, Cvae, last, last]);
    x = model.startTokens(cond);
    for (let si = 0; si < SN; si++) {
      const pn = schedule[si]!, n = pn * pn;
      const t0 = performance.now();
      const logits = await model.forwardScale(x, cond, cache);
      onStep?.(total, (performance.now() - t0) / 1000);
      x.dispose();
      x = undefined;
      let off = 0;
      const hAll = Tensor.empty([total, Cvae, pn, pn]);
      try {
        for (const m of active) {
          const ml = memberLogits(logits.data as Float32Array, off, m.B, total, n * V);
          const ids = new Int32Array(m.B * n);
          const h = await sampleScale(vae, ml, m.o, { si, SN, B: m.B, n, V, ids });
          ml.dispose();
          if (m.work.kept) keepSource(vae, h, ids, m.work.kept.ids[si]!, m.work.kept.keep[si]!, Cvae, n);
          for (let b = 0; b < m.B; b++) m.tokens[b]!.push(Array.from(ids.subarray(b * n, (b + 1) * n)));
          (hAll.data as Float32Array).set(h.data as Float32Array, off * Cvae * n);
          h.dispose();
          off += m.B;
        }
        (await vae.addScale(si, schedule, fHat, hAll)).dispose();
      } finally {
        hAll.dispose();
      }
      logits.dispose();
      for (const m of active) {
        if (!m.work.onScale) continue;
        const mine = selectRows(fHat, imageRows(active, [m]));
        try {
          await m.work.onScale(si, SN, mine);
        } finally {
          mine.dispose();
        }
      }
      const staying = active.filter((m) => !m.work.signal.aborted);
      if (staying.length < active.length) {
        for (const m of active) if (!staying.includes(m)) drop(m, m.work.signal.reason);
        if (staying.length === 0) return results;
        const rows = keptRows(active, staying);
        const c2 = compactConditioning(cond, rows, C), k2 = compactCache(model, cache, rows), f2 = selectRows(fHat, imageRows(active, staying));
        disposeConditioning(cond);
        cache.dispose();
        fHat.dispose();
        cond = c2;
        cache = k2;
        fHat = f2;
        active = staying;
        total = active.reduce((a, m) => a + m.B, 0);
      }
      if (si === SN - 1) break;
      const lat = await vae.nextInput(fHat, schedule[si + 1]!);  // [total, n', Cvae], request after request
      try {
        x = await model.scaleInput(si + 1, lat);
      } finally {
        lat.dispose();
      }
    }
    for (const m of active) {
      if (m.work.signal.aborted) { drop(m, m.work.signal.reason); continue; }
      const mine = selectRows(fHat, imageRows(active, [m]));
      try {
        results[m.slot] = { ok: true, value: { images: await decodeEach(vae, mine), tokens: m.tokens } };
      } catch (error) {
        drop(m, error);
      } finally {
        mine.dispose();
      }
    }
    return results;
  } catch (error) {
    // A failure of the shared step fails every member still running.
    for (const m of active) if (!results[m.slot]) drop(m, error);
    return results;
  } finally {
    x?.dispose();
    cache?.dispose();
    fHat?.dispose();
    if (cond) disposeConditioning(cond);
  }
}
