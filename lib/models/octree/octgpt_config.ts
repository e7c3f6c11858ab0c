// OctGPT's transformer (octree-nn/octgpt 849d23a, models/octgpt.py and
// models/octformer.py; spec octree.md §4) configured from a checkpoint's
// tensor shapes. The state dict of the OctGPT module has:
//   split_emb.weight [2, C]            class_emb.weight [classes, C]
//   vq_proj.{weight [C, bits], bias}   split_head.{weight [2, C], bias}
//   vq_head.{weight [2·bits, C], bias} (bit g's two logits are rows 2g, 2g+1)
//   {encoder,decoder}.layers.blocks.{i}.
//     norm1 / norm2 .weight (+ .bias: LayerNorm; none: RMSNorm)
//     attention.qkv.{weight [3C, C], bias}, attention.proj.{weight, bias}
//     attention.rope.freqs [3, H·3·⌊d/6⌋] (rows x, y, z; per head 3 bands)
//     mlp.fc1 [hidden, C], mlp.fc2 [C, hidden] (+ biases)
//     pos_emb.depth_emb.weight [rows, C] (+ pos_emb.absolute_emb [128, C]: AbsPosEmb)
//       (rows = MAX_DEPTH - FULL_DEPTH + 1 = 4, module constants of the
//       official positional_embedding.py: every checkpoint has 4, whatever
//       depths it was trained on; token depth d uses row d - fullDepth)
//   encoder_ln / decoder_ln (same norm kind)
// Text/image models add cross-attention (cross_attn, cross_norm), mask_token,
// ln_cond and cond_proj: refused here (no CLIP encoder in Tessera).
//
// What no shape holds comes from options, with the released ShapeNet
// defaults: heads 8, full depth 3, depth stop (MODEL.depth_stop, the depth of
// the leaf codes) full depth + rows - 1 = 6, buffer 64, shifted windows on;
// window and dilation differ per released model (2048/2 unconditional
// ShapeNet, 1024/16 category, 1024/8 Objaverse) and default to 2048/2.
import { TesseraError } from '../../errors.js';
import type { StoredTensor } from '../../io/stored-tensor.js';
import { ShapeReader, type Tensors } from '../var/config.js';

export interface OctGptConfig {
  width: number;
  heads: number;
  headDim: number;
  encoderBlocks: number;
  decoderBlocks: number;
  mlpHidden: number;
  /** Bits of one leaf code (BSQ embedding channels). */
  codeBits: number;
  classes: number;
  /** Depths that carry tokens: fullDepth .. depthStop (at most the depth_emb rows). */
  depths: number;
  /** Rows of depth_emb (4 in every official checkpoint). */
  depthRows: number;
  norm: 'layer' | 'rms';
  posEmb: 'sin' | 'abs';
  fullDepth: number;
  /** The depth whose nodes carry the leaf codes (MODEL.depth_stop). */
  depthStop: number;
  window: number;
  dilation: number;
  bufferSize: number;
  shiftWindows: boolean;
}

export interface OctGptOptions {
  heads?: number;
  fullDepth?: number;
  /** MODEL.depth_stop: the leaf-code depth (default fullDepth + depth_emb rows - 1). */
  depthStop?: number;
  window?: number;
  dilation?: number;
  bufferSize?: number;
  shiftWindows?: boolean;
}

