// Octrees in ocnn's layout (native/include/tessera/octree.h): keys with the
// batch id in bits 48-62 (x in key bit 3i+2, y in 3i+1, z in 3i), per-depth
// sorted nodes, children -1 for empty, dense depths 0..fullDepth. Plain data:
// every array is a TypedArray the native ops read in place.
import { fail } from '../errors.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';

export interface OctreeLevel {
  /** All nodes of the depth, sorted; batch id in bits 48-62. */
  readonly keys: BigInt64Array;
  /** Rank among the non-empty nodes, or -1 (int32). */
  readonly children: Int32Array;
  readonly nnum: number;
  readonly nnumNonEmpty: number;
  /** Per-sample node counts. */
  readonly batchNnum: readonly number[];
  readonly batchNnumNonEmpty: readonly number[];
}

export interface BuildReport {
  pointsUsed: number;
  /** Points outside [-1, 1]^3 (left out, never silently). */
  pointsOutside: number;
  outsidePerSample: readonly number[];
  /** Non-empty depth-D node of each input point, -1 if it was left out. */
  pointNode: Int32Array;
}

export type NeighborKernel = '333' | '222' | '311' | '131' | '113' | '331' | '313' | '133';
const KERNELS: readonly NeighborKernel[] = ['333', '222', '311', '131', '113', '331', '313', '133'];

export interface NeighborTable { rows: number; cols: number; data: Int32Array }

interface OctreeData {
  depth: number; fullDepth: number; batchSize: number; levels: OctreeLevel[];
  points?: Float32Array; normals?: Float32Array; features?: Float32Array; featureChannels: number;
}

interface OctreeNative {
  octreeBuild(a: Record<string, unknown>): Promise<OctreeData & { report: BuildReport }>;
  octreeMerge(parts: OctreeData[]): Promise<OctreeData>;
  octreeSplit(a: Record<string, unknown>): Promise<OctreeLevel>;
  octreeGrow(a: Record<string, unknown>): Promise<OctreeLevel>;
  octreeSearchKeys(a: Record<string, unknown>): Promise<Int32Array>;
  octreeNeighbors(a: Record<string, unknown>): Promise<NeighborTable>;
  octreeInputFeatures(a: Record<string, unknown>): Promise<{ rows: number; channels: number; data: Float32Array }>;
}
export const octreeNative = (): OctreeNative => native() as unknown as OctreeNative;

export interface BuildOptions {
  /** [N, 3] positions in [-1, 1]^3 (ocnn convention). */
  points: Float32Array;
  normals?: Float32Array;
  /** [N, C] extra per-point features. */
  features?: Float32Array;
  /** Per-point sample index, int32 in [0, batchSize). */
  batchIds?: Int32Array;
  batchSize?: number;
  /** 1..16. */
  depth: number;
  /** 0..depth; ocnn's default 2. */
  fullDepth?: number;
  /** Points outside the box: 'drop' (default; counted in the report) or 'error'. */
  outside?: 'drop' | 'error';
}

export class Octree implements OctreeData {
  readonly depth: number;
  readonly fullDepth: number;
  readonly batchSize: number;
  readonly levels: OctreeLevel[];
  readonly points?: Float32Array;
  readonly normals?: Float32Array;
  readonly features?: Float32Array;
  readonly featureChannels: number;

  private constructor(d: OctreeData) {
    this.depth = d.depth;
    this.fullDepth = d.fullDepth;
    this.batchSize = d.batchSize;
    this.levels = d.levels;
    this.featureChannels = d.featureChannels;
    if (d.points) this.points = d.points;
    if (d.normals) this.normals = d.normals;
    if (d.features) this.features = d.features;
  }

  /** Builds an octree from one (batched) point cloud; the report counts points outside the box. */
  static async build(opts: BuildOptions): Promise<{ octree: Octree; report: BuildReport }> {
    const n = opts.points.length / 3;
    if (!(opts.points instanceof Float32Array) || !Number.isInteger(n))
      fail('ERR_SHAPE', 'points must be a Float32Array of N·3 values');
    const channels = opts.features ? opts.features.length / Math.max(n, 1) : 0;
    if (opts.features && (!Number.isInteger(channels) || channels < 1))
      fail('ERR_SHAPE', `features hold ${opts.features.length} values, not a multiple of the ${n} points`);
    if (opts.outside !== undefined && opts.outside !== 'drop' && opts.outside !== 'error')
      fail('ERR_INVALID_ARGUMENT', `outside must be 'drop' or 'error'`);
    const r = await octreeNative().octreeBuild({
      points: Tensor.from(opts.points, [n, 3]).native(),
      normals: opts.normals ? Tensor.from(opts.normals, [opts.normals.length / 3 | 0, 3]).native() : undefined,
      features: opts.features ? Tensor.from(opts.features, [n, channels]).native() : undefined,
      batchIds: opts.batchIds ? Tensor.from(opts.batchIds, [opts.batchIds.length]).native() : undefined,
      depth: opts.depth, fullDepth: opts.fullDepth ?? 2, batchSize: opts.batchSize ?? 1,
      outside: opts.outside === 'error' ? 1 : 0,
    });
    return { octree: new Octree(r), report: r.report };
  }

