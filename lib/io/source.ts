// Random-access byte sources for the loaders: a file read lazily with
// positioned reads (tensors are loaded when asked for, never all at once),
// or bytes already in memory. Every read is bounds-checked.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import { TesseraError } from '../errors.js';

export interface ByteSource {
  readonly size: number;
  /** A copy (file) or a view (memory) of [offset, offset + length). */
  read(offset: number, length: number): Uint8Array;
  /** Reads into `dst` (used to fill pooled tensor storage without a copy). */
  readInto(offset: number, dst: Uint8Array): void;
  /** A zero-copy view of [offset, offset + length) when the source is in memory. */
  view?(offset: number, length: number): Uint8Array;
  close(): void;
}

function outOfRange(what: string, offset: number, length: number, size: number): never {
  throw new TesseraError('ERR_FORMAT', `${what}: read of ${length} bytes at offset ${offset} runs past the end (${size} bytes); the file is truncated or corrupt`);
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (err) {
      throw new TesseraError('ERR_IO', `cannot open ${path}: ${(err as Error).message}`);
    }
    this.size = fstatSync(this.fd).size;
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(offset, out);
    return out;
  }

  readInto(offset: number, dst: Uint8Array): void {
    if (this.fd === null) throw new TesseraError('ERR_DISPOSED', `${this.path} was closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + dst.byteLength > this.size) outOfRange(this.path, offset, dst.byteLength, this.size);
    let done = 0;
    while (done < dst.byteLength) {
      const n = readSync(this.fd, dst, done, dst.byteLength - done, offset + done);
      if (n <= 0) outOfRange(this.path, offset + done, dst.byteLength - done, this.size);
      done += n;
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * A file mapped into memory (private, copy-on-write: writing through a view
 * never changes the file). Tensors are read in place; the mapping lives as
 * long as any view of it, and close() only drops this source's reference.
 */
export class MappedSource implements ByteSource {
  readonly size: number;
  private bytes: Uint8Array | null;

  constructor(readonly path: string, map: (path: string) => ArrayBuffer) {
    try {
      this.bytes = new Uint8Array(map(path));
    } catch (err) {
      throw new TesseraError('ERR_IO', `cannot map ${path}: ${(err as Error).message}`);
    }
    this.size = this.bytes.byteLength;
  }

  view(offset: number, length: number): Uint8Array {
    if (!this.bytes) throw new TesseraError('ERR_DISPOSED', `${this.path} was closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) outOfRange(this.path, offset, length, this.size);
    return this.bytes.subarray(offset, offset + length);
  }

  read(offset: number, length: number): Uint8Array {
    return this.view(offset, length);
  }

  readInto(offset: number, dst: Uint8Array): void {
    dst.set(this.view(offset, dst.byteLength));
  }

  close(): void {
    this.bytes = null;
  }
}

export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array, private readonly name = '<memory>') {
    this.size = bytes.byteLength;
  }
  view(offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) outOfRange(this.name, offset, length, this.size);
    return this.bytes.subarray(offset, offset + length);
  }
  read(offset: number, length: number): Uint8Array {
    return this.view(offset, length);
  }
  readInto(offset: number, dst: Uint8Array): void {
    dst.set(this.read(offset, dst.byteLength));
  }
  close(): void {}
}
