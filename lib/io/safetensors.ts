// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}},
// then the tensor bytes. Reading checks the header fully before any tensor
// is read (offsets inside the data, sizes match shapes, no overlaps or
// holes); tensors are read lazily. Writing is atomic (temp file + rename).
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';

import { TesseraError } from '../errors.js';
import type { ByteSource } from './source.js';
import { checkShape, loadArray, numelOf, STORED_DTYPE_BYTES, type HostArray, type StoredDtype, type StoredTensor } from './stored-tensor.js';

const CODES: Record<string, StoredDtype> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const CODE_OF: Record<StoredDtype, string> = Object.fromEntries(Object.entries(CODES).map(([k, v]) => [v, k])) as Record<StoredDtype, string>;

const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit

export interface SafetensorsFile {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

function bad(path: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${path}: invalid safetensors file: ${why}`);
}

class SafeStoredTensor implements StoredTensor {
  readonly numel: number;
  constructor(readonly name: string, readonly dtype: StoredDtype, readonly shape: number[], private readonly at: number, private readonly bytes: number, private readonly src: ByteSource) {
    this.numel = numelOf(shape);
  }
  load(): HostArray {
    return { dtype: this.dtype, shape: [...this.shape], data: loadArray(this.src, this.at, this.bytes, this.dtype) };
  }
}

export function readSafetensors(src: ByteSource, path: string): SafetensorsFile {
  if (src.size < 8) bad(path, 'shorter than the 8-byte header length');
  const lenBytes = src.read(0, 8);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER) || n > BigInt(src.size - 8)) bad(path, `header length ${n} exceeds the file or the 100 MiB limit`);
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(src.read(8, headerLen)));
  } catch (err) {
    bad(path, `header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) bad(path, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = src.size - dataStart;
  const metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  const tensors = new Map<string, StoredTensor>();
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!info || typeof info !== 'object' || Array.isArray(info)) bad(path, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') bad(path, `metadata value for ${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (!info || typeof info !== 'object') bad(path, `entry ${name} is not an object`);
    const { dtype, shape, data_offsets: offs } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !(dtype in CODES)) bad(path, `tensor ${name} has unsupported dtype ${String(dtype)}`);
    const dt = CODES[dtype]!;
    const dims = checkShape(`${path}: tensor ${name}`, shape);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((x) => Number.isSafeInteger(x) && x >= 0)) bad(path, `tensor ${name} has bad data_offsets`);
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) bad(path, `tensor ${name} data [${begin}, ${end}) lies outside the ${dataLen}-byte data section`);
    const expect = numelOf(dims) * STORED_DTYPE_BYTES[dt];
    if (end - begin !== expect) bad(path, `tensor ${name} has ${end - begin} bytes but ${dt}${JSON.stringify(dims)} needs ${expect}`);
    spans.push({ name, begin, end });
    tensors.set(name, new SafeStoredTensor(name, dt, dims, dataStart + begin, expect, src));
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const s of spans) {
    if (s.begin < at) bad(path, `tensor ${s.name} overlaps the previous tensor`);
    if (s.begin > at) bad(path, `a gap of ${s.begin - at} bytes precedes tensor ${s.name}`);
    at = s.end;
  }
  if (at !== dataLen) bad(path, `${dataLen - at} trailing bytes after the last tensor`);
  return { tensors, metadata };
}

export interface TensorToWrite {
  name: string;
  dtype: StoredDtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** Writes tensors in the order given; the header is space-padded to 8 bytes. */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name) || t.name === '__metadata__') throw new TesseraError('ERR_INVALID_ARGUMENT', `duplicate or reserved tensor name ${t.name}`);
    seen.add(t.name);
    const bytes = numelOf(t.shape) * STORED_DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) throw new TesseraError('ERR_SHAPE', `tensor ${t.name}: ${t.data.byteLength} bytes of data for ${t.dtype}${JSON.stringify(t.shape)} (${bytes} bytes)`);
    header[t.name] = { dtype: CODE_OF[t.dtype], shape: [...t.shape], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let hb = enc.encode(json);
  const pad = (8 - (hb.byteLength % 8)) % 8;
  if (pad) { json += ' '.repeat(pad); hb = enc.encode(json); }
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, hb);
    for (const t of tensors) writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* not created */ }
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`);
  }
}
