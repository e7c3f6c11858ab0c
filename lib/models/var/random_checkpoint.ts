// Random-weight VAR and VQVAE checkpoints in the official key layout (spec
// sections 1-2), for benchmarks: `tessera bench var` times d16-shaped models
// without downloading the real files. Weights are uniform with std
// 1/sqrt(fan_in) (norm gains near 1), so activations keep a realistic scale
// and the sampler sees non-degenerate logits.
import type { TensorToWrite } from '../../io/safetensors.js';
import { randomUniform } from '../../bench/timing.js';

export interface RandomVarShape {
  depth: number;
  /** C = 64·heads in the official models. */
  width: number;
  classes: number;
  vocabulary: number;
  latentChannels: number;
  schedule: readonly number[];
}

export interface RandomVaeShape {
  ch: number;
  chMult: readonly number[];
  numResBlocks: number;
  vocabulary: number;
  latentChannels: number;
}

/** The official d16 transformer (310M parameters) and the 109M-parameter VQVAE. */
export const D16: RandomVarShape = { depth: 16, width: 1024, classes: 1000, vocabulary: 4096, latentChannels: 32, schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16] };
export const OFFICIAL_VAE: RandomVaeShape = { ch: 160, chMult: [1, 1, 2, 2, 4], numResBlocks: 2, vocabulary: 4096, latentChannels: 32 };

class Builder {
  readonly tensors: TensorToWrite[] = [];
  #seed: number;
  constructor(seed: number) { this.#seed = seed; }

  /** Uniform in ±std·√3 (std as given), plus `mean`. */
  add(name: string, shape: number[], std: number, mean = 0): void {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomUniform(n, this.#seed++);
    const s = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) data[i] = mean + data[i]! * s;
    this.tensors.push({ name, dtype: 'float32', shape, data });
  }

  linear(name: string, n: number, k: number, bias = true): void {
    this.add(`${name}.weight`, [n, k], 1 / Math.sqrt(k));
    if (bias) this.add(`${name}.bias`, [n], 0.02);
  }

  conv(name: string, cout: number, cin: number, k = 3): void {
    this.add(`${name}.weight`, [cout, cin, k, k], 1 / Math.sqrt(cin * k * k));
    this.add(`${name}.bias`, [cout], 0.02);
  }

  norm(name: string, c: number): void {
    this.add(`${name}.weight`, [c], 0.05, 1);
    this.add(`${name}.bias`, [c], 0.02);
  }
}

export function randomVarTensors(s: RandomVarShape, seed = 1): TensorToWrite[] {
  const b = new Builder(seed), C = s.width, H = C / 64;
  const L = s.schedule.reduce((a, p) => a + p * p, 0);
  b.add('class_emb.weight', [s.classes + 1, C], 0.5);
  b.add('pos_start', [1, 1, C], 0.02);
  b.add('pos_1LC', [1, L, C], 0.02);
  b.linear('word_embed', C, s.latentChannels);
  b.add('lvl_embed.weight', [s.schedule.length, C], 0.02);
  for (let i = 0; i < s.depth; i++) {
    const p = `blocks.${i}`;
    b.add(`${p}.attn.scale_mul_1H11`, [1, H, 1, 1], 0.1, Math.log(4));
    b.add(`${p}.attn.q_bias`, [C], 0.02);
    b.add(`${p}.attn.v_bias`, [C], 0.02);
    b.tensors.push({ name: `${p}.attn.zero_k_bias`, dtype: 'float32', shape: [C], data: new Float32Array(C) });
    b.linear(`${p}.attn.mat_qkv`, 3 * C, C, false);
    b.linear(`${p}.attn.proj`, C, C);
    b.linear(`${p}.ffn.fc1`, 4 * C, C);
    b.linear(`${p}.ffn.fc2`, C, 4 * C);
    b.linear(`${p}.ada_lin.1`, 6 * C, C);
  }
  b.linear('head_nm.ada_lin.1', 2 * C, C);
  b.linear('head', s.vocabulary, C);
  const lvl = new BigInt64Array(L);
  let t = 0;
  s.schedule.forEach((pn, si) => { for (let j = 0; j < pn * pn; j++) lvl[t++] = BigInt(si); });
  b.tensors.push({ name: 'lvl_1L', dtype: 'int64', shape: [1, L], data: lvl });
  return b.tensors;
}

export function randomVaeTensors(s: RandomVaeShape, seed = 2): TensorToWrite[] {
  const b = new Builder(seed);
  const resnet = (p: string, cin: number, cout: number): void => {
    b.norm(`${p}.norm1`, cin); b.conv(`${p}.conv1`, cout, cin);
    b.norm(`${p}.norm2`, cout); b.conv(`${p}.conv2`, cout, cout);
    if (cin !== cout) b.conv(`${p}.nin_shortcut`, cout, cin, 1);
  };
  const attn = (p: string, c: number): void => {
    b.norm(`${p}.norm`, c); b.conv(`${p}.qkv`, 3 * c, c, 1); b.conv(`${p}.proj_out`, c, c, 1);
  };
  const levels = s.chMult.length, Z = s.latentChannels;
  b.conv('encoder.conv_in', s.ch, 3);
  let cin = s.ch;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < s.numResBlocks; j++) {
      resnet(`encoder.down.${i}.block.${j}`, cin, s.ch * s.chMult[i]!);
      cin = s.ch * s.chMult[i]!;
      if (i === levels - 1) attn(`encoder.down.${i}.attn.${j}`, cin);
    }
    if (i !== levels - 1) b.conv(`encoder.down.${i}.downsample.conv`, cin, cin);
  }
  resnet('encoder.mid.block_1', cin, cin); attn('encoder.mid.attn_1', cin); resnet('encoder.mid.block_2', cin, cin);
  b.norm('encoder.norm_out', cin); b.conv('encoder.conv_out', Z, cin);
  b.conv('decoder.conv_in', cin, Z);
  resnet('decoder.mid.block_1', cin, cin); attn('decoder.mid.attn_1', cin); resnet('decoder.mid.block_2', cin, cin);
  for (let i = levels - 1; i >= 0; i--) {
    for (let j = 0; j <= s.numResBlocks; j++) {
      resnet(`decoder.up.${i}.block.${j}`, cin, s.ch * s.chMult[i]!);
      cin = s.ch * s.chMult[i]!;
      if (i === levels - 1) attn(`decoder.up.${i}.attn.${j}`, cin);
    }
    if (i !== 0) b.conv(`decoder.up.${i}.upsample.conv`, cin, cin);
  }
  b.norm('decoder.norm_out', cin); b.conv('decoder.conv_out', 3, cin);
  b.add('quantize.embedding.weight', [s.vocabulary, Z], 1);
  for (let k = 0; k < 4; k++) b.conv(`quantize.quant_resi.qresi_ls.${k}`, Z, Z);
  b.conv('quant_conv', Z, Z);
  b.conv('post_quant_conv', Z, Z);
  return b.tensors;
}
