// OctGPT's token-parallel generation (spec octree.md §4 "Token-parallel
// generation"; octree-nn/octgpt models/octgpt.py generate), one sample:
//
// For each depth d = fullDepth .. depthStop: the n_d nodes of depth d start
// masked and are revealed in a random order (a Philox permutation of the
// seed) over T_d steps. After step i, m_{i+1} = floor(n_d·cos(π/2·(i+1)/T_d))
// tokens stay masked (the product in float32, as the released code computes
// it), clamped to [1, m_i - 1]; the last step reveals the rest. Step i draws
// the newly revealed tokens from the model's logits at temperature
// t0_d·((T_d - i)/T_d) through the shared sampler (lib/ops/sampling: Philox
// keyed by the seed, counter (row, step)). After 70% of the steps
// (i > 0.7·T_d) some tokens are remasked, i.e. drawn again in this step.
// Depths below depthStop carry split flags (then octree split + grow);
// depthStop carries one BSQ code of codeBits bits per node.
//
// Remasking, remaskRule 'official' (the default: the released generate() and
// get_remask, checked step by step against them by
// test/official-octgpt-generate.test.ts):
//   - "wrong" per token: split: argmax of the new logits ≠ its value; code:
//     the number of bits whose argmax ≠ its bit. Tokens not drawn yet (value
//     -1) are wrong (every bit). Tokens still masked after this step (at the
//     last step: the first token of the order) count 0.
//   - k = floor(#wrong tokens · 0.2 (split) / 0.1 (code)), in float32.
//   - The k highest scores are picked: split: -logit of its value (value -1
//     reads the logit of 1, Python's index -1), over EVERY node, right or
//     wrong; code: its wrong-bit count. Ties: lower node index first (the
//     released code's torch.topk leaves them unordered).
//   - Picked tokens still masked after this step are dropped; the others are
//     drawn in this step (those revealed now are drawn anyway).
// remaskRule 'spec' (spec octree.md §4 read literally): among tokens drawn
// before this step that the new logits disagree with, 20% of split tokens,
// the lowest logit of their value first, and 10% of codes, the most wrong
// bits first (ties: lower node index first).
import { fail } from '../../errors.js';
import { philoxUniform, sample } from '../../ops/sampling.js';
import { Tensor } from '../../tensor.js';
import { Octree } from '../../octree/octree.js';
import type { OctGpt } from './octgpt.js';

/** Released per-depth settings (configs/ShapeNet/shapenet_uncond.yaml). */
export const OCTGPT_STEPS = [64, 128, 128, 256];
export const OCTGPT_TEMPERATURES = [1.0, 1.2, 0.5, 0.5];

/** Masked counts m_0 = n, m_1 .. m_T (m_T = 0) of the cosine schedule. */
export function maskSchedule(n: number, steps: number): number[] {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(steps) || steps < 1)
    fail('ERR_INVALID_ARGUMENT', `the schedule needs n >= 1 tokens and steps >= 1, got ${n}, ${steps}`);
  const m = [n];
  for (let i = 0; i < steps; i++) {
    if (i === steps - 1) { m.push(0); break; }
    // numpy's float64 cos times a torch int64 count: a float32 product.
    const len = Math.floor(Math.fround(Math.fround(n) * Math.fround(Math.cos((Math.PI / 2) * (i + 1) / steps))));
    m.push(Math.max(1, Math.min(m[i]! - 1, len)));
  }
  return m;
}

/** A Philox permutation of 0..n-1 (Fisher-Yates, draws keyed by (seed, i, stream)). */
export function philoxPermutation(n: number, seed: number | bigint, stream: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(philoxUniform(seed, i, stream) * (i + 1));
    const t = p[i]!; p[i] = p[j]!; p[j] = t;
  }
  return p;
}

export interface StepInfo {
  depth: number;
  step: number;
  steps: number;
  kind: 'split' | 'code';
  /** Tokens still masked after this step. */
  masked: number;
  /** Nodes revealed for the first time in this step. */
  revealed: Int32Array;
  /** Previously drawn nodes drawn again (remasking). */
  remasked: Int32Array;
  /** Tokens counted for remasking: 'official', wrong ones not masked after the step (new ones included); 'spec', wrong ones drawn earlier. */
  disagreeing: number;
  /** Drawn values of revealed ∪ remasked nodes (ascending node index): flags, or bits [n·codeBits]. */
  drawn: Int32Array;
  nodes: Int32Array;
  /** Their logits: [nodes, 2] or [nodes, 2·codeBits]. */
  logits: Float32Array;
  temperature: number;
}

