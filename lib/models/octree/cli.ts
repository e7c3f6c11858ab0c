// `tessera octree generate` and `tessera octree random-weights` (issue 7
// part 4): OctGPT generation from a checkpoint, and random weights in the
// official layout to run it without the released files.
import { writeFileSync } from 'node:fs';

import { TesseraError } from '../../errors.js';
import { openCheckpoint } from '../../io/checkpoint.js';
import { writeTorchCheckpoint } from '../../io/torch-writer.js';
import { octreePoints, octreePointsToPly, voxelMesh } from '../../octree/voxels.js';
import { meshFormatOf, writeMesh } from '../../octree/writers.js';
import { parseArgs } from '../../cli/args.js';
import { OctGpt } from './octgpt.js';
import { generateOctGpt } from './octgpt_generate.js';
import { OCTGPT_SHAPENET, randomOctGptTensors } from './octgpt_random.js';

export const GENERATE_USAGE = `Usage: tessera octree generate --weights <octgpt.pth> [--seed N] [--steps N|a,b,c,d]
         [--temperature t|a,b,c,d] [--top-k K] [--class C] [--out <voxels.obj|ply|glb>] [--points <out.ply>]
         [--codes <out.bin>] [--heads H] [--window K] [--dilation D] [--buffer B] [--full-depth F] [--depth-stop S] [--no-shift]

OctGPT token-parallel generation (spec octree.md §4): split flags depth by
depth from the full depth, then one BSQ code per node of the last token depth,
with the cosine schedule, temperature decay and remasking. One seed gives one
octree. The architecture comes from the checkpoint's shapes; heads, window,
dilation, buffer, full depth and depth stop are not in any shape (defaults: the released
ShapeNet model, 8 heads, window 2048, dilation 2, buffer 64, full depth 3,
depth stop = full depth + 3: the leaf-code depth, MODEL.depth_stop).
Unconditional and category (--class) checkpoints only.

  --steps             iterations per depth (default 64,128,128,256)
  --temperature       start temperature per depth (default 1.0,1.2,0.5,0.5)
  --top-k K           keep the K most likely values (1 = greedy; default off)
  --out <file>        the last depth's nodes as voxel cubes (.obj/.ply/.glb)
  --points <out.ply>  their cell centres
  --codes <out.bin>   the leaf codes, one byte per bit, [nodes, bits] row-major

The released VQVAE decoder (dual-octree graph net to depth 8 and the MPU
mesh) is not part of Tessera: the output is the octree and the codes.`;

export const RANDOM_USAGE = `Usage: tessera octree random-weights <out.pth> [--width C] [--heads H] [--blocks N] [--bits B]
         [--classes K] [--depths N] [--norm layer|rms] [--pos sin|abs] [--seed S] [--perturb]

Writes an OctGPT state dict with random weights in the official key layout
(torch.save zip format). Defaults: the released ShapeNet shape (width 768,
8 heads, 12 + 12 blocks, 32-bit codes, 4 depths, LayerNorm, SinPosEmb).`;

function num(f: Map<string, string | true>, name: string, dflt: number, lo: number, hi: number): number {
  const v = f.get(name);
  if (v === undefined) return dflt;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < lo || n > hi) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer in ${lo}..${hi}, got ${String(v)}`);
  return n;
}

function list(f: Map<string, string | true>, name: string, integer: boolean): number | number[] | undefined {
  const v = f.get(name);
  if (v === undefined) return undefined;
  const parts = typeof v === 'string' ? v.split(',').map((s) => Number(s.trim())) : [NaN];
  if (parts.some((x) => !Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))))
    throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be a positive ${integer ? 'integer' : 'number'} or a comma-separated list, got ${String(v)}`);
  return parts.length === 1 ? parts[0]! : parts;
}

function check(f: Map<string, string | true>, valued: string[], boolean: string[], usage: string): number | undefined {
  const unknown = [...f.keys()].filter((k) => !valued.includes(k) && !boolean.includes(k));
  if (unknown.length) { console.error(`tessera octree: unknown option --${unknown[0]}\n\n${usage}`); return 2; }
  return undefined;
}

