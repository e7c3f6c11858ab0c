// VAR's multi-scale VQVAE (spec/var.md section 1): encoder, decoder and the
// residual quantizer with the shared Phi convolutions. NCHW float32.
import { TesseraError } from '../../errors.js';
import { conv2d } from '../../ops/conv.js';
import { matmul, type PackedWeight } from '../../ops/gemm.js';
import { groupNorm } from '../../ops/norm.js';
import { resize } from '../../ops/resize.js';
import { embedding, vqNearest } from '../../ops/vq.js';
import { Tensor } from '../../tensor.js';
import { phiIndex, phiNames, vqvaeConfig, type Tensors, type VqvaeConfig } from './config.js';
import { timed } from './profile.js';
import { packFromMapping, WeightReader } from './weights.js';

const GN_GROUPS = 32, GN_EPS = 1e-6;
/** quant_resi: Phi(h) = (1 − r)·h + r·conv(h); r is not stored in the file. */
const PHI_RATIO = 0.5;

export class Vqvae {
  /** k×k (k > 1) conv weights packed once, on first use (see packedConv). */
  private readonly packed = new Map<string, PackedWeight>();

  /** Keys of the Phi convs (none: quant_resi = 0, every Phi is the identity). */
  private readonly phi: string[];

  private constructor(readonly config: VqvaeConfig, private readonly w: WeightReader) {
    this.phi = phiNames(w.tensors);
  }

  /** Frees the packed conv weights. */
  dispose(): void {
    for (const p of this.packed.values()) p.dispose();
    this.packed.clear();
  }

  /**
   * The conv weight `name` [Co, Ci, k, k] packed as [Co, Ci·k²] for the im2col
   * GEMM, once per model instead of once per call (a batch decodes image by
   * image). Not for 1×1 convs (a plain matmul, no packing) or ≤ 4 output
   * channels (conv_out: the direct route).
   */
  private async packedConv(name: string, weight: Tensor): Promise<PackedWeight | undefined> {
    const [Co, Ci, kh, kw] = weight.shape as [number, number, number, number];
    if (kh * kw === 1 || Co <= 4 || weight.dtype !== 'float32') return undefined;
    let p = this.packed.get(name);
    if (!p) {
      p = await packFromMapping(weight.reshape([Co, Ci * kh * kw]), 'float32');
      this.packed.set(name, p);
    }
    return p;
  }

  static load(tensors: Tensors, file: string): Vqvae {
    return new Vqvae(vqvaeConfig(tensors, file), new WeightReader(tensors, file));
  }

  // ---- building blocks ----

  private async conv(name: string, x: Tensor, opts: { stride?: number; padBottomRight?: boolean; out?: Tensor; upsample?: 2 } = {}): Promise<Tensor> {
    const weight = this.w.f32(`${name}.weight`);
    const k = weight.shape[2]!;
    // Downsample pads right and bottom by 1, then a stride-2 conv with no padding.
    const padding: [number, number, number, number] = opts.padBottomRight ? [0, 1, 0, 1] : [(k - 1) / 2, (k - 1) / 2, (k - 1) / 2, (k - 1) / 2];
    const packed = await this.packedConv(name, weight);
    const [Co, Ci] = weight.shape as [number, number];
    const [B, , H, W] = x.shape as [number, number, number, number];
    const s = opts.stride ?? 1, up = opts.upsample ?? 1, outPx = B * Math.floor((up * H) / s) * Math.floor((up * W) / s);
    return timed(`conv${k}x${k} ${up * H}²`, () => conv2d({ x, weight, packed, bias: this.w.f32(`${name}.bias`), stride: s, padding, out: opts.out, accumulate: opts.out !== undefined, upsample: up }),
      2 * outPx * Co * Ci * k * k);
  }

