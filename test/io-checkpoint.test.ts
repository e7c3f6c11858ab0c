// Checkpoint loaders against fixtures written by PyTorch itself
// (scripts/reference/make_checkpoint_fixtures.py): every dtype, strided and
// shared storages, wrappers, the legacy format, and hostile files.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { openCheckpoint, openCheckpointSource } from '../lib/io/checkpoint.js';
import { unpickle } from '../lib/io/pickle.js';
import { writeSafetensors } from '../lib/io/safetensors.js';
import { MemorySource } from '../lib/io/source.js';
import type { HostArray } from '../lib/io/stored-tensor.js';

const DIR = join(__dirname, 'fixtures', 'checkpoints');
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>;

function values(a: HostArray): (number | string)[] {
  if (a.data instanceof BigInt64Array) return Array.from(a.data, (x) => x.toString());
  return Array.from(a.data as ArrayLike<number>);
}

function checkAll(path: string): void {
  const ck = openCheckpoint(path);
  try {
    expect([...ck.tensors.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, want] of Object.entries(expected)) {
      const t = ck.tensors.get(name)!;
      expect(t.dtype, name).toBe(want.dtype);
      expect([...t.shape], name).toEqual(want.shape);
      const got = values(t.load());
      if (want.dtype === 'float32') {
        // JSON carries the float32 values exactly as doubles.
        expect(got, name).toEqual(want.values);
      } else {
        expect(got, name).toEqual(want.values);
      }
    }
  } finally {
    ck.close();
  }
}

describe('PyTorch checkpoints', () => {
  it('reads the zip format with every dtype, strided views and shared storages', () => {
    checkAll(join(DIR, 'plain_zip.pt'));
  });

  it('unwraps {model: ...} and keeps the other entries as plain data', () => {
    const ck = openCheckpoint(join(DIR, 'wrapped_zip.pt'));
    expect(ck.format).toBe('torch-zip');
    expect(ck.tensors.size).toBe(Object.keys(expected).length);
    expect(ck.extras.get('steps')).toBe(1200);
    ck.close();
    checkAll(join(DIR, 'wrapped_zip.pt'));
  });

  it("unwraps the official VAR trainer's {trainer: {var_wo_ddp: ...}} checkpoints", () => {
    const ck = openCheckpoint(join(DIR, 'trainer_zip.pt'));
    expect(ck.tensors.size).toBe(Object.keys(expected).length);
    expect(ck.extras.get('epoch')).toBe(3);
    expect(ck.extras.has('vae_local')).toBe(true);
    ck.close();
    checkAll(join(DIR, 'trainer_zip.pt'));
  });

  it('reads the legacy (non-zip) format', () => {
    const ck = openCheckpoint(join(DIR, 'legacy.pt'));
    expect(ck.format).toBe('torch-legacy');
    ck.close();
    checkAll(join(DIR, 'legacy.pt'));
  });

  it('refuses a pickle that names os.system, and runs nothing', () => {
    const marker = '/tmp/tessera-pwned';
    rmSync(marker, { force: true });
    expect(() => openCheckpoint(join(DIR, 'evil_zip.pt'))).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE' }));
    const raw = readFileSync(join(DIR, 'evil.pkl'));
    expect(() => unpickle(raw, { globals: new Map(), what: 'evil.pkl' })).toThrow(/posix\.system|os\.system/);
    expect(existsSync(marker)).toBe(false);
  });

  it('rejects truncated and corrupted archives with ERR_FORMAT, never a crash', () => {
    const good = readFileSync(join(DIR, 'plain_zip.pt'));
    for (const cut of [0, 10, 100, good.length >> 1, good.length - 10]) {
      expect(() => openCheckpointSource(new MemorySource(good.subarray(0, cut)), `cut${cut}`).tensors.forEach((t) => t.load())).toThrow(
        expect.objectContaining({ code: expect.stringMatching(/ERR_FORMAT/) }),
      );
    }
  });

  it('survives random byte flips (fuzz): either loads or throws a TesseraError', () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const file of ['plain_zip.pt', 'legacy.pt', 'reference.safetensors']) {
      const good = readFileSync(join(DIR, file));
      for (let trial = 0; trial < 300; ++trial) {
        const bad = Uint8Array.from(good);
        const flips = 1 + Math.floor(rnd() * 8);
        for (let f = 0; f < flips; ++f) bad[Math.floor(rnd() * bad.length)] = Math.floor(rnd() * 256);
        try {
          const ck = openCheckpointSource(new MemorySource(bad), file);
          for (const t of ck.tensors.values()) t.load();
        } catch (err) {
          expect((err as { code?: string }).code, String(err)).toMatch(/^ERR_(FORMAT|UNSAFE)$/);
        }
      }
    }
  });
});

