// glTF 2.0 binary (GLB) for one triangle mesh: a 12-byte header ('glTF',
// version 2, total length), a JSON chunk (padded with spaces to 4 bytes) and
// a BIN chunk (padded with zeros) holding POSITION and NORMAL (float32 VEC3,
// min/max set on POSITION as the spec requires, and on NORMAL) and uint32
// indices, one bufferView each. The reader checks the same structure and
// returns the arrays (used by tests and round trips).
import { TesseraError } from '../errors.js';
import type { TriangleMesh } from './obj.js';

const MAGIC = 0x46546c67, JSON_CHUNK = 0x4e4f534a, BIN_CHUNK = 0x004e4942;
const FLOAT = 5126, UINT = 5125;

function minMax(a: Float32Array): { min: number[]; max: number[] } {
  const min = [Infinity, Infinity, Infinity], max = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < a.length; i++) { const k = i % 3; if (a[i]! < min[k]!) min[k] = a[i]!; if (a[i]! > max[k]!) max[k] = a[i]!; }
  if (a.length === 0) return { min: [0, 0, 0], max: [0, 0, 0] };
  return { min, max };
}

export function meshToGlb(m: TriangleMesh, generator = 'tessera'): Uint8Array {
  const vcount = m.positions.length / 3;
  if (!Number.isInteger(vcount) || (m.normals && m.normals.length !== m.positions.length) || m.indices.length % 3 !== 0)
    throw new TesseraError('ERR_SHAPE', 'GLB: positions/normals must be [V, 3] and indices [T, 3]');
  if (vcount === 0 || m.indices.length === 0) throw new TesseraError('ERR_INVALID_ARGUMENT', 'GLB: the mesh is empty (glTF buffers must not be empty)');
  for (let i = 0; i < m.indices.length; i++) if (m.indices[i]! >= vcount) throw new TesseraError('ERR_SHAPE', `GLB: index ${m.indices[i]} out of range (${vcount} vertices)`);
  const views: { data: Uint8Array; target: number }[] = [];
  const bytes = (a: Float32Array | Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  views.push({ data: bytes(m.positions), target: 34962 });
  if (m.normals) views.push({ data: bytes(m.normals), target: 34962 });
  views.push({ data: bytes(m.indices), target: 34963 });
  let off = 0;
  const bufferViews = views.map((v) => { const bv = { buffer: 0, byteOffset: off, byteLength: v.data.byteLength, target: v.target }; off += (v.data.byteLength + 3) & ~3; return bv; });
  const binLength = off;
  const accessors: object[] = [{ bufferView: 0, componentType: FLOAT, count: vcount, type: 'VEC3', ...minMax(m.positions) }];
  const attributes: Record<string, number> = { POSITION: 0 };
  if (m.normals) { accessors.push({ bufferView: 1, componentType: FLOAT, count: vcount, type: 'VEC3', ...minMax(m.normals) }); attributes.NORMAL = 1; }
  accessors.push({ bufferView: views.length - 1, componentType: UINT, count: m.indices.length, type: 'SCALAR' });
  const gltf = {
    asset: { version: '2.0', generator },
    scene: 0, scenes: [{ nodes: [0] }], nodes: [{ mesh: 0 }],
    meshes: [{ primitives: [{ attributes, indices: accessors.length - 1, mode: 4 }] }],
    accessors, bufferViews, buffers: [{ byteLength: binLength }],
  };
  let json = new TextEncoder().encode(JSON.stringify(gltf));
  const jsonPadded = (json.byteLength + 3) & ~3;
  const total = 12 + 8 + jsonPadded + 8 + binLength;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true); dv.setUint32(4, 2, true); dv.setUint32(8, total, true);
  dv.setUint32(12, jsonPadded, true); dv.setUint32(16, JSON_CHUNK, true);
  out.set(json, 20); out.fill(0x20, 20 + json.byteLength, 20 + jsonPadded);
  json = new Uint8Array(0);
  const binAt = 20 + jsonPadded;
  dv.setUint32(binAt, binLength, true); dv.setUint32(binAt + 4, BIN_CHUNK, true);
  views.forEach((v, i) => out.set(v.data, binAt + 8 + bufferViews[i]!.byteOffset));
  return out;
}

