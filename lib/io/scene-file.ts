// Reads and writes scene files by content (reading) or extension (writing):
// 3DGS .ply (the INRIA layout or the PlayCanvas compressed one), ordinary
// .ply point clouds, .splat and .spz (versions 1-4).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { extname } from 'node:path';

import { TesseraError } from '../errors.js';
import type { GaussianScene } from './gaussian-scene.js';
import { gaussiansFromPly, gaussiansFromSplat, gaussiansFromSpz, gaussiansToPly, gaussiansToSplat, gaussiansToSpz, isGaussianPly, isSpz } from './gaussian-formats.js';
import { parsePly } from './ply.js';
import { pointCloudFromPly, pointCloudToPly, type PointCloud } from './point-cloud.js';

export type SceneData = { kind: 'gaussians'; scene: GaussianScene; format: 'ply' | 'splat' | 'spz' } | { kind: 'points'; cloud: PointCloud; format: 'ply' };

export function decodeScene(bytes: Uint8Array, name: string): SceneData {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 4));
  if (head.startsWith('ply')) {
    const ply = parsePly(bytes, name);
    return isGaussianPly(ply) ? { kind: 'gaussians', scene: gaussiansFromPly(ply, name), format: 'ply' } : { kind: 'points', cloud: pointCloudFromPly(ply, name), format: 'ply' };
  }
  if (isSpz(bytes)) return { kind: 'gaussians', scene: gaussiansFromSpz(bytes, name), format: 'spz' };
  if (extname(name).toLowerCase() === '.splat') return { kind: 'gaussians', scene: gaussiansFromSplat(bytes, name), format: 'splat' };
  throw new TesseraError('ERR_FORMAT', `${name}: not a recognised scene file (.ply, .splat, .spz)`);
}

export function readScene(path: string): SceneData {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new TesseraError('ERR_IO', `cannot read ${path}: ${(err as Error).message}`);
  }
  return decodeScene(bytes, path);
}

export function encodeScene(data: SceneData, ext: string): Uint8Array {
  const e = ext.toLowerCase();
  if (data.kind === 'points') {
    if (e !== '.ply') throw new TesseraError('ERR_INVALID_ARGUMENT', `a point cloud can be written as .ply only, not ${ext}`);
    return pointCloudToPly(data.cloud);
  }
  if (e === '.ply') return gaussiansToPly(data.scene);
  if (e === '.splat') return gaussiansToSplat(data.scene);
  if (e === '.spz') return gaussiansToSpz(data.scene);
  throw new TesseraError('ERR_INVALID_ARGUMENT', `unknown scene extension ${ext} (use .ply, .splat or .spz)`);
}

/** Atomic write (temp file + rename). */
export function writeScene(path: string, data: SceneData): void {
  const bytes = encodeScene(data, extname(path));
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`);
  }
}
