// Zero-shot in-painting, out-painting and class-conditional editing
// (spec/var.md section 3.8; the official demo_zero_shot_edit): encode the
// image into per-scale tokens, build a keep-mask on the last scale's grid from
// a box, and generate with the kept tokens teacher-forced at every scale.
import { TesseraError } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import { checkGenerateOptions, generate, type GenerateOptions, type Generated } from './generate.js';
import type { VarTransformer } from './transformer.js';
import type { Vqvae } from './vqvae.js';

export type EditMode = 'inpaint' | 'outpaint';
/** [x0, y0, x1, y1] in pixels of the input image (x1, y1 exclusive edges). */
export type Box = readonly [number, number, number, number];

export interface EditOptions extends Omit<GenerateOptions, 'classes'> {
  /** [B, 3, H, W] float32 in [0, 1], H = W = the last scale's side × the tokenizer's downsampling (256 for the official files). */
  image: Tensor;
  box: Box;
  /** inpaint (default): regenerate inside the box; outpaint: keep the box, regenerate around it. */
  mode?: EditMode;
  /** One class per image, or one for all; absent or < 0 = the null class (plain in/out-painting: CFG then changes nothing). */
  classes?: readonly number[];
}

const bad = (code: 'ERR_INVALID_ARGUMENT' | 'ERR_SHAPE', m: string): never => { throw new TesseraError(code, m); };

/** Python's round(): halves go to the even neighbour (the demo rounds box fractions with it). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/**
 * The demo's get_edit_mask on the side×side grid of the last scale: the box
 * as fractions of the image, cells [round(y0/H·side), round(y1/H·side)) ×
 * [round(x0/W·side), round(x1/W·side)) set, inverted for in-painting.
 * Returns side² values, 1 = keep the source token.
 */
export function editMask(box: Box, width: number, height: number, side: number, mode: EditMode): Uint8Array {
  const [x0, y0, x1, y1] = box;
  if (!box.every(Number.isFinite) || box.length !== 4) bad('ERR_INVALID_ARGUMENT', `box must be four numbers x0,y0,x1,y1, got ${box.join(',')}`);
  if (!(x0 >= 0 && y0 >= 0 && x1 <= width && y1 <= height && x0 < x1 && y0 < y1))
    bad('ERR_INVALID_ARGUMENT', `box ${box.join(',')} must lie inside the ${width}x${height} image with x0 < x1 and y0 < y1`);
  const r0 = roundHalfEven((y0 / height) * side), r1 = roundHalfEven((y1 / height) * side);
  const c0 = roundHalfEven((x0 / width) * side), c1 = roundHalfEven((x1 / width) * side);
  if (r0 >= r1 || c0 >= c1)
    bad('ERR_INVALID_ARGUMENT', `box ${box.join(',')} covers no token: tokens are ${width / side}x${height / side} pixel cells and the box rounds to none`);
  const m = new Uint8Array(side * side).fill(mode === 'inpaint' ? 1 : 0);
  for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) m[r * side + c] = mode === 'inpaint' ? 0 : 1;
  return m;
}

/**
 * The demo's replace_embedding masks: the side×side mask resized bilinearly
 * (align_corners=False) to each pn×pn, kept where > 0.5, and all ones where
 * pn² ≤ 3 (the 1×1 scale: the first token always comes from the source).
 *
 * The threshold makes the resize's rounding matter: a cell that lies half on
 * kept and half on regenerated tokens is at 0.5 in exact arithmetic, and is
 * kept or not according to how PyTorch rounds. So the weights here follow
 * PyTorch's CPU kernel (1.13, the reference environment) to the bit
 * (pytorchLinearTaps), not lib/ops/resize: e.g. 16 → 6 puts output column 4
 * at source 11.5 + 3.6e-7 (kept beside a box edge at 12), where exact
 * arithmetic gives 11.5 (not kept). Version note: kernels that compute the
 * source index in float32 (CUDA's float accscalar; by other ports' reading,
 * PyTorch 2's CPU opmath path; not run here) land on 11.5
 * too, so the demo's masks on those differ from 1.13's at such cells (135
 * of the 600 boxes of test/official-cli.test.ts); Tessera follows 1.13.
 */
