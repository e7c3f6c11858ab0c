// `tessera convert <in> <out>`: checkpoints to safetensors (optionally bf16).
import { extname } from 'node:path';

import { TesseraError } from '../errors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { toBf16 } from '../io/convert-dtype.js';
import { readScene, writeScene } from '../io/scene-file.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeTorchCheckpoint } from '../io/torch-writer.js';
import { parseArgs, type Command } from './args.js';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a checkpoint to safetensors (optionally bf16), or a scene between .ply/.splat/.spz',
  usage: `Usage: tessera convert <in> <out.safetensors|out.pth> [--dtype bf16|keep]
       tessera convert <scene.ply|.splat|.spz> <out.ply|.splat|.spz>

Reads a PyTorch checkpoint (zip or legacy; restricted unpickler) or a
safetensors file and writes safetensors (or a torch.save-format .pth that
PyTorch loads) with the same tensor names. With
--dtype bf16, floating tensors are rounded to bfloat16 (round to nearest
even, as PyTorch does); integer tensors are kept. The output is written to a
temporary file and renamed, so an interrupted run never leaves a half file.

Scenes: 3DGS .ply (INRIA layout), antimatter15 .splat (no SH beyond DC:
higher bands are dropped) and Niantic .spz (versions 1-3 read, 3 written;
8-bit quantised, RUB frame in the file); ordinary .ply point clouds stay .ply.

Options:
  --dtype bf16|keep   tensor dtype in the output (default: keep)
  --help              show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['dtype']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const [input, output] = args.positional;
    if (!input || !output) { console.error(this.usage); return 2; }
    const dtype = (args.flags.get('dtype') as string | undefined) ?? 'keep';
    if (dtype !== 'keep' && dtype !== 'bf16') throw new TesseraError('ERR_INVALID_ARGUMENT', `--dtype must be bf16 or keep, got ${dtype}`);
    const sceneExt = ['.ply', '.splat', '.spz'];
    if (sceneExt.includes(extname(input).toLowerCase())) {
      if (!sceneExt.includes(extname(output).toLowerCase())) throw new TesseraError('ERR_INVALID_ARGUMENT', `a scene converts to .ply, .splat or .spz, not ${output}`);
      const scene = readScene(input);
      writeScene(output, scene);
      const n = scene.kind === 'gaussians' ? scene.scene.count : scene.cloud.count;
      console.log(`wrote ${n} ${scene.kind === 'gaussians' ? 'Gaussians' : 'points'} to ${output}`);
      return 0;
    }
    const toTorch = ['.pth', '.pt'].includes(extname(output).toLowerCase());
    if (extname(output) !== '.safetensors' && !toTorch) throw new TesseraError('ERR_INVALID_ARGUMENT', `a checkpoint converts to .safetensors (or .pth/.pt), not ${output}`);
    const ck = openCheckpoint(input);
    try {
      const out: TensorToWrite[] = [];
      for (const t of ck.tensors.values()) {
        const a = dtype === 'bf16' ? toBf16(t.load()) : t.load();
        out.push({ name: t.name, dtype: a.dtype, shape: a.shape, data: a.data });
      }
      if (toTorch) writeTorchCheckpoint(output, out);
      else writeSafetensors(output, out, { ...ck.metadata, converted_from: ck.format });
      console.log(`wrote ${out.length} tensors to ${output}`);
      return 0;
    } finally {
      ck.close();
    }
  },
};