  /** silu(GN(x)) (or GN(x)) into `out`, which may be x itself (in place), or into a new tensor. */
  private gnSilu(name: string, x: Tensor, silu = true, out?: Tensor): Promise<Tensor> {
    return timed(`groupnorm ${x.shape[2]}²`, () => groupNorm({ x, weight: this.w.f32(`${name}.weight`), bias: this.w.f32(`${name}.bias`), groups: GN_GROUPS, eps: GN_EPS, silu, out }));
  }

  /** shortcut(x) + conv2(silu(GN(conv1(silu(GN(x)))))); may return x itself, updated in place. */
  private async resnet(p: string, x: Tensor): Promise<Tensor> {
    const a = await this.gnSilu(`${p}.norm1`, x);
    const h = await this.conv(`${p}.conv1`, a);
    a.dispose();
    // conv1's output is not needed after norm2: normalised in place, so the
    // writes land on lines the statistics passes just read (no fresh block).
    const b = await this.gnSilu(`${p}.norm2`, h, true, h);
    // The second conv accumulates onto the shortcut already in `out`: x itself
    // when there is no nin_shortcut (every caller replaces x by the result and
    // disposes it, so it is updated in place instead of copied).
    const out = this.w.has(`${p}.nin_shortcut.weight`) ? await this.conv(`${p}.nin_shortcut`, x) : x;
    await this.conv(`${p}.conv2`, b, { out });
    b.dispose();
    return out;
  }

  /** Single-head attention over the H·W positions: x + proj_out(v·softmax(qᵀk/√C)ᵀ), written into x. */
  private async attn(p: string, x: Tensor): Promise<Tensor> {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const n = H * W;
    const g = await this.gnSilu(`${p}.norm`, x, false);
    const qkv = await this.conv(`${p}.qkv`, g);  // [B, 3C, H, W]: channels split q|k|v
    g.dispose();
    const mixed = Tensor.empty([B, C, H, W]);
    const src = qkv.data as Float32Array, dst = mixed.data as Float32Array;
    await timed('vae attention core', async () => { for (let b = 0; b < B; b++) {
      const part = (j: number): Tensor => Tensor.from(src.subarray((b * 3 + j) * C * n, (b * 3 + j + 1) * C * n), [C, n]);
      const s = await matmul({ a: part(0), b: part(1), transA: true, alpha: C ** -0.5 });  // [n(i), n(j)]
      softmaxRows(s.data as Float32Array, n);
      // out[c, i] = Σ_j v[c, j]·s[i, j]
      await matmul({ a: part(2), b: s, transB: true, out: Tensor.from(dst.subarray(b * C * n, (b + 1) * C * n), [C, n]) });
      s.dispose();
    } });
    qkv.dispose();
    await this.conv(`${p}.proj_out`, mixed, { out: x });  // the residual, in place (as resnet)
    mixed.dispose();
    return x;
  }

  private async mid(part: 'encoder' | 'decoder', x: Tensor): Promise<Tensor> {
    let h = await this.resnet(`${part}.mid.block_1`, x);
    if (this.w.has(`${part}.mid.attn_1.qkv.weight`)) h = swap(h, await this.attn(`${part}.mid.attn_1`, h));
    return swap(h, await this.resnet(`${part}.mid.block_2`, h));
  }

  // ---- encoder / decoder ----