export async function runGenerate(argv: string[]): Promise<number> {
  const VALUED = ['weights', 'seed', 'steps', 'temperature', 'top-k', 'class', 'out', 'points', 'codes', 'heads', 'window', 'dilation', 'buffer', 'full-depth', 'depth-stop'];
  const args = parseArgs(argv, VALUED);
  const f = args.flags;
  if (f.has('help')) { console.log(GENERATE_USAGE); return 0; }
  const bad = check(f, VALUED, ['help', 'no-shift'], GENERATE_USAGE);
  if (bad !== undefined) return bad;
  if (args.positional.length || typeof f.get('weights') !== 'string') {
    console.error(`tessera octree generate: --weights <file> is required (and no positional arguments)\n\n${GENERATE_USAGE}`);
    return 2;
  }
  for (const p of ['out', 'points', 'codes']) if (f.get(p) === true) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${p} needs a file`);
  const out = f.get('out') as string | undefined;
  if (out) meshFormatOf(out);
  const weights = f.get('weights') as string;
  const seedText = f.get('seed');
  let seed: bigint = 0n;
  if (seedText !== undefined) {
    if (typeof seedText !== 'string' || !/^\d+$/.test(seedText) || BigInt(seedText) >= 1n << 64n)
      throw new TesseraError('ERR_INVALID_ARGUMENT', `--seed must be an integer in 0..2^64-1, got ${String(seedText)}`);
    seed = BigInt(seedText);
  }
  const ckpt = openCheckpoint(weights);
  try {
    const model = OctGpt.load(ckpt.tensors, weights, {
      heads: f.has('heads') ? num(f, 'heads', 8, 1, 4096) : undefined,
      window: f.has('window') ? num(f, 'window', 2048, 2, 1 << 16) : undefined,
      dilation: f.has('dilation') ? num(f, 'dilation', 2, 1, 1024) : undefined,
      bufferSize: f.has('buffer') ? num(f, 'buffer', 64, 0, 4096) : undefined,
      fullDepth: f.has('full-depth') ? num(f, 'full-depth', 3, 1, 15) : undefined,
      depthStop: f.has('depth-stop') ? num(f, 'depth-stop', 6, 1, 16) : undefined,
      shiftWindows: !f.has('no-shift'),
    });
    const c = model.config;
    console.log(`octgpt: ${weights}: width ${c.width}, ${c.heads} heads, ${c.encoderBlocks}+${c.decoderBlocks} blocks, ${c.norm === 'layer' ? 'LayerNorm' : 'RMSNorm'}, ${c.posEmb === 'sin' ? 'SinPosEmb' : 'AbsPosEmb'}, ` +
      `${c.codeBits}-bit codes, ${c.classes} class(es); depths ${c.fullDepth}..${c.depthStop}, window ${c.window}, dilation ${c.dilation}, buffer ${c.bufferSize}`);
    const t0 = performance.now();
    const r = await generateOctGpt(model, {
      seed, steps: list(f, 'steps', true), temperatures: list(f, 'temperature', false),
      topK: num(f, 'top-k', 0, 0, 2), label: num(f, 'class', 0, 0, c.classes - 1),
    });
    const ms = performance.now() - t0;
    console.log(`generated in ${(ms / 1000).toFixed(1)} s (${r.forwardPasses} forward passes), seed ${seed}`);
    console.log('depth        nodes       split');
    const tree = r.octree;
    for (let d = c.fullDepth; d <= c.depthStop; d++)
      console.log(`${String(d).padStart(5)} ${String(tree.nnum[d]).padStart(12)} ${d < c.depthStop ? String(tree.nnumNonEmpty[d]).padStart(11) : '  (codes)'}`);
    if (out) {
      const m = voxelMesh(tree, c.depthStop);
      writeMesh(out, m);
      console.log(`voxels: ${out}: ${tree.nnum[c.depthStop]} cubes at depth ${c.depthStop}`);
    }
    const pointsPath = f.get('points') as string | undefined;
    if (pointsPath) {
      try { writeFileSync(pointsPath, octreePointsToPly(octreePoints(tree, c.depthStop))); } catch (e) { throw new TesseraError('ERR_IO', `cannot write ${pointsPath}: ${(e as Error).message}`); }
      console.log(`points: ${pointsPath}`);
    }
    const codesPath = f.get('codes') as string | undefined;
    if (codesPath) {
      try { writeFileSync(codesPath, r.codes); } catch (e) { throw new TesseraError('ERR_IO', `cannot write ${codesPath}: ${(e as Error).message}`); }
      console.log(`codes: ${codesPath}: ${r.codes.length / r.codeBits} × ${r.codeBits} bits`);
    }
    return 0;
  } finally {
    ckpt.close();
  }
}

export async function runRandomWeights(argv: string[]): Promise<number> {
  const VALUED = ['width', 'heads', 'blocks', 'bits', 'classes', 'depths', 'norm', 'pos', 'seed'];
  const args = parseArgs(argv, VALUED);
  const f = args.flags;
  if (f.has('help')) { console.log(RANDOM_USAGE); return 0; }
  const bad = check(f, VALUED, ['help', 'perturb'], RANDOM_USAGE);
  if (bad !== undefined) return bad;
  if (args.positional.length !== 1) { console.error(`tessera octree random-weights: one output file\n\n${RANDOM_USAGE}`); return 2; }
  const d = OCTGPT_SHAPENET;
  const norm = (f.get('norm') ?? 'layer') as string, pos = (f.get('pos') ?? 'sin') as string;
  if (norm !== 'layer' && norm !== 'rms') throw new TesseraError('ERR_INVALID_ARGUMENT', `--norm must be layer or rms, got ${norm}`);
  if (pos !== 'sin' && pos !== 'abs') throw new TesseraError('ERR_INVALID_ARGUMENT', `--pos must be sin or abs, got ${pos}`);
  const shape = {
    width: num(f, 'width', d.width, 6, 8192), heads: num(f, 'heads', d.heads, 1, 256), blocks: num(f, 'blocks', d.blocks, 1, 256),
    codeBits: num(f, 'bits', d.codeBits, 1, 64), classes: num(f, 'classes', 1, 1, 100000), depths: num(f, 'depths', 4, 1, 6),
    norm: norm as 'layer' | 'rms', posEmb: pos as 'sin' | 'abs', perturb: f.has('perturb'),
  };
  const path = args.positional[0]!;
  writeTorchCheckpoint(path, randomOctGptTensors(shape, num(f, 'seed', 1, 0, 2 ** 31)));
  console.log(`random OctGPT weights: ${path} (width ${shape.width}, ${shape.heads} heads, ${shape.blocks}+${shape.blocks} blocks, ${shape.codeBits}-bit codes, ${shape.depths} depths)`);
  return 0;
}
