// `tessera inspect <file>`: tensors, parameter count and the model family.
import { extname } from 'node:path';

import { openCheckpoint } from '../io/checkpoint.js';
import { detectFamily } from '../io/detect.js';
import { readScene, type SceneData } from '../io/scene-file.js';
import { parseArgs, type Command } from './args.js';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'describe a checkpoint (.pth/.pt/.safetensors) or a scene (.ply/.splat/.spz)',
  usage: `Usage: tessera inspect <file> [--json] [--limit N]

Reads a safetensors file or a PyTorch checkpoint (zip or legacy format; a
restricted unpickler that never runs code from the file) and prints each
tensor's name, dtype and shape, the parameter count, and the detected model
family (VAR, VAR's VQVAE, LlamaGen GPT, LlamaGen VQ) with the architecture
read from the shapes. For a scene file (.ply, .splat, .spz) it prints the
kind (3DGS scene or point cloud), the count, the SH degree and the bounds.

Options:
  --json      print one JSON object
  --limit N   print at most N tensors (default: all)
  --help      show this help`,
  async run(argv) {
    const args = parseArgs(argv, ['limit']);
    if (args.flags.has('help')) { console.log(this.usage); return 0; }
    const file = args.positional[0];
    if (!file) { console.error(this.usage); return 2; }
    if (['.ply', '.splat', '.spz'].includes(extname(file).toLowerCase())) return inspectScene(file, readScene(file), args.flags.has('json'));
    const ck = openCheckpoint(file);
    try {
      const det = detectFamily(ck.tensors);
      let params = 0;
      for (const t of ck.tensors.values()) params += t.numel;
      const limitFlag = args.flags.get('limit');
      const limit = typeof limitFlag === 'string' ? Number(limitFlag) : Infinity;
      const rows = [...ck.tensors.values()].slice(0, limit);
      if (args.flags.has('json')) {
        console.log(JSON.stringify({
          file, format: ck.format, family: det.family, description: det.description, architecture: det.facts,
          parameters: params, tensors: rows.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), metadata: ck.metadata,
        }, null, 2));
        return 0;
      }
      const w = Math.min(60, Math.max(4, ...rows.map((t) => t.name.length)));
      for (const t of rows) console.log(`${t.name.padEnd(w)}  ${t.dtype.padEnd(8)}  [${t.shape.join(', ')}]`);
      if (rows.length < ck.tensors.size) console.log(`... ${ck.tensors.size - rows.length} more`);
      console.log(`format:     ${ck.format}`);
      console.log(`tensors:    ${ck.tensors.size}`);
      console.log(`parameters: ${params} (${(params / 1e6).toFixed(2)}M)`);
      console.log(`family:     ${det.family} (${det.description})`);
      for (const [k, v] of Object.entries(det.facts)) console.log(`  ${k}: ${v}`);
      return 0;
    } finally {
      ck.close();
    }
  },
};

function bounds(xyz: Float32Array, n: number): { min: number[]; max: number[] } {
  const min = [Infinity, Infinity, Infinity], max = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n; ++i) for (let a = 0; a < 3; ++a) {
    const v = xyz[3 * i + a]!;
    if (v < min[a]!) min[a] = v;
    if (v > max[a]!) max[a] = v;
  }
  return { min, max };
}

function inspectScene(file: string, d: SceneData, json: boolean): number {
  const info = d.kind === 'gaussians'
    ? { file, format: d.format, family: '3dgs-scene', description: '3D Gaussian-splatting scene', gaussians: d.scene.count, shDegree: d.scene.shDegree, antialiased: d.scene.antialiased, ...bounds(d.scene.means, d.scene.count) }
    : { file, format: d.format, family: 'point-cloud', description: 'point cloud', points: d.cloud.count, normals: !!d.cloud.normals, colors: !!d.cloud.colors, ...bounds(d.cloud.positions, d.cloud.count) };
  if (json) { console.log(JSON.stringify(info, null, 2)); return 0; }
  for (const [k, v] of Object.entries(info)) console.log(`${(k + ':').padEnd(13)}${Array.isArray(v) ? `[${v.map((x) => x.toPrecision(4)).join(', ')}]` : String(v)}`);
  return 0;
}
