// Wavefront OBJ (text) for triangle meshes: `v x y z`, optional `vn`, and
// `f a//a b//b c//c` (1-based). The reader takes v/vn/f lines (triangles or
// polygons, fanned), ignores others, and checks every index.
import { TesseraError } from '../errors.js';

export interface TriangleMesh {
  positions: Float32Array;
  normals?: Float32Array;
  indices: Uint32Array;
}

export function meshToObj(m: TriangleMesh, comment = 'tessera'): string {
  const lines: string[] = [`# ${comment}`, `# ${m.positions.length / 3} vertices, ${m.indices.length / 3} triangles`];
  const p = m.positions, n = m.normals;
  for (let i = 0; i < p.length; i += 3) lines.push(`v ${p[i]} ${p[i + 1]} ${p[i + 2]}`);
  if (n) for (let i = 0; i < n.length; i += 3) lines.push(`vn ${n[i]} ${n[i + 1]} ${n[i + 2]}`);
  const ix = m.indices;
  for (let t = 0; t < ix.length; t += 3) {
    const a = ix[t]! + 1, b = ix[t + 1]! + 1, c = ix[t + 2]! + 1;
    lines.push(n ? `f ${a}//${a} ${b}//${b} ${c}//${c}` : `f ${a} ${b} ${c}`);
  }
  return lines.join('\n') + '\n';
}

export function parseObj(text: string, what = 'OBJ'): TriangleMesh {
  const v: number[] = [], vn: number[] = [], f: number[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, ln) => {
    const parts = raw.trim().split(/\s+/);
    const bad = (why: string): never => { throw new TesseraError('ERR_FORMAT', `${what}: line ${ln + 1}: ${why}`); };
    if (parts[0] === 'v' || parts[0] === 'vn') {
      const xyz = parts.slice(1, 4).map(Number);
      if (xyz.length !== 3 || xyz.some((x) => !Number.isFinite(x))) bad(`bad ${parts[0]} line`);
      (parts[0] === 'v' ? v : vn).push(...xyz);
    } else if (parts[0] === 'f') {
      const ids = parts.slice(1).map((s) => {
        const i = Number(s.split('/')[0]);
        const k = i < 0 ? v.length / 3 + i : i - 1;
        if (!Number.isInteger(i) || i === 0 || k < 0 || k >= v.length / 3) bad(`face index ${s} out of range`);
        return k;
      });
      if (ids.length < 3) bad('face with fewer than 3 vertices');
      for (let k = 1; k + 1 < ids.length; k++) f.push(ids[0]!, ids[k]!, ids[k + 1]!);
    }
  });
  const m: TriangleMesh = { positions: Float32Array.from(v), indices: Uint32Array.from(f) };
  if (vn.length === v.length && vn.length > 0) m.normals = Float32Array.from(vn);
  return m;
}
