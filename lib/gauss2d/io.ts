// 2D-Gaussian models as safetensors files.
//
// Tensors (float32, little-endian, N = number of Gaussians):
//   xy        [N, 2]  raw means; pixel = ½·size·(tanh(xy) + 1)
//   cholesky  [N, 3]  raw (l11, l21, l22); L = [[l11 + 0.5, 0], [l21, l22 + 0.5]], Σ = L·Lᵀ (pixels²)
//   color     [N, 3]  linear RGB in the image's [0, 1] range, opacity 1
// __metadata__ (all strings, as safetensors requires):
//   format "tessera.gauss2d", version "2", width, height (the fitted image's
//   size in pixels), parameterisation "gaussianimage-cholesky",
//   render "accumulated-sum" (C = Σ c·min(1, e^−σ), clamped to [0, 1]),
//   plus any extra entries the caller passes (e.g. psnr, source).
// Version 2: image pixel j is sampled at j, as GaussianImage's rasterizer
// does (native/include/tessera/gauss2d.h). Version 1 files (earlier Tessera
// builds sampled pixel j at j + 0.5 with the same mean formula) are read and
// moved by half a pixel so that they render as before; a mean in the last
// half pixel of the image edge is clamped inside it.
import { TesseraError } from '../errors.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { checkModel, type Gauss2dModel } from './model.js';

export const GAUSS2D_FORMAT = 'tessera.gauss2d';

export function saveGauss2d(path: string, m: Gauss2dModel, extra: Record<string, string> = {}): void {
  checkModel(m);
  writeSafetensors(path, [
    { name: 'xy', dtype: 'float32', shape: [m.count, 2], data: m.xy },
    { name: 'cholesky', dtype: 'float32', shape: [m.count, 3], data: m.cholesky },
    { name: 'color', dtype: 'float32', shape: [m.count, 3], data: m.color },
  ], {
    ...extra, format: GAUSS2D_FORMAT, version: '2', width: String(m.width), height: String(m.height),
    parameterisation: 'gaussianimage-cholesky', render: 'accumulated-sum',
  });
}

export interface LoadedGauss2d {
  model: Gauss2dModel;
  metadata: Record<string, string>;
}

export interface LoadGauss2dOptions {
  /**
   * Size of the image a GaussianImage checkpoint was trained on (its files
   * do not store it); required for those, refused for Tessera's own files.
   */
  imageSize?: { width: number; height: number };
}

/**
 * Reads a model: Tessera's safetensors format (above), or an official
 * GaussianImage checkpoint (`gaussian_model.pth.tar`, the state_dict of
 * GaussianImage_Cholesky or GaussianImage_RS, not quantised) given its image
 * size. Both have the same parameterisation and pixel sampling (version 2).
 */
export function loadGauss2d(path: string, opts: LoadGauss2dOptions = {}): LoadedGauss2d {
  const ck = openCheckpoint(path, { mmap: false });
  try {
    const bad = (why: string): never => { throw new TesseraError('ERR_FORMAT', `${path}: not a 2D-Gaussian model: ${why}`); };
    if (ck.tensors.has('_xyz') && ck.tensors.has('_features_dc')) return { model: fromGaussianImage(ck, path, opts.imageSize), metadata: {} };
    if (opts.imageSize !== undefined)
      throw new TesseraError('ERR_INVALID_ARGUMENT', `${path}: an image size is only given for GaussianImage checkpoints; this file states its own`);
    if (ck.format !== 'safetensors') bad(`a ${ck.format} file, expected safetensors (or a GaussianImage checkpoint with _xyz, _cholesky, _features_dc)`);
    const md = ck.metadata;
    if (md.format !== GAUSS2D_FORMAT) bad(`metadata format is ${JSON.stringify(md.format)}, expected "${GAUSS2D_FORMAT}"`);
    if (md.version !== '1' && md.version !== '2') bad(`unsupported version ${JSON.stringify(md.version)} (1 or 2)`);
    const width = Number(md.width), height = Number(md.height);
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 65536 || height > 65536)
      bad(`width/height metadata must be integers in 1..65536, got ${md.width}x${md.height}`);
    const load = (name: string, cols: number): Float32Array => {
      const t = ck.tensors.get(name) ?? bad(`tensor ${name} is missing`);
      if (t.dtype !== 'float32') bad(`tensor ${name} is ${t.dtype}, expected float32`);
      if (t.shape.length !== 2 || t.shape[1] !== cols) bad(`tensor ${name} has shape [${t.shape.join(', ')}], expected [N, ${cols}]`);
      return Float32Array.from(t.load().data as Float32Array);
    };
    const xy = load('xy', 2), cholesky = load('cholesky', 3), color = load('color', 3);
    const count = xy.length / 2;
    if (md.version === '1') fromVersion1(xy, width, height);
    if (cholesky.length !== 3 * count || color.length !== 3 * count) bad('xy, cholesky and color disagree on N');
    return { model: { width, height, count, xy, cholesky, color }, metadata: { ...md } };
  } finally {
    ck.close();
  }
}

