// Random-weight LlamaGen GPT checkpoints in the official key layout (spec
// section 1), for `tessera bench llamagen`: GPT-B-shaped models without
// downloading the real files. Weights are uniform with std 1/sqrt(fan_in)
// (norm gains near 1), so activations keep a realistic scale.
import { randomUniform } from '../../bench/timing.js';
import type { TensorToWrite } from '../../io/safetensors.js';

export interface RandomGptShape {
  layers: number;
  dim: number;
  vocabulary: number;
  classes: number;
  /** SwiGLU width; default int(8·dim/3) rounded up to a multiple of 256 (the official rule). */
  ffn?: number;
  /** Add NAR's vertical head: one more block layers.{layers}, medusa_norm and medusa_output (spec section 5). */
  verticalHead?: boolean;
}

/** GPT-B (111M parameters): 12 layers, dim 768 (12 heads of 64), vocabulary 16384, 1000 classes. */
export const GPT_B: RandomGptShape = { layers: 12, dim: 768, vocabulary: 16384, classes: 1000 };

export function officialFfn(dim: number): number {
  return Math.ceil(Math.floor((8 * dim) / 3) / 256) * 256;
}

export function randomGptTensors(s: RandomGptShape, seed = 1): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  let k = seed;
  const add = (name: string, shape: number[], std: number, mean = 0): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomUniform(n, k++);
    const a = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) data[i] = mean + data[i]! * a;
    out.push({ name, dtype: 'float32', shape, data });
  };
  const d = s.dim, f = s.ffn ?? officialFfn(d);
  add('tok_embeddings.weight', [s.vocabulary, d], 0.02);
  add('cls_embedding.embedding_table.weight', [s.classes + 1, d], 0.02);
  for (let i = 0; i < s.layers + (s.verticalHead ? 1 : 0); i++) {
    const p = `layers.${i}`;
    add(`${p}.attention.wqkv.weight`, [3 * d, d], 1 / Math.sqrt(d));
    add(`${p}.attention.wo.weight`, [d, d], 1 / Math.sqrt(d));
    add(`${p}.feed_forward.w1.weight`, [f, d], 1 / Math.sqrt(d));
    add(`${p}.feed_forward.w3.weight`, [f, d], 1 / Math.sqrt(d));
    add(`${p}.feed_forward.w2.weight`, [d, f], 1 / Math.sqrt(f));
    add(`${p}.attention_norm.weight`, [d], 0.05, 1);
    add(`${p}.ffn_norm.weight`, [d], 0.05, 1);
  }
  add('norm.weight', [d], 0.05, 1);
  add('output.weight', [s.vocabulary, d], 1 / Math.sqrt(d));
  if (s.verticalHead) {
    add('medusa_norm.weight', [d], 0.05, 1);
    add('medusa_output.weight', [s.vocabulary, d], 1 / Math.sqrt(d));
  }
  return out;
}
