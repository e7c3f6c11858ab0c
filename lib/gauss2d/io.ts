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
import { openCheckpoint } from '../io/checkpoint.js';
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

export function loadGauss2d(path: string): LoadedGauss2d {
  const ck = openCheckpoint(path, { mmap: false });
  try {
    const bad = (why: string): never => { throw new TesseraError('ERR_FORMAT', `${path}: not a 2D-Gaussian model: ${why}`); };
    if (ck.format !== 'safetensors') bad(`a ${ck.format} file, expected safetensors`);
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