/**
 * Version 1 sampled image pixel j at j + 0.5 with mean ½·W·(tanh x + 1);
 * version 2 samples it at j. The same image needs the mean half a pixel
 * lower: tanh x' = tanh x − 1/W (clamped to stay inside (−1, 1)).
 */
function fromVersion1(xy: Float32Array, width: number, height: number): void {
  const lim = 1 - 2 ** -24;
  for (let i = 0; i < xy.length; i++) {
    const size = i % 2 === 0 ? width : height;
    const t = Math.min(lim, Math.max(-lim, Math.tanh(xy[i]!) - 1 / size));
    xy[i] = Math.atanh(t);
  }
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/**
 * An official GaussianImage state_dict → the same model: _xyz is xy as is,
 * _features_dc the colour. GaussianImage_Cholesky: _cholesky + its
 * cholesky_bound buffer is L (Tessera stores L − (0.5, 0, 0.5)).
 * GaussianImage_RS: s = |_scaling + bound|, θ = 2π·sigmoid(_rotation),
 * Σ = R·diag(s²)·Rᵀ with R = [[cos θ, sin θ], [−sin θ, cos θ]] as its
 * rotmat2d builds it, factored as L·Lᵀ. Opacity must be the fixed ones; a
 * quantised (codec) model is refused, since its render uses the quantised
 * values, not these.
 */
function fromGaussianImage(ck: Checkpoint, path: string, size: LoadGauss2dOptions['imageSize']): Gauss2dModel {
  const bad = (why: string): never => { throw new TesseraError('ERR_FORMAT', `${path}: GaussianImage checkpoint: ${why}`); };
  if (size === undefined)
    throw new TesseraError('ERR_INVALID_ARGUMENT', `${path} is a GaussianImage checkpoint, which does not store its image size: give it (--image-size WxH)`);
  const { width, height } = size;
  if (![width, height].every((v) => Number.isInteger(v) && v >= 1 && v <= 65536))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `the image size must be integers in 1..65536, got ${width}x${height}`);
  const quantizer = [...ck.tensors.keys()].find((k) => k.includes('quantizer'));
  if (quantizer !== undefined) bad(`${quantizer}: quantised (codec) models are not supported; render the representation one`);
  const get = (name: string, cols: number, n?: number): Float32Array => {
    const t = ck.tensors.get(name) ?? bad(`tensor ${name} is missing`);
    if (t.shape.length !== 2 || t.shape[1] !== cols || (n !== undefined && t.shape[0] !== n))
      bad(`${name} has shape [${t.shape.join(', ')}], expected [${n ?? 'N'}, ${cols}]`);
    const d = t.load().data;
    return d instanceof Float32Array ? Float32Array.from(d) : Float32Array.from(d as ArrayLike<number>, Number);
  };
  const xy = get('_xyz', 2), count = xy.length / 2;
  const color = get('_features_dc', 3, count);
  if (ck.tensors.has('_opacity')) {
    const o = get('_opacity', 1, count);
    if (o.some((v) => v !== 1)) bad('_opacity is not all ones (GaussianImage fixes it at 1; so does Tessera)');
  }
  const cholesky = new Float32Array(3 * count);
  if (ck.tensors.has('_cholesky')) {
    const raw = get('_cholesky', 3, count);
    const bound = ck.tensors.has('cholesky_bound') ? get('cholesky_bound', 3, 1) : Float32Array.of(0.5, 0, 0.5);
    for (let i = 0; i < count; i++) {
      cholesky[3 * i] = raw[3 * i]! + bound[0]! - 0.5;
      cholesky[3 * i + 1] = raw[3 * i + 1]! + bound[1]!;
      cholesky[3 * i + 2] = raw[3 * i + 2]! + bound[2]! - 0.5;
    }
  } else if (ck.tensors.has('_scaling') && ck.tensors.has('_rotation')) {
    const sc = get('_scaling', 2, count), rot = get('_rotation', 1, count);
    const bound = ck.tensors.has('bound') ? get('bound', 2, 1) : Float32Array.of(0.5, 0.5);
    for (let i = 0; i < count; i++) {
      const sx = Math.abs(sc[2 * i]! + bound[0]!), sy = Math.abs(sc[2 * i + 1]! + bound[1]!);
      const th = sigmoid(rot[i]!) * 2 * Math.PI, c = Math.cos(th), s = Math.sin(th);
      // The official rotmat2d is [[cos, sin], [−sin, cos]] (glm, column-major, R[0][1] = −sin).
      const xx = c * c * sx * sx + s * s * sy * sy, xyv = -c * s * (sx * sx - sy * sy), yy = s * s * sx * sx + c * c * sy * sy;
      const l11 = Math.sqrt(xx), l21 = l11 > 0 ? xyv / l11 : 0, l22 = Math.sqrt(Math.max(0, yy - l21 * l21));
      cholesky[3 * i] = l11 - 0.5;
      cholesky[3 * i + 1] = l21;
      cholesky[3 * i + 2] = l22 - 0.5;
    }
  } else {
    bad('neither _cholesky (GaussianImage_Cholesky) nor _scaling and _rotation (GaussianImage_RS)');
  }
  return { width, height, count, xy, cholesky, color };
}