  /** img [B, 3, H, W] in [-1, 1] → f = quant_conv(encoder(img)) [B, Cvae, H/f, W/f]. */
  async encode(img: Tensor): Promise<Tensor> {
    const { channels, numResBlocks, downsample } = this.config;
    const [, c, H, W] = img.shape as [number, number, number, number];
    if (img.shape.length !== 4 || c !== 3) throw new TesseraError('ERR_SHAPE', `image must be [B, 3, H, W], got [${img.shape.join(', ')}]`);
    if (H % downsample !== 0 || W % downsample !== 0)
      throw new TesseraError('ERR_SHAPE', `image sides must be multiples of ${downsample}, got ${H}x${W}`);
    let h = await this.conv('encoder.conv_in', img);
    for (let i = 0; i < channels.length; i++) {
      for (let j = 0; j < numResBlocks; j++) {
        h = swap(h, await this.resnet(`encoder.down.${i}.block.${j}`, h));
        if (this.w.has(`encoder.down.${i}.attn.${j}.qkv.weight`)) h = swap(h, await this.attn(`encoder.down.${i}.attn.${j}`, h));
      }
      if (i !== channels.length - 1) h = swap(h, await this.conv(`encoder.down.${i}.downsample.conv`, h, { stride: 2, padBottomRight: true }));
    }
    h = swap(h, await this.mid('encoder', h));
    const g = await this.gnSilu('encoder.norm_out', h);
    h.dispose();
    const z = await this.conv('encoder.conv_out', g);
    g.dispose();
    return swap(z, await this.conv('quant_conv', z));
  }

  /** f_hat [B, Cvae, h, w] → image [B, 3, h·f, w·f] clamped to [-1, 1]. */
  async decode(fHat: Tensor): Promise<Tensor> {
    const { channels, numResBlocks } = this.config;
    const z = await this.conv('post_quant_conv', fHat);
    let h = swap(z, await this.conv('decoder.conv_in', z));
    h = swap(h, await this.mid('decoder', h));
    for (let i = channels.length - 1; i >= 0; i--) {
      for (let j = 0; j <= numResBlocks; j++) {
        h = swap(h, await this.resnet(`decoder.up.${i}.block.${j}`, h));
        if (this.w.has(`decoder.up.${i}.attn.${j}.qkv.weight`)) h = swap(h, await this.attn(`decoder.up.${i}.attn.${j}`, h));
      }
      // Upsample2x: nearest ×2, read by the conv itself (no 4×-sized map).
      if (i !== 0) h = swap(h, await this.conv(`decoder.up.${i}.upsample.conv`, h, { upsample: 2 }));
    }
    const g = await this.gnSilu('decoder.norm_out', h, true, h);  // in place, as norm2
    const img = swap(g, await this.conv('decoder.conv_out', g));
    const d = img.data as Float32Array;
    await timed('clamp', () => { for (let i = 0; i < d.length; i++) d[i] = Math.min(1, Math.max(-1, d[i]!)); });
    return img;
  }

  // ---- the multi-scale residual quantizer ----

  /** The codebook E [V, Cvae] (a view of the file's weights). */
  codebook(): Tensor {
    return this.w.f32('quantize.embedding.weight');
  }

  /** Codebook rows of `ids` ([B·pn²], row-major per image) as [B, Cvae, pn, pn]. */
  embed(ids: Int32Array, B: number, pn: number): Promise<Tensor> {
    return embedding({ table: this.codebook(), indices: Tensor.from(ids, [B, pn, pn]), channelsFirst: true });
  }

  /**
   * f_hat += Phi_k(bicubic(h → last)) for scale si (no resize at the last
   * scale); returns the added term. Phi(h) = 0.5·h + 0.5·(conv3x3(h) + b),
   * or h itself when the file has no Phi convs (quant_resi = 0).
   */
  async addScale(si: number, schedule: readonly number[], fHat: Tensor, h: Tensor): Promise<Tensor> {
    const SN = schedule.length, last = schedule[SN - 1]!;
    const up = si !== SN - 1 ? await resize({ x: h, size: [last, last], mode: 'bicubic' }) : await h.toDevice('cpu');
    const f = fHat.data as Float32Array;
    if (this.phi.length === 0) {
      const u = up.data as Float32Array;
      for (let i = 0; i < f.length; i++) f[i] = f[i]! + u[i]!;
      return up;  // the added term (a copy of h, or its upsampling)
    }
    const k = phiIndex(si, SN, this.phi.length);
    const c = await this.conv(this.phi[k]!, up);
    const u = up.data as Float32Array, cd = c.data as Float32Array;
    for (let i = 0; i < f.length; i++) {
      cd[i] = (1 - PHI_RATIO) * u[i]! + PHI_RATIO * cd[i]!;
      f[i] = f[i]! + cd[i]!;
    }
    up.dispose();
    return c;
  }

