// A read-only ZIP reader for checkpoint archives (torch.save writes one).
// Reads the central directory, then each member's local header on demand.
// Supports stored and deflated members and ZIP64 sizes/offsets; everything
// else (encryption, multi-disk) is refused with ERR_FORMAT.
import { inflateRawSync } from 'node:zlib';

import { TesseraError } from '../errors.js';
import type { ByteSource } from './source.js';

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CDIR_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function bad(path: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${path}: not a readable ZIP archive: ${why}`);
}

function u64(view: DataView, off: number, path: string): number {
  const v = view.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(path, 'a 64-bit size or offset is out of range');
  return Number(v);
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();

  private constructor(
    private readonly src: ByteSource,
    private readonly path: string,
  ) {}

  static open(src: ByteSource, path: string): ZipArchive {
    const zip = new ZipArchive(src, path);
    zip.readDirectory();
    return zip;
  }

  private readDirectory(): void {
    const size = this.src.size;
    if (size < 22) bad(this.path, 'file is shorter than an end-of-central-directory record');
    // The EOCD record sits in the last 22 + up to 65535 (comment) bytes.
    const tailLen = Math.min(size, 22 + 65535);
    const tail = this.src.read(size - tailLen, tailLen);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; --i) {
      if (tv.getUint32(i, true) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) bad(this.path, 'no end-of-central-directory record');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) bad(this.path, 'multi-disk archives are not supported');
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== EOCD64_LOCATOR_SIG) bad(this.path, 'ZIP64 locator missing');
      const e64off = u64(tv, loc + 8, this.path);
      if (e64off + 56 > size) bad(this.path, 'ZIP64 record outside the file');
      const e64 = this.src.read(e64off, 56);
      const ev = new DataView(e64.buffer, e64.byteOffset, 56);
      if (ev.getUint32(0, true) !== EOCD64_SIG) bad(this.path, 'ZIP64 record signature mismatch');
      count = u64(ev, 32, this.path);
      cdSize = u64(ev, 40, this.path);
      cdOffset = u64(ev, 48, this.path);
    }
    if (cdOffset + cdSize > size) bad(this.path, 'central directory lies outside the file');
    if (count > cdSize / 46) bad(this.path, 'entry count does not fit the central directory');
    const cd = this.src.read(cdOffset, cdSize);
    const v = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    let p = 0;
    for (let n = 0; n < count; ++n) {
      if (p + 46 > cdSize || v.getUint32(p, true) !== CDIR_SIG) bad(this.path, `central directory entry ${n} is corrupt`);
      const flags = v.getUint16(p + 8, true);
      const method = v.getUint16(p + 10, true);
      let compressedSize = v.getUint32(p + 20, true);
      let usize = v.getUint32(p + 24, true);
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      let localHeaderOffset = v.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize) bad(this.path, `central directory entry ${n} overruns`);
      const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extended information: fields present only for values saturated above.
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = v.getUint16(e, true);
        const len = v.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (usize === 0xffffffff && q + 8 <= e + 4 + len) { usize = u64(v, q, this.path); q += 8; }
          if (compressedSize === 0xffffffff && q + 8 <= e + 4 + len) { compressedSize = u64(v, q, this.path); q += 8; }
          if (localHeaderOffset === 0xffffffff && q + 8 <= e + 4 + len) { localHeaderOffset = u64(v, q, this.path); }
        }
        e += 4 + len;
      }
      if (flags & 0x1) bad(this.path, `member ${name} is encrypted`);
      if (method !== 0 && method !== 8) bad(this.path, `member ${name} uses compression method ${method} (only stored and deflate are supported)`);
      if (localHeaderOffset + 30 > size) bad(this.path, `member ${name} header lies outside the file`);
      this.entries.set(name, { name, method, compressedSize, size: usize, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** Offset of a member's data in the archive (stored members can be read in place). */
  dataOffset(entry: ZipEntry): number {
    const h = this.src.read(entry.localHeaderOffset, 30);
    const hv = new DataView(h.buffer, h.byteOffset, 30);
    if (hv.getUint32(0, true) !== LOCAL_SIG) bad(this.path, `member ${entry.name} local header signature mismatch`);
    const off = entry.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (off + entry.compressedSize > this.src.size) bad(this.path, `member ${entry.name} data runs past the end of the file`);
    return off;
  }

  /** The member's bytes (inflated if needed). */
  read(name: string): Uint8Array {
    const entry = this.entries.get(name);
    if (!entry) bad(this.path, `member ${name} is missing`);
    const off = this.dataOffset(entry);
    const raw = this.src.read(off, entry.compressedSize);
    if (entry.method === 0) {
      if (entry.size !== entry.compressedSize) bad(this.path, `stored member ${name} has inconsistent sizes`);
      return raw;
    }
    // Deflate expands at most ~1032:1, so a claimed size beyond that is a lie
    // (a zip bomb): memory stays bounded by the file's real size.
    if (entry.size > raw.byteLength * 1032 + 1024) bad(this.path, `member ${name} claims ${entry.size} bytes from ${raw.byteLength} compressed`);
    let out: Uint8Array;
    try {
      out = inflateRawSync(raw, { maxOutputLength: Math.max(entry.size, 1) });
    } catch (err) {
      bad(this.path, `member ${name} does not inflate: ${(err as Error).message}`);
    }
    if (out.byteLength !== entry.size) bad(this.path, `member ${name} inflated to ${out.byteLength} bytes, expected ${entry.size}`);
    return out;
  }
}
