// Steps several VAR requests through one transformer together: per scale,
// one forwardScale over the stacked rows [cond of every request, then uncond
// of every request] (the layout generate() uses for one request's images).
// Sampling stays per image, with each request's own settings and seeds, read
// straight out of the stacked logits; the code embedding, the VQVAE's
// per-scale steps (f_hat update, next input) run once over every request's
// stacked images. A request's output equals generate() run alone: every
// transformer op is row-wise (linear, LayerNorm, per-row attention over the
// row's own cache) and the VQVAE steps and the embedding are per image,
// which the server tests check byte for byte.
//
// Conditioning (the AdaLN terms of a request's classes) depends only on the
// class list, so a ConditioningCache keeps it per list: computed alone
// exactly as generate() computes it, reused by every later request of the
// same classes. The finished images are decoded several per call where
// they are small (decodeGroups). On the embedded tiny VAR, where an image
// costs ~18 ms of CPU, the per-request conditioning and embedding calls
// cost ~3 ms of CPU per image; native calls per cohort of 8 went from 2,606
// to 1,010 (generate() at batch 8: 1,971).
import { TesseraError } from '../errors.js';
import { checkGenerateOptions, decodeEach, keepSource, sampleScale, type GenerateOptions, type Generated, type KeptTokens } from '../models/var/generate.js';
import { disposeConditioning, VarCache, type Conditioning, type VarTransformer } from '../models/var/transformer.js';
import type { Vqvae } from '../models/var/vqvae.js';
import { sample } from '../ops/sampling.js';
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

/** Bytes a conditioning holds. */
function conditioningBytes(c: Conditioning): number {
  let n = c.classRows.byteLength + c.headScale.byteLength + c.headShift.byteLength;
  for (const b of c.blocks) for (const t of Object.values(b)) n += t.byteLength;
  return n;
}

/**
 * One model's conditionings by class list (a request's classes, in order),
 * least recently used out first beyond maxBytes. Each entry is what
 * model.condition(list) returns, computed alone as generate() computes it;
 * cohorts only read entries (stacking copies them), so an evicted entry is
 * disposed at once. maxBytes 0 keeps nothing (every call computes afresh).
 */
export class ConditioningCache {
  #entries = new Map<string, { c: Conditioning; bytes: number }>();
  #bytes = 0;
  /** Lists found in the cache / computed, since creation. */
  hits = 0;
  misses = 0;