export interface GenerateOptions {
  seed?: number | bigint;
  /** Steps per depth (default 64/128/128/256 for the four depths; a number applies to all). */
  steps?: number | readonly number[];
  /** Start temperature per depth (default 1.0/1.2/0.5/0.5). */
  temperatures?: number | readonly number[];
  /** 0 = off; 1 = greedy. */
  topK?: number;
  /** Fraction of the steps after which remasking starts (0.7). */
  remaskStage?: number;
  remaskSplit?: number;
  remaskCode?: number;
  /** 'official' (released generate(), default) or 'spec' (see the header). */
  remaskRule?: 'official' | 'spec';
  label?: number;
  onStep?: (info: StepInfo) => void;
}

export interface GenerateResult {
  /** Depths 0..depthStop; depthStop is all nodes grown from the last split flags. */
  octree: Octree;
  /** [n(depthStop), codeBits] leaf code bits 0/1. */
  codes: Uint8Array;
  codeBits: number;
  /** Per token depth: number of nodes and of split nodes. */
  nnum: number[];
  forwardPasses: number;
}

function perDepth(v: number | readonly number[] | undefined, dflt: readonly number[], depths: number, name: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < depths; i++) {
    const x = v === undefined ? dflt[Math.min(i, dflt.length - 1)]! : typeof v === 'number' ? v : v[i];
    if (x === undefined || !Number.isFinite(x)) fail('ERR_INVALID_ARGUMENT', `${name} needs one value per depth (${depths}), got ${JSON.stringify(v)}`);
    out.push(x);
  }
  return out;
}

/** The dense octree of depth = fullDepth: every cell of that depth exists (ocnn init_octree). */
export async function denseOctree(depth: number): Promise<Octree> {
  const side = 2 ** depth, pts = new Float32Array(side ** 3 * 3);
  let i = 0;
  for (let x = 0; x < side; x++)
    for (let y = 0; y < side; y++)
      for (let z = 0; z < side; z++) { pts[i++] = (2 * x + 1) / side - 1; pts[i++] = (2 * y + 1) / side - 1; pts[i++] = (2 * z + 1) / side - 1; }
  return (await Octree.build({ points: pts, depth, fullDepth: depth })).octree;
}

