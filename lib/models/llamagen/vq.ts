// LlamaGen's VQ tokenizer (VQ-16; spec section 1): GroupNorm/swish ResBlocks,
// single-head attention at the deepest level and in mid, pad-right-bottom
// downsampling, nearest x2 + conv upsampling, L2-normalised codebook. NCHW
// float32; images in [-1, 1].
import { TesseraError } from '../../errors.js';
import { attention } from '../../ops/attention.js';
import { conv2d } from '../../ops/conv.js';
import { linear } from '../../ops/gemm.js';
import { groupNorm } from '../../ops/norm.js';
import { resize } from '../../ops/resize.js';
import { embedding, vqNearest } from '../../ops/vq.js';
import { Tensor } from '../../tensor.js';
import type { Tensors } from '../var/config.js';
import { WeightReader } from '../var/weights.js';
import { vqConfig, type VqConfig } from './config.js';

const GN_GROUPS = 32, GN_EPS = 1e-6;

export class LlamaGenVq {
  private constructor(readonly config: VqConfig, private readonly w: WeightReader) {}

  static load(tensors: Tensors, file: string): LlamaGenVq {
    return new LlamaGenVq(vqConfig(tensors, file), new WeightReader(tensors, file));
  }

  private conv(name: string, x: Tensor, opts: { downsample?: boolean; out?: Tensor } = {}): Promise<Tensor> {
    const weight = this.w.f32(`${name}.weight`);
    const p = (weight.shape[2]! - 1) / 2;
    // Downsample: F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 conv without padding.
    return conv2d({
      x, weight, bias: this.w.f32(`${name}.bias`), stride: opts.downsample ? 2 : 1,
      padding: opts.downsample ? [0, 1, 0, 1] : p, out: opts.out, accumulate: opts.out !== undefined,
    });
  }

  private norm(name: string, x: Tensor, swish = true): Promise<Tensor> {
    return groupNorm({ x, weight: this.w.f32(`${name}.weight`), bias: this.w.f32(`${name}.bias`), groups: GN_GROUPS, eps: GN_EPS, silu: swish });
  }

  /** shortcut(x) + conv2(swish(GN(conv1(swish(GN(x)))))); nin_shortcut when channels change. */
  private async res(p: string, x: Tensor): Promise<Tensor> {
    const a = await this.norm(`${p}.norm1`, x);
    const h = await this.conv(`${p}.conv1`, a);
    a.dispose();
    const b = await this.norm(`${p}.norm2`, h);
    h.dispose();
    const out = this.w.has(`${p}.nin_shortcut.weight`) ? await this.conv(`${p}.nin_shortcut`, x) : await x.toDevice('cpu');
    await this.conv(`${p}.conv2`, b, { out });  // accumulates onto the shortcut
    b.dispose();
    return out;
  }

  /** x + proj_out(softmax(q·kᵀ/√C)·v) over the H·W positions, one head; the 1x1 convs run as linears on [B·HW, C]. */
  private async attn(p: string, x: Tensor): Promise<Tensor> {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const n = H * W;
    const g = await this.norm(`${p}.norm`, x, false);
    const t = transpose(g, B, C, n);
    g.dispose();
    const proj = (name: string, input: Tensor): Promise<Tensor> =>
      linear({ x: input, weight: this.w.f32(`${p}.${name}.weight`, [C, C]), bias: this.w.f32(`${p}.${name}.bias`) });
    const [q, k, v] = [await proj('q', t), await proj('k', t), await proj('v', t)];
    t.dispose();
    const as4 = (a: Tensor): Tensor => a.reshape([B, n, 1, C]);
    const o = await attention({ q: as4(q), k: as4(k), v: as4(v), layout: 'blhd', scale: C ** -0.5 });
    for (const a of [q, k, v]) a.dispose();
    const y = await proj('proj_out', o.reshape([B * n, C]));
    o.dispose();
    const out = transpose(y, B, n, C, [B, C, H, W]);
    y.dispose();
    const od = out.data as Float32Array, xd = x.data as Float32Array;
    for (let i = 0; i < od.length; i++) od[i] = od[i]! + xd[i]!;
    return out;
  }

  private async mid(part: 'encoder' | 'decoder', x: Tensor): Promise<Tensor> {
    let h = await this.res(`${part}.mid.0`, x);
    h = swap(h, await this.attn(`${part}.mid.1`, h));
    return swap(h, await this.res(`${part}.mid.2`, h));
  }