  constructor(readonly model: VarTransformer, readonly maxBytes = 64 * 1024 * 1024) {
    if (!(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) throw new TesseraError('ERR_INVALID_ARGUMENT', `maxBytes must be an integer >= 0, got ${maxBytes}`);
  }

  get size(): number { return this.#entries.size; }
  get bytes(): number { return this.#bytes; }

  /**
   * Calls `fn` (synchronously, so no entry it gets is evicted while it
   * runs) with the conditioning of each list, computing the missing ones.
   */
  async use<T>(lists: readonly (readonly number[])[], fn: (conds: Conditioning[]) => T): Promise<T> {
    const keys = lists.map((l) => l.join(','));
    const fresh = new Map<string, Conditioning>();
    try {
      // Entries present now may be evicted by a concurrent call while this one awaits: look again after each await.
      for (;;) {
        const i = keys.findIndex((k) => !fresh.has(k) && !this.#entries.has(k));
        if (i < 0) break;
        fresh.set(keys[i]!, await this.model.condition(lists[i]!));
        this.misses++;
      }
      const conds = keys.map((k) => {
        const f = fresh.get(k);
        if (f) return f;
        const e = this.#entries.get(k)!;
        this.#entries.delete(k);  // most recently used last
        this.#entries.set(k, e);
        this.hits++;
        return e.c;
      });
      const out = fn(conds);
      for (const [k, c] of fresh) {
        const bytes = conditioningBytes(c);
        if (this.#entries.has(k) || bytes > this.maxBytes) continue;  // disposed below
        this.#entries.set(k, { c, bytes });
        this.#bytes += bytes;
        fresh.delete(k);
      }
      for (const [k, e] of this.#entries) {
        if (this.#bytes <= this.maxBytes) break;
        this.#entries.delete(k);
        this.#bytes -= e.bytes;
        disposeConditioning(e.c);
      }
      return out;
    } finally {
      for (const c of fresh.values()) disposeConditioning(c);
    }
  }

  /** Frees every entry. */
  clear(): void {
    for (const e of this.#entries.values()) disposeConditioning(e.c);
    this.#entries.clear();
    this.#bytes = 0;
  }
}

/** Bytes of a KV cache. */
const kvBytes = (c: VarCache): number => c.k.reduce((a, t) => a + t.byteLength, 0) * 2;

/**
 * KV caches kept between cohorts: at most maxCaches (default 1), most
 * recently returned first, and maxBytes in all (default 64 MiB). A cohort
 * takes one of its row count, resets its length and gives it back.
 * Attention reads only the first `length` tokens of a cache and every step
 * writes before it reads, so old contents never reach a result. On the
 * embedded tiny VAR a cohort of 8 allocated 4 MiB of cache each time, the
 * largest share of the native memory whose churn drove V8's full GCs; the
 * count bound keeps the sizes in use (full cohorts) rather than one of every
 * size a partial cohort ever had (which held ~20 MiB more for nothing). A
 * large model's cache (1.4 GB for 8 images of VAR d16) exceeds the byte
 * bound and is allocated per cohort as before.
 */
export class KvCachePool {
  #free: VarCache[] = [];
  #bytes = 0;

  constructor(readonly model: VarTransformer, readonly maxBytes = 64 * 1024 * 1024, readonly maxCaches = 1) {
    for (const [name, v] of [['maxBytes', maxBytes], ['maxCaches', maxCaches]] as const)
      if (!(Number.isSafeInteger(v) && v >= 0)) throw new TesseraError('ERR_INVALID_ARGUMENT', `${name} must be an integer >= 0, got ${v}`);
  }

  get bytes(): number { return this.#bytes; }
  get size(): number { return this.#free.length; }

  take(rows: number): VarCache {
    let i = this.#free.length - 1;
    while (i >= 0 && this.#free[i]!.rows !== rows) i--;
    if (i < 0) return new VarCache(this.model.config, rows);
    const [c] = this.#free.splice(i, 1);
    this.#bytes -= kvBytes(c!);
    c!.length = 0;
    return c!;
  }

  give(c: VarCache): void {
    this.#free.push(c);
    this.#bytes += kvBytes(c);
    while (this.#free.length > this.maxCaches || this.#bytes > this.maxBytes) {
      const old = this.#free.shift()!;
      this.#bytes -= kvBytes(old);
      old.dispose();
    }
  }

  clear(): void {
    for (const c of this.#free) c.dispose();
    this.#free = [];
    this.#bytes = 0;
  }
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

/** The decoder's widest activation of one image is kept under this many bytes per call (decodeGroup). */
const DECODE_BYTES = 16 * 1024 * 1024;

/**
 * Images the VQVAE decodes per call: as many as keep the widest feature map
 * (channels × side² of a decoder level) of the call under DECODE_BYTES, at
 * least 1. The embedded tiny VAR (32×32) decodes a whole cohort at once; a
 * 256² model one image at a time, as generate() does to bound its memory.
 */
export function decodeGroup(vae: Vqvae, latentSide: number): number {
  const { channels, downsample } = vae.config;
  const side = latentSide * downsample;
  const widest = Math.max(...channels.map((c, i) => c * Math.ceil(side / 2 ** i) ** 2 * 4));
  return Math.max(1, Math.floor(DECODE_BYTES / widest));
}

/**
 * decodeEach(vae, fHat) — (decode(f_hat) + 1) / 2 — decoding `group` images
 * per call: the decoder is per image (convolutions, group norms and
 * attention never mix images), so the bytes equal decodeEach's, which the
 * server tests check against generate() run alone; fewer, larger calls cost
 * less CPU per image.
 */
export async function decodeGroups(vae: Vqvae, fHat: Tensor, group: number): Promise<Tensor> {
  if (group <= 1) return decodeEach(vae, fHat);
  const [B, C, h, w] = fHat.shape as [number, number, number, number];
  const src = fHat.data as Float32Array, per = C * h * w;
  let out: Tensor | undefined;
  try {
    for (let b0 = 0; b0 < B; b0 += group) {
      const g = Math.min(group, B - b0);
      const img = await vae.decode(Tensor.from(src.subarray(b0 * per, (b0 + g) * per), [g, C, h, w]));
      const [, , H, W] = img.shape as [number, number, number, number];
      out ??= Tensor.empty([B, 3, H, W]);
      const d = img.data as Float32Array, o = out.data as Float32Array, at = b0 * 3 * H * W;
      for (let i = 0; i < d.length; i++) o[at + i] = (d[i]! + 1) / 2;
      img.dispose();
    }
    return out!;
  } catch (error) {
    out?.dispose();
    throw error;
  }
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
export interface CohortOptions {
  /** Conditionings kept across cohorts (this model's); default none (each cohort computes its own). */
  conditioning?: ConditioningCache;
  /** KV caches reused across cohorts (this model's); default none (each cohort allocates its own). */
  kv?: KvCachePool;
}

export async function runVarCohort(vae: Vqvae, model: VarTransformer, works: readonly VarWork[],
  onStep?: (images: number, seconds: number) => void, options: CohortOptions = {}): Promise<Settled[]> {
  const conditioning = options.conditioning ?? new ConditioningCache(model, 0);
  const kv = options.kv ?? new KvCachePool(model, 0);
  if (conditioning.model !== model || kv.model !== model) throw new TesseraError('ERR_INVALID_ARGUMENT', 'the conditioning cache or KV cache pool belongs to another model');
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
    cond = await conditioning.use(active.map((m) => m.o.classes), (parts) => stackConditioning(parts, C));
    let total = active.reduce((a, m) => a + m.B, 0);
    cache = kv.take(2 * total);
    fHat = Tensor.zeros([total, Cvae, last, last]);
    x = model.startTokens(cond);
    for (let si = 0; si < SN; si++) {
      const pn = schedule[si]!, n = pn * pn;
      const t0 = performance.now();
      const logits = await model.forwardScale(x, cond, cache);
      onStep?.(total, (performance.now() - t0) / 1000);
      x.dispose();
      x = undefined;
      // Every image's tokens, image after image, then one embedding of them all.
      const ids = new Int32Array(total * n), all = logits.data as Float32Array, nv = n * V;
      const soft: { off: number; h: Tensor }[] = [];
      let hAll: Tensor | undefined;
      const sampleMember = async (m: Member, off: number): Promise<void> => {
        if (m.o.moreSmooth) {
          // more_smooth mixes the codebook: generate()'s own sampleScale over the member's rows.
          const ml = memberLogits(all, off, m.B, total, nv);
          try {
            soft.push({ off, h: await sampleScale(vae, ml, m.o, { si, SN, B: m.B, n, V, ids: ids.subarray(off * n, (off + m.B) * n) }) });
          } finally {
            ml.dispose();
          }
          return;
        }
        // sampleScale's draw for image b, on the stacked rows in place (no copy): the same call with the same arguments.
        const cfgScale = 1 + m.o.cfg * (si / (SN - 1));
        for (let b = 0; b < m.B; b++) {
          const r = off + b;
          await sample({
            logits: Tensor.from(all.subarray(r * nv, (r + 1) * nv), [n, V]), uncond: Tensor.from(all.subarray((total + r) * nv, (total + r + 1) * nv), [n, V]),
            cfgScale, temperature: m.o.temperature, topK: m.o.topK, topP: m.o.topP, seed: m.o.seed + b, step: si, rowOffset: 0,
            tokens: Tensor.from(ids.subarray(r * n, (r + 1) * n), [n]),
          });
        }
      };
      try {
        let off = 0;
        for (const m of active) {
          // A member whose own settings fail (sampling refuses them) leaves at this scale's end; the others go on.
          try {
            if (!results[m.slot]) await sampleMember(m, off);
          } catch (error) {
            drop(m, error);
            ids.fill(0, off * n, (off + m.B) * n);
          }
          off += m.B;
        }
        logits.dispose();
        hAll = await vae.embed(ids, total, pn);
        const h = hAll.data as Float32Array;
        for (const s of soft) h.set(s.h.data as Float32Array, s.off * Cvae * n);
        off = 0;
        for (const m of active) {
          const mine = ids.subarray(off * n, (off + m.B) * n);
          if (m.work.kept)
            keepSource(vae, Tensor.from(h.subarray(off * Cvae * n, (off + m.B) * Cvae * n), [m.B, Cvae, pn, pn]), mine, m.work.kept.ids[si]!, m.work.kept.keep[si]!, Cvae, n);
          for (let b = 0; b < m.B; b++) m.tokens[b]!.push(Array.from(mine.subarray(b * n, (b + 1) * n)));
          off += m.B;
        }
        (await vae.addScale(si, schedule, fHat, hAll)).dispose();
      } finally {
        hAll?.dispose();
        for (const s of soft) s.h.dispose();
        logits.dispose();
      }
      for (const m of active) {
        if (!m.work.onScale || results[m.slot]) continue;
        const mine = selectRows(fHat, imageRows(active, [m]));
        try {
          await m.work.onScale(si, SN, mine);
        } catch (error) {
          drop(m, error);  // its own progress callback failed: that request alone ends
        } finally {
          mine.dispose();
        }
      }
      const staying = active.filter((m) => !results[m.slot] && !m.work.signal.aborted);
      if (staying.length < active.length) {
        for (const m of active) if (!staying.includes(m) && !results[m.slot]) drop(m, m.work.signal.reason);
        if (staying.length === 0) return results;
        const rows = keptRows(active, staying);
        const c2 = compactConditioning(cond, rows, C), k2 = compactCache(model, cache, rows), f2 = selectRows(fHat, imageRows(active, staying));
        disposeConditioning(cond);
        kv.give(cache);
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
    const live = active.filter((m) => (m.work.signal.aborted ? (drop(m, m.work.signal.reason), false) : true));
    if (live.length === 0) return results;
    const mine = live.length === active.length ? fHat : selectRows(fHat, imageRows(active, live));
    let images: Tensor | undefined;
    try {
      images = await decodeGroups(vae, mine, decodeGroup(vae, last));
    } finally {
      if (mine !== fHat) mine.dispose();
    }
    try {
      for (const m of live) results[m.slot] = { ok: true, value: { images: selectRows(images, imageRows(live, [m])), tokens: m.tokens } };
    } finally {
      images.dispose();
    }
    return results;
  } catch (error) {
    // A failure of the shared step fails every member still running.
    for (const m of active) if (!results[m.slot]) drop(m, error);
    return results;
  } finally {
    x?.dispose();
    if (cache) kv.give(cache);
    fHat?.dispose();
    if (cond) disposeConditioning(cond);
  }
}
