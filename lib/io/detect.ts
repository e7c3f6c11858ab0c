// Names the model family of a checkpoint from its keys, and reads the
// architecture facts that its tensor shapes decide (never from a size table).
import type { StoredTensor } from './stored-tensor.js';

export type ModelFamily = 'var' | 'var-vqvae' | 'llamagen-gpt' | 'llamagen-vq' | 'unknown';

export interface Detected {
  family: ModelFamily;
  description: string;
  /** Facts read from tensor shapes (depth, width, vocabulary, ...). */
  facts: Record<string, number | string | boolean>;
}

function countIndexed(names: Iterable<string>, re: RegExp): number {
  let max = -1;
  for (const n of names) {
    const m = re.exec(n);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

export function detectFamily(tensors: Map<string, StoredTensor>): Detected {
  const has = (k: string): boolean => tensors.has(k);
  const shape = (k: string): readonly number[] => tensors.get(k)?.shape ?? [];
  const names = [...tensors.keys()];
  if (has('class_emb.weight') && has('pos_1LC') && (has('blocks.0.attn.mat_qkv.weight') || has('head.weight'))) {
    const C = shape('class_emb.weight')[1] ?? 0;
    const depth = countIndexed(names, /^blocks\.(\d+)\./);
    const mul = shape('blocks.0.attn.scale_mul_1H11');
    return {
      family: 'var',
      description: 'VAR transformer (next-scale prediction)',
      facts: {
        depth, width: C, heads: mul[1] ?? C / 64, classes: (shape('class_emb.weight')[0] ?? 1) - 1,
        vocabulary: shape('head.weight')[0] ?? 0, tokens: shape('pos_1LC')[1] ?? 0,
        latentChannels: shape('word_embed.weight')[1] ?? 0, sharedAdaLN: has('shared_ada_lin.1.weight'),
      },
    };
  }
  // VAR's VQVAE: its encoder levels are encoder.down.i (LlamaGen's are
  // encoder.conv_blocks.i). The Phi convs are not a reliable mark: a
  // quant_resi = 0 tokenizer has none.
  if (has('quantize.embedding.weight') && names.some((n) => n.startsWith('encoder.down.'))) {
    const [V, Cvae] = shape('quantize.embedding.weight');
    return {
      family: 'var-vqvae',
      description: "VAR's multi-scale VQVAE",
      facts: {
        vocabulary: V ?? 0, latentChannels: Cvae ?? 0, baseChannels: shape('encoder.conv_in.weight')[0] ?? 0,
        levels: countIndexed(names, /^encoder\.down\.(\d+)\./),
        // PhiPartiallyShared (qresi_ls.k), PhiShared (qresi) or PhiNonShared (k); 0 = identity Phi.
        phiConvs: countIndexed(names, /^quantize\.quant_resi\.qresi_ls\.(\d+)\./) || (has('quantize.quant_resi.qresi.weight') ? 1 : 0)
          || countIndexed(names, /^quantize\.quant_resi\.(\d+)\./),
      },
    };
  }
  // A text-conditional (t2i) GPT has cls_embedding.cap_proj (caption MLP) instead of the class
  // table: the same family, so the LlamaGen loader names why it cannot run it.
  const t2i = has('cls_embedding.cap_proj.fc1.weight');
  if (has('tok_embeddings.weight') && (has('cls_embedding.embedding_table.weight') || t2i)) {
    const [V, dim] = shape('tok_embeddings.weight');
    return {
      family: 'llamagen-gpt',
      description: t2i ? 'LlamaGen text-conditional GPT (t2i: caption embeddings; not runnable by Tessera)'
        : 'LlamaGen class-conditional GPT (next-token prediction)',
      facts: {
        layers: countIndexed(names, /^layers\.(\d+)\./), dim: dim ?? 0, vocabulary: V ?? 0,
        classes: (shape('cls_embedding.embedding_table.weight')[0] ?? 1) - 1,
        ffnHidden: shape('layers.0.feed_forward.w1.weight')[0] ?? 0,
        verticalHead: has('medusa_output.weight'),
      },
    };
  }
  if (has('quantize.embedding.weight') && names.some((n) => n.startsWith('encoder.conv_blocks.'))) {
    const [V, Cq] = shape('quantize.embedding.weight');
    return {
      family: 'llamagen-vq',
      description: "LlamaGen's VQ tokenizer",
      facts: { vocabulary: V ?? 0, codeDim: Cq ?? 0, baseChannels: shape('encoder.conv_in.weight')[0] ?? 0, levels: countIndexed(names, /^encoder\.conv_blocks\.(\d+)\./) },
    };
  }
  return { family: 'unknown', description: 'unrecognised tensor names', facts: {} };
}
