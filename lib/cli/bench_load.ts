// `tessera bench load`: how fast a VAR-d16-size checkpoint (1.2 GB fp32)
// written by Tessera's own writers loads, against the floor of reading its
// bytes once at the copy bandwidth measured in the same run.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openCheckpoint } from '../io/checkpoint.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeTorchCheckpoint } from '../io/torch-writer.js';
import { native } from '../native.js';
import { getThreads } from '../runtime.js';
import { median } from '../bench/timing.js';
import { parseArgs, type Command } from './args.js';

/** VAR-d16's transformer tensors (C = 1024, 16 blocks, 680 tokens), random contents. */
function d16Tensors(depth: number): TensorToWrite[] {
  const C = 64 * depth, out: TensorToWrite[] = [];
  let seed = 1;
  const t = (name: string, shape: number[]): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i += 97) data[i] = ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) - 0.5;
    out.push({ name, dtype: 'float32', shape, data });
  };
  t('class_emb.weight', [1001, C]); t('pos_start', [1, 1, C]); t('pos_1LC', [1, 680, C]); t('lvl_embed.weight', [10, C]);
  t('word_embed.weight', [C, 32]); t('word_embed.bias', [C]);
  for (let b = 0; b < depth; ++b) {
    const p = `blocks.${b}.`;
    t(`${p}attn.mat_qkv.weight`, [3 * C, C]); t(`${p}attn.q_bias`, [C]); t(`${p}attn.v_bias`, [C]); t(`${p}attn.scale_mul_1H11`, [1, depth, 1, 1]);
    t(`${p}attn.proj.weight`, [C, C]); t(`${p}attn.proj.bias`, [C]);
    t(`${p}ffn.fc1.weight`, [4 * C, C]); t(`${p}ffn.fc1.bias`, [4 * C]); t(`${p}ffn.fc2.weight`, [C, 4 * C]); t(`${p}ffn.fc2.bias`, [C]);
    t(`${p}ada_lin.1.weight`, [6 * C, C]); t(`${p}ada_lin.1.bias`, [6 * C]);
  }
  t('head_nm.ada_lin.1.weight', [2 * C, C]); t('head_nm.ada_lin.1.bias', [2 * C]); t('head.weight', [4096, C]); t('head.bias', [4096]);
  return out;
}

/** Opens the file, loads every tensor and reads one float per 4 KiB page of each. */
function loadAll(path: string): { ms: number; bytes: number; sum: number } {
  const t0 = process.hrtime.bigint();
  const ck = openCheckpoint(path);
  let bytes = 0, sum = 0;
  for (const t of ck.tensors.values()) {
    const a = t.load().data as Float32Array;
    bytes += a.byteLength;
    for (let i = 0; i < a.length; i += 1024) sum += a[i]!;
  }
  ck.close();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes, sum };
}

export const benchLoadCommand: Command = {
  name: 'load',
  summary: 'checkpoint loading (safetensors and torch zip, VAR-d16 size) vs the copy-bandwidth floor',
  usage: `Usage: tessera bench load [--depth 16] [--runs 7] [--dir <tmp>] [--json]

Writes a VAR-d<depth>-shaped fp32 checkpoint (d16: about 1.2 GB) with Tessera's
safetensors writer and its torch.save-format writer, then times opening it,
loading every tensor (zero-copy views of a private mapping where aligned) and
reading one float per 4 KiB page, with a warm page cache. Prints the time
against the floor file size / copy bandwidth (measured in the same run).`,
  async run(argv) {
    const args = parseArgs(argv, ['depth', 'runs', 'dir']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const depth = Number(args.flags.get('depth') ?? 16), runs = Number(args.flags.get('runs') ?? 7);
    const dir = mkdtempSync(join((args.flags.get('dir') as string | undefined) ?? tmpdir(), 'tessera-bench-load-'));
    try {
      const tensors = d16Tensors(depth);
      const files = { safetensors: join(dir, 'var.safetensors'), 'torch-zip': join(dir, 'var.pth') };
      writeSafetensors(files.safetensors, tensors);
      writeTorchCheckpoint(files['torch-zip'], tensors);
      tensors.length = 0;
      const size = statSync(files.safetensors).size;
      const gbs = await native().measureCopyBandwidth(getThreads(), 256 << 20);
      const floorMs = (size / (gbs * 1e9)) * 1e3;
      const rows: Record<string, unknown>[] = [];
      for (const [format, path] of Object.entries(files)) {
        loadAll(path); // warm the page cache
        const ms = median(Array.from({ length: runs }, () => loadAll(path).ms));
        rows.push({ format, bytes: statSync(path).size, ms, floorMs, ratio: ms / floorMs });
      }
      if (args.flags.has('json')) { console.log(JSON.stringify({ copyBandwidthGBs: gbs, rows }, null, 2)); return 0; }
      console.log(`VAR-d${depth}-size fp32 checkpoint, ${(size / 1e9).toFixed(2)} GB; copy bandwidth ${gbs.toFixed(1)} GB/s (read+write) → floor ${floorMs.toFixed(1)} ms`);
      for (const r of rows) console.log(`${String(r.format).padEnd(12)} ${(r.ms as number).toFixed(1).padStart(8)} ms   ${(r.ratio as number).toFixed(2)}× the floor`);
      return 0;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
