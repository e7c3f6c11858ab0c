// Mesh writers by file extension: .ply (binary little-endian, float
// x y z nx ny nz, faces as `list uchar int vertex_indices`), .obj (text),
// .glb (glTF 2.0 binary).
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';

import { fail, TesseraError } from '../errors.js';
import { meshToGlb } from '../io/glb.js';
import { meshToObj, type TriangleMesh } from '../io/obj.js';
import { writePly, type PlyWriteElement } from '../io/ply.js';

export type MeshFormat = 'ply' | 'obj' | 'glb';

export function meshToPly(m: TriangleMesh): Uint8Array {
  const V = m.positions.length / 3, T = m.indices.length / 3;
  const col = (src: Float32Array, k: number) => { const c = new Float32Array(V); for (let i = 0; i < V; i++) c[i] = src[3 * i + k]!; return c; };
  const vert: PlyWriteElement = { name: 'vertex', count: V, columns: [] };
  ['x', 'y', 'z'].forEach((name, k) => vert.columns.push({ name, type: 'float32', data: col(m.positions, k) }));
  if (m.normals) ['nx', 'ny', 'nz'].forEach((name, k) => vert.columns.push({ name, type: 'float32', data: col(m.normals!, k) }));
  const face: PlyWriteElement = { name: 'face', count: T, columns: [], list: { name: 'vertex_indices', countType: 'uint8', type: 'int32', counts: new Uint8Array(T).fill(3), values: m.indices } };
  return writePly([vert, face], ['tessera mesh']);
}

export function meshFormatOf(path: string): MeshFormat {
  const ext = extname(path).toLowerCase().slice(1);
  if (ext === 'ply' || ext === 'obj' || ext === 'glb') return ext;
  return fail('ERR_INVALID_ARGUMENT', `${path}: mesh output must end in .ply, .obj or .glb`);
}

export function encodeMesh(m: TriangleMesh, format: MeshFormat): Uint8Array {
  switch (format) {
    case 'ply': return meshToPly(m);
    case 'obj': return new TextEncoder().encode(meshToObj(m));
    case 'glb': return meshToGlb(m);
  }
}

/** Writes the mesh in the format its extension names; returns the byte count. */
export function writeMesh(path: string, m: TriangleMesh): number {
  const bytes = encodeMesh(m, meshFormatOf(path));
  try {
    writeFileSync(path, bytes);
  } catch (e) {
    throw new TesseraError('ERR_IO', `${path}: ${(e as Error).message}`);
  }
  return bytes.byteLength;
}
