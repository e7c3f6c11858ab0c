// One entry point for weight files: sniffs the format from the first bytes.
import { TesseraError } from '../errors.js';
import { readSafetensors } from './safetensors.js';
import { native } from '../native.js';
import { FileSource, MappedSource, type ByteSource } from './source.js';
import type { StoredTensor } from './stored-tensor.js';
import { isTorchLegacy, isTorchZip, readTorchLegacy, readTorchZip } from './torch.js';

export interface Checkpoint {
  path: string;
  format: 'safetensors' | 'torch-zip' | 'torch-legacy';
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
  extras: Map<string, unknown>;
  close(): void;
}

export function openCheckpointSource(src: ByteSource, path: string): Checkpoint {
  const head = src.read(0, Math.min(src.size, 16));
  if (isTorchZip(head)) {
    const c = readTorchZip(src, path);
    return { path, format: c.format, tensors: c.tensors, metadata: {}, extras: c.extras, close: () => src.close() };
  }
  if (isTorchLegacy(head)) {
    const c = readTorchLegacy(src, path);
    return { path, format: c.format, tensors: c.tensors, metadata: {}, extras: c.extras, close: () => src.close() };
  }
  if (head.length >= 9 && head[8] === 0x7b) {
    const s = readSafetensors(src, path);
    return { path, format: 'safetensors', tensors: s.tensors, metadata: s.metadata, extras: new Map(), close: () => src.close() };
  }
  throw new TesseraError('ERR_FORMAT', `${path}: not a safetensors file or a PyTorch checkpoint (unrecognised first bytes)`);
}

export interface OpenOptions {
  /**
   * 'auto' (default): map the file when the native addon is available, so
   * aligned tensors load as zero-copy views; otherwise read lazily with
   * positioned reads. true: require the mapping. false: never map.
   */
  mmap?: boolean | 'auto';
}

function openSource(path: string, mmap: boolean | 'auto'): ByteSource {
  if (mmap === false) return new FileSource(path);
  let map: ((p: string) => ArrayBuffer) | undefined;
  try {
    const addon = native();
    map = (p) => addon.mapFile(p);
  } catch (err) {
    if (mmap === true) throw err;
  }
  return map ? new MappedSource(path, map) : new FileSource(path);
}

/** Opens a checkpoint file; tensors are read when loaded. Call close() when done. */
export function openCheckpoint(path: string, options: OpenOptions = {}): Checkpoint {
  const src = openSource(path, options.mmap ?? 'auto');
  try {
    return openCheckpointSource(src, path);
  } catch (err) {
    src.close();
    throw err;
  }
}