  /** img [B, 3, H, W] in [-1, 1] → z = quant_conv(encoder(img)) [B, D, H/f, W/f]. */
  async encode(img: Tensor): Promise<Tensor> {
    const { channels, numResBlocks, downsample } = this.config;
    const [, c, H, W] = img.shape as [number, number, number, number];
    if (img.shape.length !== 4 || c !== 3) throw new TesseraError('ERR_SHAPE', `image must be [B, 3, H, W], got [${img.shape.join(', ')}]`);
    if (H % downsample !== 0 || W % downsample !== 0)
      throw new TesseraError('ERR_SHAPE', `image sides must be multiples of ${downsample}, got ${H}x${W}`);
    let h = await this.conv('encoder.conv_in', img);
    for (let i = 0; i < channels.length; i++) {
      const p = `encoder.conv_blocks.${i}`;
      for (let j = 0; j < numResBlocks; j++) {
        h = swap(h, await this.res(`${p}.res.${j}`, h));
        if (this.w.has(`${p}.attn.${j}.q.weight`)) h = swap(h, await this.attn(`${p}.attn.${j}`, h));
      }
      if (i !== channels.length - 1) h = swap(h, await this.conv(`${p}.downsample.conv`, h, { downsample: true }));
    }
    h = swap(h, await this.mid('encoder', h));
    const g = await this.norm('encoder.norm_out', h);
    h.dispose();
    const z = swap(g, await this.conv('encoder.conv_out', g));
    return swap(z, await this.conv('quant_conv', z));
  }

  /** Nearest L2-normalised code of each L2-normalised z vector: int32 [B, h, w]. */
  quantize(z: Tensor): Promise<Tensor> {
    return vqNearest({ z, codebook: this.w.f32('quantize.embedding.weight'), l2Normalize: true, channelsFirst: true });
  }

  /** zq [B, D, h, w] → image [B, 3, h·f, w·f], not clamped. */
  async decode(zq: Tensor): Promise<Tensor> {
    const { channels, numResBlocks } = this.config;
    const z = await this.conv('post_quant_conv', zq);
    let h = swap(z, await this.conv('decoder.conv_in', z));
    h = swap(h, await this.mid('decoder', h));
    for (let i = 0; i < channels.length; i++) {  // conv_blocks.0 is the deepest level
      const p = `decoder.conv_blocks.${i}`;
      for (let j = 0; j <= numResBlocks; j++) {
        h = swap(h, await this.res(`${p}.res.${j}`, h));
        if (this.w.has(`${p}.attn.${j}.q.weight`)) h = swap(h, await this.attn(`${p}.attn.${j}`, h));
      }
      if (i !== channels.length - 1) {
        const [, , hh, ww] = h.shape as [number, number, number, number];
        const up = swap(h, await resize({ x: h, size: [2 * hh, 2 * ww], mode: 'nearest' }));
        h = swap(up, await this.conv(`${p}.upsample.conv`, up));
      }
    }
    const g = await this.norm('decoder.norm_out', h);
    h.dispose();
    return swap(g, await this.conv('decoder.conv_out', g));
  }

  /** decode_code: token ids [B·G·G] (raster order per image) → image [B, 3, G·f, G·f], not clamped. */
  async decodeCodes(ids: Int32Array, B: number, grid: number): Promise<Tensor> {
    const { vocabulary } = this.config;
    if (ids.length !== B * grid * grid) throw new TesseraError('ERR_SHAPE', `${ids.length} token ids do not fill ${B} grids of ${grid}x${grid}`);
    for (const id of ids) if (id < 0 || id >= vocabulary) throw new TesseraError('ERR_INVALID_ARGUMENT', `token id ${id} is outside 0..${vocabulary - 1}`);
    const zq = await embedding({
      table: this.w.f32('quantize.embedding.weight'), indices: Tensor.from(ids, [B, grid, grid]), l2Normalize: true, channelsFirst: true,
    });
    return swap(zq, await this.decode(zq));
  }
}

/** Decoder output in [-1, 1] → [0, 1] in place (the official save_image: clamp, then (x + 1)/2). */
export function toUnitRange(img: Tensor): Tensor {
  const d = img.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = (Math.min(1, Math.max(-1, d[i]!)) + 1) / 2;
  return img;
}

/** [B, R, S] → [B, S, R] (contiguous copy, allocated with `shape` if given). */
function transpose(x: Tensor, B: number, R: number, S: number, shape?: number[]): Tensor {
  const out = Tensor.empty(shape ?? [B * S, R]);
  const s = x.data as Float32Array, d = out.data as Float32Array;
  for (let b = 0; b < B; b++)
    for (let r = 0; r < R; r++)
      for (let j = 0; j < S; j++) d[(b * S + j) * R + r] = s[(b * R + r) * S + j]!;
  return out;
}

/** Disposes `old` and returns `next` (one live activation at a time). */
function swap(old: Tensor, next: Tensor): Tensor {
  if (old !== next) old.dispose();
  return next;
}
