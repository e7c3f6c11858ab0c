// `tessera convert` and `tessera inspect` on the PyTorch-written fixtures.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it, vi } from 'vitest';

import { convertCommand } from '../lib/cli/convert.js';
import { inspectCommand } from '../lib/cli/inspect.js';
import { openCheckpoint } from '../lib/io/checkpoint.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../lib/io/convert-dtype.js';
import { detectFamily } from '../lib/io/detect.js';
import type { StoredTensor } from '../lib/io/stored-tensor.js';

const DIR = join(__dirname, 'fixtures', 'checkpoints');
const tmp = mkdtempSync(join(tmpdir(), 'tessera-conv-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('convert', () => {
  it('writes safetensors with the same tensors, and bf16 rounds like PyTorch', async () => {
    const out = join(tmp, 'a.safetensors');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    expect(await convertCommand.run([join(DIR, 'legacy.pt'), out, '--dtype', 'bf16'])).toBe(0);
    log.mockRestore();
    const src = openCheckpoint(join(DIR, 'legacy.pt'));
    const dst = openCheckpoint(out);
    expect([...dst.tensors.keys()].sort()).toEqual([...src.tensors.keys()].sort());
    const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, { values: number[] }>;
    for (const [name, t] of src.tensors) {
      const d = dst.tensors.get(name)!;
      if (t.dtype === 'float32') {
        expect(d.dtype).toBe('bfloat16');
        const bits = Array.from(d.load().data as Uint16Array);
        expect(bits).toEqual(expected[name]!.values.map((v) => f32ToBf16Bits(v)));
      } else if (t.dtype === 'bfloat16') {
        // Already bf16 in the source: the bits pass through unchanged.
        expect(Array.from(d.load().data as Uint16Array)).toEqual(expected[name]!.values);
      } else if (!t.dtype.startsWith('float')) {
        expect(d.dtype).toBe(t.dtype);
      }
    }
    src.close();
    dst.close();
  });

  it('bf16 rounding is round-to-nearest-even', () => {
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8))).toBe(1);
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
  });

  it('refuses a non-safetensors output with a clear code', async () => {
    await expect(convertCommand.run([join(DIR, 'legacy.pt'), join(tmp, 'x.bin')])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe('inspect and family detection', () => {
  const fake = (shapes: Record<string, number[]>): Map<string, StoredTensor> =>
    new Map(Object.entries(shapes).map(([name, shape]) => [name, { name, dtype: 'float32', shape, numel: shape.reduce((a, b) => a * b, 1), load: () => { throw new Error('not loaded'); } } as StoredTensor]));

  it('reads a small VAR architecture from shapes', () => {
    const C = 128;
    const d = detectFamily(fake({
      'class_emb.weight': [11, C], pos_1LC: [1, 30, C], 'word_embed.weight': [C, 8], 'head.weight': [64, C],
      'blocks.0.attn.mat_qkv.weight': [3 * C, C], 'blocks.0.attn.scale_mul_1H11': [1, 2, 1, 1], 'blocks.2.attn.mat_qkv.weight': [3 * C, C],
    }));
    expect(d.family).toBe('var');
    expect(d.facts).toMatchObject({ depth: 3, width: C, heads: 2, classes: 10, vocabulary: 64, tokens: 30, latentChannels: 8 });
  });

  it('reads a LlamaGen GPT and a VQ tokenizer', () => {
    expect(detectFamily(fake({ 'tok_embeddings.weight': [256, 96], 'cls_embedding.embedding_table.weight': [11, 96], 'layers.0.feed_forward.w1.weight': [256, 96], 'layers.3.attention.wqkv.weight': [288, 96] })).facts)
      .toMatchObject({ layers: 4, dim: 96, vocabulary: 256, classes: 10, ffnHidden: 256 });
    expect(detectFamily(fake({ 'quantize.embedding.weight': [512, 8], 'encoder.conv_in.weight': [32, 3, 3, 3], 'encoder.conv_blocks.2.res.0.conv1.weight': [1] })).family).toBe('llamagen-vq');
  });

  it('inspect prints tensors and the parameter count', async () => {
    const lines: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => { lines.push(s); });
    expect(await inspectCommand.run([join(DIR, 'plain_zip.pt'), '--json'])).toBe(0);
    log.mockRestore();
    const out = JSON.parse(lines.join('\n')) as { format: string; parameters: number; tensors: unknown[] };
    expect(out.format).toBe('torch-zip');
    expect(out.tensors.length).toBe(16);
    expect(out.parameters).toBe(15 + 5 + 28 + 8 + 6 + 9 + 10 + 3 + 4 + 2 + 2 + 2 + 2 + 3 + 1 + 0);
  });
});

describe('inspect on scenes', () => {
  it('names 3DGS scenes and point clouds with their counts', async () => {
    const { gaussiansToSpz } = await import('../lib/io/gaussian-formats.js');
    const { emptyScene } = await import('../lib/io/gaussian-scene.js');
    const { writeFileSync } = await import('node:fs');
    const spz = join(tmp, 's.spz');
    writeFileSync(spz, gaussiansToSpz(emptyScene(5, 2), 3));
    const ply = join(tmp, 'p.ply');
    writeFileSync(ply, 'ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n1 2 3\n');
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => { out.push(s); });
    expect(await inspectCommand.run([spz, '--json'])).toBe(0);
    expect(await inspectCommand.run([ply, '--json'])).toBe(0);
    log.mockRestore();
    const [a, b] = out.map((s) => JSON.parse(s) as Record<string, unknown>);
    expect(a).toMatchObject({ family: '3dgs-scene', gaussians: 5, shDegree: 2, format: 'spz' });
    expect(b).toMatchObject({ family: 'point-cloud', points: 2, max: [1, 2, 3] });
  });
});

describe('torch.save-format writer', () => {
  it('round-trips every dtype through the reader, with 64-byte aligned storages', async () => {
    const out = join(tmp, 'rt.pth');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    expect(await convertCommand.run([join(DIR, 'reference.safetensors'), out])).toBe(0);
    log.mockRestore();
    const a = openCheckpoint(join(DIR, 'reference.safetensors'));
    const b = openCheckpoint(out, { mmap: true });
    expect(b.format).toBe('torch-zip');
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    for (const [name, t] of a.tensors) {
      const x = t.load(), y = b.tensors.get(name)!.load();
      expect(y.dtype).toBe(x.dtype);
      expect(y.shape).toEqual(x.shape);
      expect(Array.from(y.data as ArrayLike<number | bigint>)).toEqual(Array.from(x.data as ArrayLike<number | bigint>));
      // Aligned storages load in place from the mapping.
      if (x.data.length > 0) expect(y.data.byteOffset % 64).toBe(0);
    }
    a.close();
    b.close();
  });
});
