// Random-weight OctGPT checkpoints in the official state-dict layout
// (octgpt_config.ts lists the keys), so generation runs end to end without
// the released files. Initialisation follows the original's _init_weights:
// Linear and Embedding weights normal(0, 0.02) (here uniform with that std),
// biases 0, norm gains 1; RoPE frequencies as init_3d_freqs (magnitudes
// 100^(-6j/d) along a random direction per head); the AbsPosEmb table as its
// sinusoid initialisation. `perturb` adds small random biases and gains
// (fixtures: every parameter then matters).
import { randomUniform } from '../../bench/timing.js';
import { fail } from '../../errors.js';
import type { TensorToWrite } from '../../io/safetensors.js';
import { octgptRopeFreqs } from './attention.js';

export interface RandomOctGptShape {
  width: number;
  heads: number;
  /** Blocks per stack (encoder and decoder each). */
  blocks: number;
  codeBits: number;
  classes?: number;
  /** Token depths (depth_emb rows); the released models have 4 (depths 3..6). */
  depths?: number;
  norm?: 'layer' | 'rms';
  posEmb?: 'sin' | 'abs';
  mlpRatio?: number;
  perturb?: boolean;
}

/** The released ShapeNet model's shape (width 768, 8 heads, 12 + 12 blocks, 32-bit codes). */
export const OCTGPT_SHAPENET: RandomOctGptShape = { width: 768, heads: 8, blocks: 12, codeBits: 32, classes: 1, depths: 4, norm: 'layer', posEmb: 'sin' };

export function randomOctGptTensors(s: RandomOctGptShape, seed = 1): TensorToWrite[] {
  const C = s.width, H = s.heads;
  if (!Number.isInteger(C) || !Number.isInteger(H) || H < 1 || C % H !== 0 || (C / H) % 6 !== 0)
    fail('ERR_INVALID_ARGUMENT', `width ${C} must split into ${H} heads of a multiple of 6`);
  const hidden = Math.round(C * (s.mlpRatio ?? 4)), depths = s.depths ?? 4, bits = s.codeBits;
  const out: TensorToWrite[] = [];
  let k = seed;
  const add = (name: string, shape: number[], std: number, mean = 0): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomUniform(n, k++ * 7919);
    const a = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) data[i] = mean + data[i]! * a;
    out.push({ name, dtype: 'float32', shape, data });
  };
  const bias = (name: string, n: number) => add(name, [n], s.perturb ? 0.02 : 0);
  const gain = (name: string) => add(name, [C], s.perturb ? 0.1 : 0, 1);
  add('split_emb.weight', [2, C], 0.02);
  add('class_emb.weight', [s.classes ?? 1, C], 0.02);
  add('vq_proj.weight', [C, bits], 0.02); bias('vq_proj.bias', C);
  for (const stack of ['encoder', 'decoder']) {
    for (let i = 0; i < s.blocks; i++) {
      const p = `${stack}.layers.blocks.${i}`;
      for (const nrm of ['norm1', 'norm2']) { gain(`${p}.${nrm}.weight`); if ((s.norm ?? 'layer') === 'layer') bias(`${p}.${nrm}.bias`, C); }
      add(`${p}.attention.qkv.weight`, [3 * C, C], 0.02); bias(`${p}.attention.qkv.bias`, 3 * C);
      add(`${p}.attention.proj.weight`, [C, C], 0.02); bias(`${p}.attention.proj.bias`, C);
      out.push({ name: `${p}.attention.rope.freqs`, dtype: 'float32', shape: [3, C / 2], data: ropeParam(C / H, H, seed * 1000 + i + (stack === 'decoder' ? 500 : 0)) });
      add(`${p}.mlp.fc1.weight`, [hidden, C], 0.02); bias(`${p}.mlp.fc1.bias`, hidden);
      add(`${p}.mlp.fc2.weight`, [C, hidden], 0.02); bias(`${p}.mlp.fc2.bias`, C);
      add(`${p}.pos_emb.depth_emb.weight`, [depths, C], 0.02);
      if (s.posEmb === 'abs') out.push({ name: `${p}.pos_emb.absolute_emb`, dtype: 'float32', shape: [128, C], data: absoluteTable(C) });
    }
    gain(`${stack}_ln.weight`);
    if ((s.norm ?? 'layer') === 'layer') bias(`${stack}_ln.bias`, C);
  }
  add('split_head.weight', [2, C], 0.02); bias('split_head.bias', 2);
  add('vq_head.weight', [2 * bits, C], 0.02); bias('vq_head.bias', 2 * bits);
  return out;
}

/** init_3d_freqs as the [3, H·3F] parameter (rows x, y, z). */
function ropeParam(headDim: number, heads: number, seed: number): Float32Array {
  const u = randomUniform(2 * heads, seed);
  const dirs = Array.from({ length: heads }, (_, h) => ({ phi: (u[2 * h]! + 1) * Math.PI, theta: (u[2 * h + 1]! + 1) * Math.PI / 4 }));
  const t = octgptRopeFreqs(headDim, dirs).data as Float32Array;  // [H, 3F, 3]
  const half = t.length / 3 / heads;
  const out = new Float32Array(t.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (let a = 0; a < 3; a++) out[a * heads * half + h * half + j] = t[(h * half + j) * 3 + a]!;
  return out;
}

/** AbsPosEmb's initial table [128, C]: column 3j + a = sinusoid j of axis a at position p (sin, cos interleaved). */
function absoluteTable(C: number): Float32Array {
  const ch = Math.ceil(C / 6) * 2, out = new Float32Array(128 * C);
  for (let p = 0; p < 128; p++)
    for (let j = 0; j < ch; j++) {
      const f = 1 / 100 ** ((2 * Math.floor(j / 2)) / ch);
      const v = j % 2 === 0 ? Math.sin(p * f) : Math.cos(p * f);
      for (let a = 0; a < 3; a++) if (3 * j + a < C) out[p * C + 3 * j + a] = v;
    }
  return out;
}