  /** One batch from several octrees of equal depth and full depth (ocnn merge_octrees). */
  static async merge(octrees: readonly Octree[]): Promise<Octree> {
    if (octrees.length === 0) fail('ERR_INVALID_ARGUMENT', 'merge needs at least one octree');
    return new Octree(await octreeNative().octreeMerge([...octrees]));
  }

  level(depth: number): OctreeLevel {
    if (!Number.isInteger(depth) || depth < 0 || depth > this.depth)
      fail('ERR_INVALID_ARGUMENT', `depth must be 0..${this.depth}, got ${depth}`);
    return this.levels[depth]!;
  }

  /** Per-depth node counts (all nodes, non-empty nodes): the first thing to print when a tree looks wrong. */
  get nnum(): number[] { return this.levels.map((l) => l.nnum); }
  get nnumNonEmpty(): number[] { return this.levels.map((l) => l.nnumNonEmpty); }

  /**
   * Generators (ocnn octree_split + octree_grow): sets the split flags of depth d
   * (non-zero = split; node 0 splits if none does) and creates depth d+1 with
   * the 8 children of every split node. Returns a new octree of depth >= d+1;
   * depths below d are shared, deeper ones are dropped, and so are the signals.
   */
  async split(depth: number, flags: Int32Array): Promise<Octree> {
    const lvl = this.level(depth);
    const nat = octreeNative();
    const split = await nat.octreeSplit({ level: lvl, flags, batchSize: this.batchSize });
    const grown = await nat.octreeGrow({ level: split, batchSize: this.batchSize });
    return new Octree({
      depth: depth + 1, fullDepth: this.fullDepth, batchSize: this.batchSize,
      levels: [...this.levels.slice(0, depth), split, grown], featureChannels: 0,
    });
  }

  /** Node index of each key (batch bits included) at `depth`, or -1. */
  searchKeys(depth: number, queries: BigInt64Array): Promise<Int32Array> {
    return octreeNative().octreeSearchKeys({ level: this.level(depth), queries });
  }

  /** Neighbour table of `depth` (ocnn get_neigh): slot 9(dx+1)+3(dy+1)+(dz+1), -1 where missing. */
  neighbors(depth: number, opts: { kernel?: NeighborKernel; stride?: 1 | 2; nempty?: boolean } = {}): Promise<NeighborTable> {
    const kernel = KERNELS.indexOf(opts.kernel ?? '333');
    if (kernel < 0) fail('ERR_INVALID_ARGUMENT', `kernel must be one of ${KERNELS.join(', ')}`);
    return octreeNative().octreeNeighbors({ octree: this, depth, kernel, stride: opts.stride ?? 1, nempty: opts.nempty ?? false });
  }

  /**
   * ocnn get_input_feature: letters of 'NDLPF' (normals 3, displacement 1,
   * local 3, global 3, features C), either case as ocnn (which upper-cases
   * the string), always emitted in that order. [rows, C]
   * rows = non-empty depth-D nodes (nempty) or all of them (zeros for empty).
   */
  async inputFeatures(feature: string, nempty = false): Promise<Tensor> {
    if (typeof feature !== 'string') fail('ERR_INVALID_ARGUMENT', `feature must be a string of 'NDLPF' letters`);
    const r = await octreeNative().octreeInputFeatures({ octree: this, feature: feature.toUpperCase(), nempty });
    return Tensor.from(r.data, [r.rows, r.channels]);
  }

  /** Batch id of each node of `depth` (or of its non-empty nodes). */
  batchIds(depth: number, nempty = false): Int32Array {
    const l = this.level(depth);
    const out = new Int32Array(nempty ? l.nnumNonEmpty : l.nnum);
    let j = 0;
    for (let i = 0; i < l.nnum; i++)
      if (!nempty || l.children[i]! >= 0) out[j++] = Number(l.keys[i]! >> 48n);
    return out;
  }

  /** Cell coordinates [n, 3] of the nodes of `depth` (or its non-empty nodes), decoded from the keys. */
  xyz(depth: number, nempty = false): Int32Array {
    const l = this.level(depth);
    const out = new Int32Array((nempty ? l.nnumNonEmpty : l.nnum) * 3);
    let j = 0;
    for (let i = 0; i < l.nnum; i++) {
      if (nempty && l.children[i]! < 0) continue;
      const k = l.keys[i]!;
      const lo = Number(k & 0xffffffn), hi = Number((k >> 24n) & 0xffffffn);  // 8 levels each
      let x = 0, y = 0, z = 0;
      for (let b = 0; b < 8; b++) {
        x |= ((lo >> (3 * b + 2)) & 1) << b | ((hi >> (3 * b + 2)) & 1) << (b + 8);
        y |= ((lo >> (3 * b + 1)) & 1) << b | ((hi >> (3 * b + 1)) & 1) << (b + 8);
        z |= ((lo >> (3 * b)) & 1) << b | ((hi >> (3 * b)) & 1) << (b + 8);
      }
      out[j++] = x; out[j++] = y; out[j++] = z;
    }
    return out;
  }
}
