// Writes a state dict in torch.save's zip format: <name>/data.pkl (a
// protocol-2 pickle of an OrderedDict of _rebuild_tensor_v2 calls),
// <name>/data/<i> (one stored, 64-byte aligned member per tensor),
// <name>/byteorder and <name>/version. PyTorch's torch.load reads it. Used
// for conversion, fixtures and the loading benchmark.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { crc32 } from 'node:zlib';

import { TesseraError } from '../errors.js';
import type { TensorToWrite } from './safetensors.js';
import { numelOf, STORED_DTYPE_BYTES, type StoredDtype } from './stored-tensor.js';

const STORAGE: Record<StoredDtype, string> = {
  float64: 'DoubleStorage', float32: 'FloatStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage',
  int64: 'LongStorage', int32: 'IntStorage', int16: 'ShortStorage', int8: 'CharStorage', uint8: 'ByteStorage', bool: 'BoolStorage',
};

/** A minimal pickle writer for the opcodes a state dict needs. */
class PickleWriter {
  private parts: number[] = [];
  byte(...b: number[]): this { this.parts.push(...b); return this; }
  text(s: string): this { for (const c of new TextEncoder().encode(s)) this.parts.push(c); return this; }
  global(mod: string, name: string): this { return this.byte(0x63).text(`${mod}\n${name}\n`); }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.byte(0x58, b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, (b.length >>> 24) & 0xff);
    for (const c of b) this.parts.push(c);
    return this;
  }
  int(v: number): this {
    if (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) return this.byte(0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
    // LONG1 with 8 little-endian two's-complement bytes.
    let x = BigInt(v);
    const out: number[] = [];
    for (let i = 0; i < 8; ++i) { out.push(Number(x & 0xffn)); x >>= 8n; }
    return this.byte(0x8a, 8, ...out);
  }
  bytes(): Uint8Array { return Uint8Array.from(this.parts); }
}

function statePickle(tensors: TensorToWrite[]): Uint8Array {
  const p = new PickleWriter();
  p.byte(0x80, 0x02).global('collections', 'OrderedDict').byte(0x29, 0x52, 0x28); // PROTO 2; OrderedDict(); MARK
  tensors.forEach((t, i) => {
    const strides: number[] = [];
    let s = 1;
    for (let d = t.shape.length - 1; d >= 0; --d) { strides.unshift(s); s *= t.shape[d]!; }
    p.str(t.name).global('torch._utils', '_rebuild_tensor_v2').byte(0x28); // MARK (args)
    p.byte(0x28).str('storage').global('torch', STORAGE[t.dtype]).str(String(i)).str('cpu').int(numelOf(t.shape)).byte(0x74, 0x51); // TUPLE, BINPERSID
    p.int(0).byte(0x28);
    for (const d of t.shape) p.int(d);
    p.byte(0x74, 0x28);
    for (const d of strides) p.int(d);
    p.byte(0x74, 0x89).global('collections', 'OrderedDict').byte(0x29, 0x52); // requires_grad False; backward hooks
    p.byte(0x74, 0x52); // TUPLE; REDUCE
  });
  return p.byte(0x75, 0x2e).bytes(); // SETITEMS; STOP
}

interface Member { name: string; crc: number; size: number; offset: number; }

export function writeTorchCheckpoint(path: string, tensors: TensorToWrite[]): void {
  for (const t of tensors) {
    const want = numelOf(t.shape) * STORED_DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== want) throw new TesseraError('ERR_SHAPE', `tensor ${t.name}: ${t.data.byteLength} bytes of data for ${t.dtype}[${t.shape.join(', ')}]`);
  }
  const prefix = basename(path).replace(/\.[^.]*$/, '') || 'archive';
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let at = 0;
  const members: Member[] = [];
  const write = (b: Uint8Array): void => { writeSync(fd, b); at += b.byteLength; };
  const enc = new TextEncoder();
  // One stored member; the local header's extra field pads the data to 64 bytes.
  const member = (name: string, chunks: Uint8Array[]): void => {
    const nameBytes = enc.encode(`${prefix}/${name}`);
    let crc = 0, size = 0;
    for (const c of chunks) { crc = crc32(c, crc); size += c.byteLength; }
    if (at + size > 0xffffffff - 1024) throw new TesseraError('ERR_INVALID_ARGUMENT', `${path}: checkpoints over 4 GiB need ZIP64, which this writer does not produce; use safetensors`);
    const base = at + 30 + nameBytes.length;
    const pad = (64 - ((base + 4) % 64)) % 64;
    const h = new Uint8Array(30 + nameBytes.length + 4 + pad);
    const v = new DataView(h.buffer);
    v.setUint32(0, 0x04034b50, true); v.setUint16(4, 20, true); v.setUint16(8, 0, true);
    v.setUint32(14, crc, true); v.setUint32(18, size, true); v.setUint32(22, size, true);
    v.setUint16(26, nameBytes.length, true); v.setUint16(28, 4 + pad, true);
    h.set(nameBytes, 30);
    v.setUint16(30 + nameBytes.length, 0xcafe, true); // a private extra-field id, as padding
    v.setUint16(32 + nameBytes.length, pad, true);
    members.push({ name: `${prefix}/${name}`, crc, size, offset: at });
    write(h);
    for (const c of chunks) write(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
  };
  try {
    member('data.pkl', [statePickle(tensors)]);
    member('byteorder', [enc.encode('little')]);
    tensors.forEach((t, i) => member(`data/${i}`, [new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
    member('version', [enc.encode('3\n')]);
    const cdStart = at;
    for (const m of members) {
      const nb = enc.encode(m.name);
      const c = new Uint8Array(46 + nb.length);
      const v = new DataView(c.buffer);
      v.setUint32(0, 0x02014b50, true); v.setUint16(4, 20, true); v.setUint16(6, 20, true);
      v.setUint32(16, m.crc, true); v.setUint32(20, m.size, true); v.setUint32(24, m.size, true);
      v.setUint16(28, nb.length, true); v.setUint32(42, m.offset, true);
      c.set(nb, 46);
      write(c);
    }
    const e = new Uint8Array(22);
    const ev = new DataView(e.buffer);
    ev.setUint32(0, 0x06054b50, true); ev.setUint16(8, members.length, true); ev.setUint16(10, members.length, true);
    ev.setUint32(12, at - cdStart, true); ev.setUint32(16, cdStart, true);
    write(e);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try { closeSync(fd); } catch { /* closed */ }
    try { unlinkSync(tmp); } catch { /* not created */ }
    if (err instanceof TesseraError) throw err;
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(err as Error).message}`);
  }
}
