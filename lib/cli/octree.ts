// `tessera octree <points.ply> --depth D --full-depth F [--json <out.json>]
// [--neighbors] [--mesh <out.obj>]` (issue 7 part 6): builds the octree of a
// point cloud, prints the per-depth node counts and the points outside the
// box, and optionally writes the levels as JSON (with the 27-slot neighbour
// tables) and a marching-cubes mesh of the leaves.
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';

import { TesseraError } from '../errors.js';
import { pointCloudFromPly } from '../io/point-cloud.js';
import { parsePly } from '../io/ply.js';
import { hasNativeMarchingCubes, marchingCubesAsync } from '../octree/mesh.js';
import { Octree } from '../octree/octree.js';
import { octreePoints, octreePointsToPly, voxelMesh } from '../octree/voxels.js';
import { meshFormatOf, writeMesh } from '../octree/writers.js';
import { runGenerate, runRandomWeights } from '../models/octree/cli.js';
import { parseArgs, type Command } from './args.js';

const VALUED = ['depth', 'full-depth', 'json', 'mesh', 'voxels', 'points', 'radius'];
const BOOLEAN = ['neighbors', 'help'];

function intFlag(f: Map<string, string | true>, name: string, lo: number, hi: number): number {
  const v = f.get(name);
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < lo || n > hi) throw new TesseraError('ERR_INVALID_ARGUMENT', `--${name} must be an integer in ${lo}..${hi}, got ${String(v)}`);
  return n;
}