  /** The transformer's next input: area(f_hat → pn×pn) as [B, pn², Cvae]. */
  async nextInput(fHat: Tensor, pn: number): Promise<Tensor> {
    const [B, C] = fHat.shape as [number, number];
    const a = await resize({ x: fHat, size: [pn, pn], mode: 'area' });
    const t = toTokens(a);
    a.dispose();
    return t.reshape([B, pn * pn, C]);
  }

  /**
   * f → token ids per scale ([B·pn²] each, row-major) and f_hat (spec
   * section 1, f_to_idxBl): z = area(f_rest → pn) (f_rest itself at the last
   * scale), nearest code (first index on ties), f_rest −= Phi(bicubic(E[idx])).
   */
  async quantize(f: Tensor, schedule: readonly number[]): Promise<{ ids: Int32Array[]; fHat: Tensor }> {
    const [B, C, H, W] = f.shape as [number, number, number, number];
    const last = schedule[schedule.length - 1]!;
    if (H !== last || W !== last) throw new TesseraError('ERR_SHAPE', `latent is ${H}x${W}, the schedule ends at ${last}x${last}`);
    const rest = await f.toDevice('cpu');
    const fHat = Tensor.zeros([B, C, H, W]);
    const ids: Int32Array[] = [];
    const codebook = this.codebook();
    for (let si = 0; si < schedule.length; si++) {
      const pn = schedule[si]!;
      const z = si !== schedule.length - 1 ? await resize({ x: rest, size: [pn, pn], mode: 'area' }) : await rest.toDevice('cpu');
      const idx = await vqNearest({ z, codebook, channelsFirst: true });
      z.dispose();
      const id = Int32Array.from(idx.data as Int32Array);
      idx.dispose();
      ids.push(id);
      const h = await this.embed(id, B, pn);
      const added = await this.addScale(si, schedule, fHat, h);
      h.dispose();
      const r = rest.data as Float32Array, a = added.data as Float32Array;
      for (let i = 0; i < r.length; i++) r[i] = r[i]! - a[i]!;
      added.dispose();
    }
    rest.dispose();
    return { ids, fHat };
  }

  /** f_hat from per-scale token ids (the decoder's input for given tokens). */
  async fHatFromIds(ids: readonly Int32Array[], schedule: readonly number[], B: number): Promise<Tensor> {
    const last = schedule[schedule.length - 1]!;
    const fHat = Tensor.zeros([B, this.config.latentChannels, last, last]);
    for (let si = 0; si < schedule.length; si++) {
      const h = await this.embed(ids[si]!, B, schedule[si]!);
      (await this.addScale(si, schedule, fHat, h)).dispose();
      h.dispose();
    }
    return fHat;
  }
}

/** [B, C, h, w] → [B·h·w, C] (row-major positions, channels last). */
function toTokens(x: Tensor): Tensor {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const n = H * W;
  const out = Tensor.empty([B * n, C]);
  const s = x.data as Float32Array, d = out.data as Float32Array;
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let t = 0; t < n; t++) d[(b * n + t) * C + c] = s[(b * C + c) * n + t]!;
  return out;
}

function softmaxRows(s: Float32Array, n: number): void {
  for (let i = 0; i < s.length; i += n) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, s[i + j]!);
    let sum = 0;
    for (let j = 0; j < n; j++) { const e = Math.exp(s[i + j]! - m); s[i + j] = e; sum += e; }
    for (let j = 0; j < n; j++) s[i + j] = s[i + j]! / sum;
  }
}

/** Disposes `old` and returns `next` (one live activation at a time). */
function swap(old: Tensor, next: Tensor): Tensor {
  if (old !== next) old.dispose();
  return next;
}