export async function generateOctGpt(model: OctGpt, opts: GenerateOptions = {}): Promise<GenerateResult> {
  const cfg = model.config, C = cfg.width, bits = cfg.codeBits;
  const depths = cfg.depths;
  const steps = perDepth(opts.steps, OCTGPT_STEPS, depths, 'steps').map((s) => {
    if (!Number.isInteger(s) || s < 1) fail('ERR_INVALID_ARGUMENT', `steps must be positive integers, got ${s}`);
    return s;
  });
  const temps = perDepth(opts.temperatures, OCTGPT_TEMPERATURES, depths, 'temperatures');
  const seed = opts.seed ?? 0;
  const topK = opts.topK ?? 0;
  const remaskStage = opts.remaskStage ?? 0.7, remaskSplit = opts.remaskSplit ?? 0.2, remaskCode = opts.remaskCode ?? 0.1;
  const remaskRule = opts.remaskRule ?? 'official';
  if (remaskRule !== 'official' && remaskRule !== 'spec') fail('ERR_INVALID_ARGUMENT', `remaskRule must be 'official' or 'spec', got ${JSON.stringify(remaskRule)}`);
  const label = opts.label ?? 0;
  const cond = model.condition(label);

  let octree = await denseOctree(cfg.fullDepth);
  let prev = new Float32Array(0);  // final embeddings of the finished depths
  let codes = new Uint8Array(0);
  const nnum: number[] = [];
  let globalStep = 0, passes = 0;

  for (let d = cfg.fullDepth; d <= cfg.depthStop; d++) {
    const isCode = d === cfg.depthStop;
    const n = octree.level(d).nnum;
    nnum.push(n);
    const T = steps[d - cfg.fullDepth]!, t0 = temps[d - cfg.fullDepth]!;
    const sched = maskSchedule(n, T);
    const order = philoxPermutation(n, seed, 0x4f43540000 + d);  // a stream apart from the sampler's steps
    const rank = new Int32Array(n);
    order.forEach((node, r) => { rank[node] = r; });
    const width = isCode ? bits : 1;
    const value = new Int32Array(n * width).fill(-1);
    const cur = new Float32Array(n * C);
    for (let i = 0; i < n; i++) cur.set(cond, i * C);
    const prevRows = prev.length / C;

    for (let i = 0; i < T; i++) {
      const masked = sched[i]!, next = sched[i + 1]!;
      // Forward over [finished depths | this depth], masking this depth's first `masked` nodes of the order.
      const mask = new Uint8Array(prevRows + n);
      for (let r = 0; r < masked; r++) mask[prevRows + order[r]!] = 1;
      const all = new Float32Array((prevRows + n) * C);
      all.set(prev);
      all.set(cur, prevRows * C);
      const h = await model.forward({ octree, lo: cfg.fullDepth, hi: d, embeddings: Tensor.from(all, [prevRows + n, C]), mask, label });
      passes++;
      const hd = (h.data as Float32Array).subarray(prevRows * C);
      const logitsT = isCode ? await model.codeLogits(Tensor.from(hd, [n, C])) : await model.splitLogits(Tensor.from(hd, [n, C]));
      const logits = logitsT.data as Float32Array;
      const L = 2 * width;

      // Revealed now: order ranks [next, masked).
      const isNew = new Uint8Array(n);
      for (let r = next; r < masked; r++) isNew[order[r]!] = 1;
      // Remasking among tokens drawn before this step.
      const remask: number[] = [];
      let disagreeing = 0;
      if (i > T * remaskStage && remaskRule === 'official') {
        const keep = i === T - 1 ? 1 : next;  // the released loop keeps the first token of the order masked after its last step
        const score = new Float64Array(n);
        for (let node = 0; node < n; node++) {
          let wrong = 0;
          for (let g = 0; g < width; g++) {
            const l0 = logits[node * L + 2 * g]!, l1 = logits[node * L + 2 * g + 1]!;
            if ((l1 > l0 ? 1 : 0) !== value[node * width + g]) wrong++;
          }
          const open = rank[node]! >= keep;
          if (open && wrong > 0) disagreeing++;
          score[node] = isCode ? (open ? wrong : 0) : -logits[node * L + (value[node]! < 0 ? 1 : value[node]!)]!;
        }
        const count = Math.floor(Math.fround(Math.fround(disagreeing) * Math.fround(isCode ? remaskCode : remaskSplit)));
        if (count > 0) {
          const byScore = Array.from({ length: n }, (_, node) => node).sort((a, b) => score[b]! - score[a]! || a - b);
          for (let c = 0; c < count; c++) {
            const node = byScore[c]!;
            if (rank[node]! >= keep && !isNew[node]) remask.push(node);
          }
          remask.sort((a, b) => a - b);
        }
      } else if (i > T * remaskStage) {
        const cand: { node: number; score: number }[] = [];
        for (let node = 0; node < n; node++) {
          if (rank[node]! < masked) continue;  // still masked before this step, or new now
          let wrong = 0;
          for (let g = 0; g < width; g++) {
            const l0 = logits[node * L + 2 * g]!, l1 = logits[node * L + 2 * g + 1]!;
            if ((l1 > l0 ? 1 : 0) !== value[node * width + g]) wrong++;
          }
          if (wrong === 0) continue;
          cand.push({ node, score: isCode ? wrong : -logits[node * L + value[node]!]! });
        }
        disagreeing = cand.length;
        const count = Math.floor(cand.length * (isCode ? remaskCode : remaskSplit));
        cand.sort((a, b) => b.score - a.score || a.node - b.node);
        for (let c = 0; c < count; c++) remask.push(cand[c]!.node);
      }
      const draw = new Uint8Array(n);
      for (let node = 0; node < n; node++) draw[node] = isNew[node]!;
      for (const node of remask) draw[node] = 1;
      const nodes: number[] = [];
      for (let node = 0; node < n; node++) if (draw[node]) nodes.push(node);
      const p = nodes.length;
      const temperature = t0 * ((T - i) / T);
      const rows = new Float32Array(p * L);
      nodes.forEach((node, j) => rows.set(logits.subarray(node * L, (node + 1) * L), j * L));
      let drawn: Int32Array = new Int32Array(0);
      if (p > 0) {
        const tok = await sample({ logits: Tensor.from(rows, [p * width, 2]), temperature, topK, seed, step: globalStep });
        drawn = tok.data as Int32Array;
        if (isCode) {
          const b = new Uint8Array(p * bits);
          for (let j = 0; j < p * bits; j++) b[j] = drawn[j]!;
          const e = await model.codeEmbeddings(b, p);
          const ed = e.data as Float32Array;
          nodes.forEach((node, j) => {
            for (let g = 0; g < bits; g++) value[node * bits + g] = drawn[j * bits + g]!;
            cur.set(ed.subarray(j * C, (j + 1) * C), node * C);
          });
        } else {
          nodes.forEach((node, j) => { value[node] = drawn[j]!; cur.set(model.splitEmbedding(drawn[j]!), node * C); });
        }
      }
      opts.onStep?.({
        depth: d, step: i, steps: T, kind: isCode ? 'code' : 'split', masked: next,
        revealed: Int32Array.from(nodes.filter((node) => isNew[node])), remasked: Int32Array.from(remask), disagreeing,
        drawn: Int32Array.from(drawn), nodes: Int32Array.from(nodes), logits: rows, temperature,
      });
      globalStep++;
    }
    for (let node = 0; node < n * width; node++) if (value[node]! < 0) fail('ERR_INTERNAL', `depth ${d}: node ${node} was never drawn`);
    const grown = new Float32Array(prev.length + cur.length);
    grown.set(prev);
    grown.set(cur, prev.length);
    prev = grown;
    if (isCode) {
      codes = Uint8Array.from(value);
    } else {
      octree = await octree.split(d, value);
    }
  }
  return { octree, codes, codeBits: bits, nnum, forwardPasses: passes };
}