function bad(file: string, key: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${file}: ${key} ${why}`);
}

function positiveInt(name: string, v: number, lo = 1, hi = 1 << 20): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new TesseraError('ERR_INVALID_ARGUMENT', `${name} must be an integer in ${lo}..${hi}, got ${v}`);
  return v;
}

/**
 * The OctGPT state dict inside a checkpoint's tensors: ocnn's solver may
 * save it under model_dict, and DistributedDataParallel adds "module.".
 */
export function octgptTensors(tensors: Tensors): Tensors {
  for (const prefix of ['model_dict.module.', 'model_dict.', 'module.']) {
    if (tensors.has(`${prefix}split_emb.weight`)) {
      const out = new Map<string, StoredTensor>();
      for (const [k, t] of tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), t);
      return out;
    }
  }
  return tensors;
}

export function octgptConfig(tensors: Tensors, file: string, opts: OctGptOptions = {}): OctGptConfig {
  const r = new ShapeReader(tensors, file);
  if (!r.has('split_emb.weight')) bad(file, 'split_emb.weight', 'is missing: not an OctGPT checkpoint');
  for (const k of ['mask_token', 'cond_proj.weight', 'ln_cond.weight'])
    if (r.has(k)) throw new TesseraError('ERR_FORMAT', `${file}: ${k} marks a text/image-conditioned OctGPT; only unconditional and category models are supported (no CLIP encoder)`);
  if ([...tensors.keys()].some((k) => k.includes('.cross_attn.')))
    throw new TesseraError('ERR_FORMAT', `${file}: has cross-attention blocks (text/image conditioning); only unconditional and category models are supported`);
  const [two, width] = r.shape('split_emb.weight', 2, 'split-flag embeddings [2, C]') as [number, number];
  if (two !== 2) bad(file, 'split_emb.weight', `has ${two} rows, expected 2 (split flags 0/1)`);
  const classes = r.shape('class_emb.weight', 2, 'class embeddings [classes, C]')[0]!;
  r.expect('class_emb.weight', [classes, width], 'class embeddings');
  const codeBits = r.shape('vq_proj.weight', 2, 'code projection [C, bits]')[1]!;
  r.expect('vq_proj.weight', [width, codeBits], 'code projection');
  r.expect('vq_proj.bias', [width], 'code projection bias');
  r.expect('split_head.weight', [2, width], 'split head');
  r.expect('split_head.bias', [2], 'split head bias');
  r.expect('vq_head.weight', [2 * codeBits, width], 'code head (two logits per bit)');
  r.expect('vq_head.bias', [2 * codeBits], 'code head bias');

  const encoderBlocks = r.count('encoder.layers.blocks.'), decoderBlocks = r.count('decoder.layers.blocks.');
  if (encoderBlocks === 0 || decoderBlocks === 0) bad(file, encoderBlocks === 0 ? 'encoder.layers.blocks.0.*' : 'decoder.layers.blocks.0.*', 'is missing');
  const p0 = 'encoder.layers.blocks.0';
  const norm: OctGptConfig['norm'] = r.has(`${p0}.norm1.bias`) ? 'layer' : 'rms';
  const posEmb: OctGptConfig['posEmb'] = r.has(`${p0}.pos_emb.absolute_emb`) ? 'abs' : 'sin';
  const depthRows = r.shape(`${p0}.pos_emb.depth_emb.weight`, 2, 'depth embeddings [rows, C]')[0]!;
  const mlpHidden = r.shape(`${p0}.mlp.fc1.weight`, 2, 'MLP fc1 [hidden, C]')[0]!;

  const heads = positiveInt('heads', opts.heads ?? 8, 1, width);
  if (width % heads !== 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `${heads} heads do not divide the width ${width}`);
  const headDim = width / heads;
  if (headDim % 6 !== 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `head size ${headDim} (width ${width} / ${heads} heads) must be a multiple of 6 for OctGPT's 3D RoPE`);
  const ropeCols = heads * 3 * Math.floor(headDim / 6);

  const checkStack = (stack: 'encoder' | 'decoder', n: number): void => {
    for (let i = 0; i < n; i++) {
      const p = `${stack}.layers.blocks.${i}`;
      r.expect(`${p}.norm1.weight`, [width], 'norm1');
      r.expect(`${p}.norm2.weight`, [width], 'norm2');
      if (norm === 'layer') { r.expect(`${p}.norm1.bias`, [width], 'LayerNorm bias'); r.expect(`${p}.norm2.bias`, [width], 'LayerNorm bias'); }
      r.expect(`${p}.attention.qkv.weight`, [3 * width, width], 'fused [q|k|v]');
      r.expect(`${p}.attention.qkv.bias`, [3 * width], 'qkv bias');
      r.expect(`${p}.attention.proj.weight`, [width, width], 'attention output');
      r.expect(`${p}.attention.proj.bias`, [width], 'attention output bias');
      r.expect(`${p}.attention.rope.freqs`, [3, ropeCols], `3D RoPE frequencies for ${heads} heads of ${headDim} (give the head count if it is not ${heads})`);
      r.expect(`${p}.mlp.fc1.weight`, [mlpHidden, width], 'MLP fc1');
      r.expect(`${p}.mlp.fc1.bias`, [mlpHidden], 'MLP fc1 bias');
      r.expect(`${p}.mlp.fc2.weight`, [width, mlpHidden], 'MLP fc2');
      r.expect(`${p}.mlp.fc2.bias`, [width], 'MLP fc2 bias');
      r.expect(`${p}.pos_emb.depth_emb.weight`, [depthRows, width], 'depth embeddings');
      if (posEmb === 'abs') r.expect(`${p}.pos_emb.absolute_emb`, [128, width], 'absolute position table (128 grid)');
    }
    r.expect(`${stack}_ln.weight`, [width], `${stack} final norm`);
    if (norm === 'layer') r.expect(`${stack}_ln.bias`, [width], `${stack} final norm bias`);
  };
  checkStack('encoder', encoderBlocks);
  checkStack('decoder', decoderBlocks);

  const fullDepth = positiveInt('fullDepth', opts.fullDepth ?? 3, 1, 15);
  if (depthRows < 1) bad(file, `${p0}.pos_emb.depth_emb.weight`, 'has no rows');
  const depthStop = positiveInt('depthStop', opts.depthStop ?? Math.min(fullDepth + depthRows - 1, 16), fullDepth, 16);
  const depths = depthStop - fullDepth + 1;
  if (depths > depthRows)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `depths ${fullDepth}..${depthStop} need ${depths} depth embeddings, ${file} has ${depthRows} (pos_emb.depth_emb.weight rows)`);
  const window = positiveInt('window', opts.window ?? 2048, 2, 1 << 16);
  if (window % 2 !== 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `window must be even (shifted windows start with window/2 fillers), got ${window}`);
  return {
    width, heads, headDim, encoderBlocks, decoderBlocks, mlpHidden, codeBits, classes, depths, depthRows, norm, posEmb,
    fullDepth, depthStop, window, dilation: positiveInt('dilation', opts.dilation ?? 2, 1, 1024),
    bufferSize: positiveInt('bufferSize', opts.bufferSize ?? 64, 0, 4096), shiftWindows: opts.shiftWindows ?? true,
  };
}