export async function scaleMasks(mask: Uint8Array, side: number, schedule: readonly number[]): Promise<Uint8Array[]> {
  if (mask.length !== side * side) bad('ERR_SHAPE', `mask must hold ${side}x${side} values, got ${mask.length}`);
  const out: Uint8Array[] = [];
  for (const pn of schedule) {
    if (pn * pn <= 3) { out.push(new Uint8Array(pn * pn).fill(1)); continue; }
    const t = pytorchLinearTaps(side, pn);
    const m = new Uint8Array(pn * pn);
    const f = Math.fround;
    const row = (y: number, x: number): number => f(f(t.w0[x]! * mask[y * side + t.i0[x]!]!) + f(t.w1[x]! * mask[y * side + t.i1[x]!]!));
    for (let y = 0; y < pn; y++)
      for (let x = 0; x < pn; x++) {
        const v = f(f(row(t.i0[y]!, x) * t.w0[y]!) + f(row(t.i1[y]!, x) * t.w1[y]!));
        m[y * pn + x] = v > 0.5 ? 1 : 0;
      }
    out.push(m);
  }
  return out;
}

/**
 * Linear interpolation taps of PyTorch's CPU upsample (align_corners=False),
 * as PyTorch 1.13 computes them: the scale in/out rounded to float32, the
 * source index scale·(i + 0.5) − 0.5 in double (clamped at 0), the weight
 * λ1 of the right tap stored as float32 and λ0 = 1 − λ1; equal sizes copy.
 * (Checked against F.interpolate on every one-hot input for in, out < 40:
 * float32 index arithmetic, or an exact scale, differ in over half of them.)
 */
export function pytorchLinearTaps(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w0: Float32Array; w1: Float32Array } {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize), w0 = new Float32Array(outSize), w1 = new Float32Array(outSize);
  const scale = Math.fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    if (inSize === outSize) { i0[i] = i1[i] = i; w0[i] = 1; w1[i] = 0; continue; }
    const src = Math.max(scale * (i + 0.5) - 0.5, 0);
    const a = Math.floor(src);
    i0[i] = a;
    i1[i] = a < inSize - 1 ? a + 1 : a;
    w1[i] = src - a;  // stored as float32
    w0[i] = 1 - w1[i]!;
  }
  return { i0, i1, w0, w1 };
}

/** The image side the pair works at (last scale × downsampling). */
export function imageSide(vae: Vqvae, model: VarTransformer): number {
  return model.config.schedule[model.config.schedule.length - 1]! * vae.config.downsample;
}

function checkImage(image: Tensor, side: number): void {
  const [, C, H, W] = image.shape as [number, number, number, number];
  if (image.shape.length !== 4 || C !== 3) bad('ERR_SHAPE', `image must be [B, 3, H, W] (RGB), got [${image.shape.join(', ')}]`);
  if (H !== side || W !== side) bad('ERR_SHAPE', `image is ${W}x${H}; this model edits ${side}x${side} images`);
}

/** Per-scale token ids [B·pn²] of images [B, 3, H, W] in [0, 1] (the encoder sees x·2 − 1). */
export async function encodeTokens(vae: Vqvae, model: VarTransformer, image: Tensor): Promise<Int32Array[]> {
  checkImage(image, imageSide(vae, model));
  const x = Tensor.from(Float32Array.from(image.data as Float32Array, (v) => v * 2 - 1), image.shape);
  const f = await vae.encode(x);
  x.dispose();
  const { ids, fHat } = await vae.quantize(f, model.config.schedule);
  f.dispose();
  fHat.dispose();
  return ids;
}

/** Edits images in the box; returns the new images and their tokens (source ids where kept). */
export async function edit(vae: Vqvae, model: VarTransformer, options: EditOptions): Promise<Generated> {
  const { image, box, mode = 'inpaint' } = options;
  const side = imageSide(vae, model), schedule = model.config.schedule, last = schedule[schedule.length - 1]!;
  checkImage(image, side);
  if (mode !== 'inpaint' && mode !== 'outpaint') bad('ERR_INVALID_ARGUMENT', `mode must be inpaint or outpaint, got ${String(mode)}`);
  const B = image.shape[0]!;
  const given = options.classes ?? [-1];
  if (given.length !== 1 && given.length !== B) bad('ERR_INVALID_ARGUMENT', `give one class or one per image (${B}), got ${given.length}`);
  const opts = { ...options, classes: given.length === B ? given : new Array<number>(B).fill(given[0]!) };
  checkGenerateOptions(opts, model.config.classes);  // before the encoder's work
  const keep = await scaleMasks(editMask(box, side, side, last, mode), last, schedule);
  const ids = await encodeTokens(vae, model, image);
  return generate(vae, model, opts, { ids, keep });
}