export interface ParsedGlb extends TriangleMesh {
  json: Record<string, unknown>;
}

/** Reads a GLB with one triangle primitive (POSITION, optional NORMAL, indices). */
export function parseGlb(bytes: Uint8Array, what = 'GLB'): ParsedGlb {
  const bad = (why: string): never => { throw new TesseraError('ERR_FORMAT', `${what}: invalid GLB: ${why}`); };
  if (bytes.byteLength < 20) bad('shorter than a header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) bad('no glTF magic');
  if (dv.getUint32(4, true) !== 2) bad(`version ${dv.getUint32(4, true)}, not 2`);
  if (dv.getUint32(8, true) !== bytes.byteLength) bad(`header length ${dv.getUint32(8, true)} != file length ${bytes.byteLength}`);
  const jl = dv.getUint32(12, true);
  if (dv.getUint32(16, true) !== JSON_CHUNK || jl % 4 || 20 + jl > bytes.byteLength) bad('first chunk is not a 4-byte aligned JSON chunk');
  let json: Record<string, any>;
  try { json = JSON.parse(new TextDecoder().decode(bytes.subarray(20, 20 + jl))); } catch { return bad('JSON chunk does not parse'); }
  const binAt = 20 + jl;
  if (binAt + 8 > bytes.byteLength) bad('no BIN chunk');
  const bl = dv.getUint32(binAt, true);
  if (dv.getUint32(binAt + 4, true) !== BIN_CHUNK || binAt + 8 + bl !== bytes.byteLength) bad('bad BIN chunk');
  if (json.asset?.version !== '2.0') bad('asset.version is not 2.0');
  if (json.buffers?.[0]?.byteLength > bl) bad('buffer longer than the BIN chunk');
  const prim = json.meshes?.[0]?.primitives?.[0];
  if (!prim || prim.attributes?.POSITION === undefined) bad('no primitive with POSITION');
  const read = (ai: number, comp: number, type: string): { data: Uint8Array; count: number; acc: any } => {
    const acc = json.accessors?.[ai];
    if (!acc || acc.componentType !== comp || acc.type !== type) bad(`accessor ${ai} is not ${type} of component ${comp}`);
    const bv = json.bufferViews?.[acc.bufferView];
    const width = type === 'VEC3' ? 12 : 4;
    const start = (bv?.byteOffset ?? 0) + (acc.byteOffset ?? 0);
    if (!bv || start % 4 || start + acc.count * width > bv.byteOffset + bv.byteLength || bv.byteOffset + bv.byteLength > bl) bad(`accessor ${ai} runs past its bufferView`);
    return { data: bytes.slice(binAt + 8 + start, binAt + 8 + start + acc.count * width), count: acc.count, acc };
  };
  const p = read(prim.attributes.POSITION, FLOAT, 'VEC3');
  if (!Array.isArray(p.acc.min) || !Array.isArray(p.acc.max)) bad('POSITION accessor lacks min/max');
  const positions = new Float32Array(p.data.buffer);
  const out: ParsedGlb = { json, positions, indices: new Uint32Array(0) };
  if (prim.attributes.NORMAL !== undefined) {
    const n = read(prim.attributes.NORMAL, FLOAT, 'VEC3');
    if (n.count !== p.count) bad('NORMAL count differs from POSITION count');
    out.normals = new Float32Array(n.data.buffer);
  }
  if (prim.indices !== undefined) {
    const ix = read(prim.indices, UINT, 'SCALAR');
    out.indices = new Uint32Array(ix.data.buffer);
    for (const i of out.indices) if (i >= p.count) bad(`index ${i} out of range`);
  }
  return out;
}