describe('safetensors', () => {
  it('reads a file written by an independent writer', () => {
    checkAll(join(DIR, 'reference.safetensors'));
    const ck = openCheckpoint(join(DIR, 'reference.safetensors'));
    expect(ck.metadata.format).toBe('pt');
    ck.close();
  });

  it('round-trips through the writer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-st-'));
    try {
      const src = openCheckpoint(join(DIR, 'plain_zip.pt'));
      const out = join(dir, 'out.safetensors');
      writeSafetensors(out, [...src.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.load().data })), { note: 'x' });
      src.close();
      const back = openCheckpoint(out);
      expect(back.metadata.note).toBe('x');
      back.close();
      checkAll(out);
      // The header is padded so that the data starts 8-byte aligned.
      const bytes = readFileSync(out);
      expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects overlapping, out-of-range and mis-sized entries', () => {
    const make = (header: object, dataLen: number): Uint8Array => {
      const h = new TextEncoder().encode(JSON.stringify(header));
      const b = new Uint8Array(8 + h.length + dataLen);
      new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
      b.set(h, 8);
      return b;
    };
    const cases: Array<[object, number, RegExp]> = [
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12, /overlaps/],
      [{ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8, /outside/],
      [{ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8, /needs 12/],
      [{ a: { dtype: 'X9', shape: [1], data_offsets: [0, 1] } }, 1, /unsupported dtype/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8, /gap/],
      [{ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 0, /bad dimension/],
    ];
    for (const [h, n, re] of cases) {
      expect(() => openCheckpointSource(new MemorySource(make(h, n)), 'case')).toThrow(re);
    }
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 60n, true);
    expect(() => openCheckpointSource(new MemorySource(huge), 'huge')).toThrow(expect.objectContaining({ code: 'ERR_FORMAT' }));
  });
});

describe('memory-mapped loading', () => {
  it('gives the same tensors as positioned reads, as zero-copy views when aligned', () => {
    for (const file of ['plain_zip.pt', 'reference.safetensors', 'legacy.pt']) {
      const mapped = openCheckpoint(join(DIR, file), { mmap: true });
      const read = openCheckpoint(join(DIR, file), { mmap: false });
      const size = readFileSync(join(DIR, file)).byteLength;
      let views = 0;
      for (const [name, t] of mapped.tensors) {
        const a = t.load();
        expect(values(a), `${file}:${name}`).toEqual(values(read.tensors.get(name)!.load()));
        if (a.data.buffer.byteLength === size) views++;
      }
      // torch.save aligns storages to 64 bytes, so its tensors load in place.
      if (file === 'plain_zip.pt') expect(views).toBeGreaterThan(10);
      mapped.close();
      read.close();
    }
  });

  it('writing through a view never changes the file', () => {
    const path = join(DIR, 'plain_zip.pt');
    const before = readFileSync(path);
    const ck = openCheckpoint(path, { mmap: true });
    const a = ck.tensors.get('blocks.0.weight')!.load();
    (a.data as Float32Array).fill(123);
    ck.close();
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(values(openCheckpoint(path, { mmap: true }).tensors.get('blocks.0.weight')!.load())).toEqual(expected['blocks.0.weight']!.values);
  });

  it('a missing file is ERR_IO', () => {
    expect(() => openCheckpoint(join(DIR, 'nope.pt'))).toThrow(expect.objectContaining({ code: 'ERR_IO' }));
  });
});