/** Writes the contract's JSON in pieces (the arrays can be large). */
async function writeJson(path: string, tree: Octree, neighbors: boolean): Promise<void> {
  let fd: number;
  try { fd = openSync(path, 'w'); } catch (e) { throw new TesseraError('ERR_IO', `cannot write ${path}: ${(e as Error).message}`); }
  try {
    const put = (s: string) => { writeSync(fd, s); };
    const putArray = (a: ArrayLike<number | bigint>) => {
      put('[');
      const CH = 1 << 16;
      for (let i = 0; i < a.length; i += CH) {
        const parts: string[] = [];
        for (let j = i; j < Math.min(a.length, i + CH); j++) parts.push(String(a[j]));
        put((i ? ',' : '') + parts.join(','));
      }
      put(']');
    };
    put(`{"depth":${tree.depth},"fullDepth":${tree.fullDepth},"levels":[`);
    for (let d = 0; d <= tree.depth; d++) {
      const l = tree.level(d);
      const keys = new Array<bigint>(l.nnum);
      for (let i = 0; i < l.nnum; i++) keys[i] = BigInt.asUintN(48, l.keys[i]!);  // without batch bits
      put(`${d ? ',' : ''}{"depth":${d},"keys":`);
      putArray(keys);
      put(',"children":');
      putArray(l.children);
      put(`,"nnum":${l.nnum},"nnumNonEmpty":${l.nnumNonEmpty}`);
      if (neighbors) {
        const t = await tree.neighbors(d);
        put(',"neighbors":');
        putArray(t.data);
      }
      put('}');
    }
    put(']}\n');
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw new TesseraError('ERR_IO', `cannot write ${path}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

export const octreeCommand: Command = {
  name: 'octree',
  summary: 'build the octree of a point cloud (JSON levels, neighbours, mesh); OctGPT generate',
  usage: `Usage: tessera octree <points.ply> --depth D --full-depth F [--json <out.json>] [--neighbors] [--mesh <out.obj>]
         [--voxels <out.obj>] [--points <out.ply>] [--radius <cells>]
       tessera octree generate --weights <octgpt.pth> [--seed N] [--steps ...] [--out <voxels.obj>]   (--help for more)
       tessera octree random-weights <out.pth> [--width C] [--heads H] [--blocks N] ...           (--help for more)

Builds the octree of the PLY point cloud (ocnn conventions: points in
[-1, 1]^3; points outside are left out and counted) and prints the node
counts of every depth.

  --depth D           octree depth, 1..16
  --full-depth F      dense depths 0..F, 0..D
  --json <out.json>   {"depth":D,"fullDepth":F,"levels":[{"depth":d,"keys":[...],
                      "children":[...],"nnum":n,"nnumNonEmpty":m[,"neighbors":[...]]}]}
                      for d = 0..D; keys without batch bits, children -1 for empty
  --neighbors         add each depth's neighbour table to the JSON: 27 ints per
                      node, slot 9(dx+1)+3(dy+1)+(dz+1), -1 where missing
  --mesh <out>        marching cubes of the point-to-plane SDF of the depth-D
                      leaves, evaluated only near them (needs normals nx ny nz in
                      the PLY); .obj, .ply (binary) or .glb (glTF 2.0)
  --radius <cells>    SDF support radius in depth-D cells, 1..4 (default 2)
  --voxels <out>      the depth-D leaves as cubes (exposed faces); .obj/.ply/.glb
  --points <out.ply>  leaf centres with normals and features`,
  async run(argv) {
    // Subcommands; a point cloud literally named so can be given as ./generate.
    if (argv[0] === 'generate') return runGenerate(argv.slice(1));
    if (argv[0] === 'random-weights') return runRandomWeights(argv.slice(1));
    const args = parseArgs(argv, VALUED);
    const f = args.flags;
    if (f.has('help')) { console.log(this.usage); return 0; }
    const unknown = [...f.keys()].filter((k) => !VALUED.includes(k) && !BOOLEAN.includes(k));
    if (unknown.length) { console.error(`tessera octree: unknown option --${unknown[0]}\n\n${this.usage}`); return 2; }
    for (const k of VALUED) if (f.get(k) === true) { console.error(`tessera octree: --${k} needs a value`); return 2; }
    if (args.positional.length !== 1 || !f.has('depth') || !f.has('full-depth')) {
      console.error(`tessera octree: one point cloud, --depth and --full-depth are required\n\n${this.usage}`);
      return 2;
    }
    const depth = intFlag(f, 'depth', 1, 16);
    const fullDepth = intFlag(f, 'full-depth', 0, depth);
    if (f.has('neighbors') && !f.has('json'))
      throw new TesseraError('ERR_INVALID_ARGUMENT', '--neighbors adds the neighbour tables to the JSON: give --json <out.json>');
    const meshPath = f.get('mesh') as string | undefined, voxelPath = f.get('voxels') as string | undefined;
    const radius = f.has('radius') ? Number(f.get('radius')) : 2;
    if (!(radius >= 1 && radius <= 4)) throw new TesseraError('ERR_INVALID_ARGUMENT', `--radius must be 1..4 cells, got ${String(f.get('radius'))}`);
    if (meshPath) meshFormatOf(meshPath);
    if (voxelPath) meshFormatOf(voxelPath);

    const path = args.positional[0]!;
    let bytes: Uint8Array;
    try { bytes = readFileSync(path); } catch (e) { throw new TesseraError('ERR_IO', `cannot read ${path}: ${(e as Error).message}`); }
    const cloud = pointCloudFromPly(parsePly(bytes, path), path);
    if (cloud.count === 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `${path}: the point cloud is empty`);
    if (meshPath && !cloud.normals) throw new TesseraError('ERR_INVALID_ARGUMENT', `${path}: --mesh needs per-point normals (nx, ny, nz) to orient the surface`);

    const t0 = performance.now();
    const { octree: tree, report } = await Octree.build({ points: cloud.positions, normals: cloud.normals, depth, fullDepth });
    const buildMs = performance.now() - t0;
    console.log(`octree: ${path}: ${cloud.count} points, ${report.pointsUsed} used, ${report.pointsOutside} outside [-1, 1]^3 (left out); depth ${depth}, full depth ${fullDepth}; built in ${buildMs.toFixed(1)} ms`);
    console.log('depth        nnum   non-empty');
    for (let d = 0; d <= depth; d++) console.log(`${String(d).padStart(5)} ${String(tree.nnum[d]).padStart(11)} ${String(tree.nnumNonEmpty[d]).padStart(11)}`);
    if (report.pointsUsed === 0) throw new TesseraError('ERR_INVALID_ARGUMENT', `${path}: no point lies inside [-1, 1]^3 (scale the cloud into the box)`);

    const jsonPath = f.get('json') as string | undefined;
    if (jsonPath) {
      await writeJson(jsonPath, tree, f.has('neighbors'));
      console.log(`json: ${jsonPath} (levels 0..${depth}${f.has('neighbors') ? ', 27-slot neighbours' : ''})`);
    }
    if (meshPath) {
      const t1 = performance.now();
      const { mesh, stats } = await marchingCubesAsync(tree, { radius });
      const ms = performance.now() - t1;
      const size = writeMesh(meshPath, mesh);
      console.log(`mesh: ${meshPath}: ${mesh.positions.length / 3} vertices, ${mesh.indices.length / 3} triangles, ${stats.boundaryEdges === 0 ? 'closed' : `${stats.boundaryEdges} open edges`}; ` +
        `${stats.corners} SDF corners near ${stats.leaves} leaves (dense grid: ${((2 ** depth + 1) ** 3).toExponential(2)}); ${ms.toFixed(0)} ms (${hasNativeMarchingCubes() ? 'native' : 'TypeScript'}), ${size} bytes`);
    }
    if (voxelPath) {
      const m = voxelMesh(tree, depth);
      writeMesh(voxelPath, m);
      console.log(`voxels: ${voxelPath}: ${tree.nnumNonEmpty[depth]} cubes, ${m.indices.length / 6} exposed faces`);
    }
    const pointsPath = f.get('points') as string | undefined;
    if (pointsPath) {
      const p = octreePoints(tree, depth);
      try { writeFileSync(pointsPath, octreePointsToPly(p)); } catch (e) { throw new TesseraError('ERR_IO', `cannot write ${pointsPath}: ${(e as Error).message}`); }
      console.log(`points: ${pointsPath}: ${p.positions.length / 3} leaf centres`);
    }
    return 0;
  },
};
