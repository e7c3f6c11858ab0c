// PLY (Stanford polygon format): ascii, binary little- and big-endian.
// Scalar properties become typed columns; list properties (faces) become
// {counts, values}. Every count and length is checked against the data.
import { TesseraError } from '../errors.js';

export type PlyScalar = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
type Column = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

const ALIASES: Record<string, PlyScalar> = {
  char: 'int8', int8: 'int8', uchar: 'uint8', uint8: 'uint8', short: 'int16', int16: 'int16', ushort: 'uint16', uint16: 'uint16',
  int: 'int32', int32: 'int32', uint: 'uint32', uint32: 'uint32', float: 'float32', float32: 'float32', double: 'float64', float64: 'float64',
};
const SIZE: Record<PlyScalar, number> = { int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, float32: 4, float64: 8 };
const PLY_NAME: Record<PlyScalar, string> = { int8: 'char', uint8: 'uchar', int16: 'short', uint16: 'ushort', int32: 'int', uint32: 'uint', float32: 'float', float64: 'double' };

function alloc(t: PlyScalar, n: number): Column {
  switch (t) {
    case 'int8': return new Int8Array(n);
    case 'uint8': return new Uint8Array(n);
    case 'int16': return new Int16Array(n);
    case 'uint16': return new Uint16Array(n);
    case 'int32': return new Int32Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
  }
}

export interface PlyProperty {
  name: string;
  type: PlyScalar;
  /** For list properties: the type of the count. */
  listCount?: PlyScalar;
}

export interface PlyElement {
  name: string;
  count: number;
  properties: PlyProperty[];
  columns: Map<string, Column>;
  lists: Map<string, { counts: Uint32Array; values: Column }>;
}

export interface PlyFile {
  format: 'ascii' | 'binary_little_endian' | 'binary_big_endian';
  comments: string[];
  elements: PlyElement[];
}

const MAX_ELEMENTS = 1 << 30;

function bad(what: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${what}: invalid PLY: ${why}`);
}

function readScalar(v: DataView, off: number, t: PlyScalar, le: boolean): number {
  switch (t) {
    case 'int8': return v.getInt8(off);
    case 'uint8': return v.getUint8(off);
    case 'int16': return v.getInt16(off, le);
    case 'uint16': return v.getUint16(off, le);
    case 'int32': return v.getInt32(off, le);
    case 'uint32': return v.getUint32(off, le);
    case 'float32': return v.getFloat32(off, le);
    case 'float64': return v.getFloat64(off, le);
  }
}

export function parsePly(bytes: Uint8Array, what = 'PLY'): PlyFile {
  // The header is ASCII lines up to "end_header\n".
  const headEnd = findHeaderEnd(bytes);
  if (headEnd < 0) bad(what, 'no end_header line in the first 64 KiB');
  const lines = new TextDecoder('latin1').decode(bytes.subarray(0, headEnd)).split(/\r?\n/);
  if (lines[0]?.trim() !== 'ply') bad(what, 'missing "ply" magic');
  let format: PlyFile['format'] | undefined;
  const comments: string[] = [];
  const elements: PlyElement[] = [];
  for (const raw of lines.slice(1)) {
    const line = raw.trim();
    if (!line || line === 'end_header') continue;
    const parts = line.split(/\s+/);
    switch (parts[0]) {
      case 'format':
        if (!['ascii', 'binary_little_endian', 'binary_big_endian'].includes(parts[1]!) || parts[2] !== '1.0') bad(what, `unsupported format line "${line}"`);
        format = parts[1] as PlyFile['format'];
        break;
      case 'comment': case 'obj_info':
        comments.push(line.slice(parts[0].length).trim());
        break;
      case 'element': {
        const count = Number(parts[2]);
        if (parts.length !== 3 || !Number.isSafeInteger(count) || count < 0 || count > MAX_ELEMENTS) bad(what, `bad element line "${line}"`);
        elements.push({ name: parts[1]!, count, properties: [], columns: new Map(), lists: new Map() });
        break;
      }
      case 'property': {
        const el = elements[elements.length - 1];
        if (!el) bad(what, 'property before any element');
        if (parts[1] === 'list') {
          const c = ALIASES[parts[2]!], t = ALIASES[parts[3]!];
          if (!c || !t || !parts[4] || c.startsWith('float')) bad(what, `bad list property "${line}"`);
          el.properties.push({ name: parts[4], type: t, listCount: c });
        } else {
          const t = ALIASES[parts[1]!];
          if (!t || !parts[2]) bad(what, `bad property "${line}"`);
          if (el.properties.some((p) => p.name === parts[2])) bad(what, `duplicate property ${parts[2]}`);
          el.properties.push({ name: parts[2], type: t });
        }
        break;
      }
      default:
        bad(what, `unknown header line "${line}"`);
    }
  }
  if (!format) bad(what, 'no format line');
  const body = bytes.subarray(headEnd);
  if (format === 'ascii') readAscii(body, elements, what);
  else readBinary(body, elements, format === 'binary_little_endian', what);
  return { format, comments, elements };
}

function findHeaderEnd(bytes: Uint8Array): number {
  const tag = new TextEncoder().encode('end_header');
  const limit = Math.min(bytes.byteLength, 65536);
  outer: for (let i = 0; i + tag.length <= limit; ++i) {
    for (let j = 0; j < tag.length; ++j) if (bytes[i + j] !== tag[j]) continue outer;
    let k = i + tag.length;
    if (bytes[k] === 0x0d) ++k;
    if (bytes[k] !== 0x0a) return -1;
    return k + 1;
  }
  return -1;
}

function readBinary(body: Uint8Array, elements: PlyElement[], le: boolean, what: string): void {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let off = 0;
  for (const el of elements) {
    const scalars = el.properties.filter((p) => !p.listCount);
    const hasList = el.properties.length !== scalars.length;
    // Every element needs at least its scalars and list counts: refuse counts
    // the remaining bytes cannot hold before allocating anything for them.
    const minStride = el.properties.reduce((s, p) => s + SIZE[p.listCount ?? p.type], 0);
    if (minStride * el.count > body.byteLength - off) bad(what, `element ${el.name} claims ${el.count} entries but only ${body.byteLength - off} bytes remain`);
    for (const p of scalars) el.columns.set(p.name, alloc(p.type, el.count));
    if (!hasList) {
      // Fixed stride: check the whole block once, then read columns.
      const stride = scalars.reduce((s, p) => s + SIZE[p.type], 0);
      if (off + stride * el.count > body.byteLength) bad(what, `element ${el.name} needs ${stride * el.count} bytes, ${body.byteLength - off} remain`);
      let pOff = 0;
      for (const p of scalars) {
        const col = el.columns.get(p.name)!;
        for (let i = 0, o = off + pOff; i < el.count; ++i, o += stride) col[i] = readScalar(v, o, p.type, le);
        pOff += SIZE[p.type];
      }
      off += stride * el.count;
      continue;
    }
    const listVals = new Map<string, number[]>();
    const listCounts = new Map<string, Uint32Array>();
    for (const p of el.properties) if (p.listCount) { listVals.set(p.name, []); listCounts.set(p.name, new Uint32Array(el.count)); }
    for (let i = 0; i < el.count; ++i) {
      for (const p of el.properties) {
        if (p.listCount) {
          if (off + SIZE[p.listCount] > body.byteLength) bad(what, `element ${el.name} is truncated`);
          const n = readScalar(v, off, p.listCount, le);
          off += SIZE[p.listCount];
          if (n < 0 || off + n * SIZE[p.type] > body.byteLength) bad(what, `list ${p.name} of element ${el.name} runs past the end`);
          listCounts.get(p.name)![i] = n;
          const vals = listVals.get(p.name)!;
          for (let k = 0; k < n; ++k, off += SIZE[p.type]) vals.push(readScalar(v, off, p.type, le));
        } else {
          if (off + SIZE[p.type] > body.byteLength) bad(what, `element ${el.name} is truncated`);
          el.columns.get(p.name)![i] = readScalar(v, off, p.type, le);
          off += SIZE[p.type];
        }
      }
    }
    for (const p of el.properties) if (p.listCount) {
      const vals = listVals.get(p.name)!;
      const col = alloc(p.type, vals.length);
      col.set(vals);
      el.lists.set(p.name, { counts: listCounts.get(p.name)!, values: col });
    }
  }
}

function readAscii(body: Uint8Array, elements: PlyElement[], what: string): void {
  const tokens = new TextDecoder('latin1').decode(body).split(/\s+/).filter((t) => t.length > 0);
  let at = 0;
  const next = (): number => {
    if (at >= tokens.length) bad(what, 'ascii body ends early');
    const t = tokens[at++]!;
    const x = Number(t);
    if (!Number.isNaN(x)) return x;
    // C printf / numpy spellings of the non-finite values (Number() knows only "Infinity").
    if (/^[+-]?nan$/i.test(t)) return NaN;
    if (/^[+-]?inf(inity)?$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
    bad(what, `"${t}" is not a number`);
  };
  for (const el of elements) {
    if (el.count * el.properties.length > tokens.length - at) bad(what, `element ${el.name} claims ${el.count} entries but only ${tokens.length - at} values remain`);
    for (const p of el.properties) if (!p.listCount) el.columns.set(p.name, alloc(p.type, el.count));
    const lists = new Map<string, { counts: Uint32Array; vals: number[] }>();
    for (const p of el.properties) if (p.listCount) lists.set(p.name, { counts: new Uint32Array(el.count), vals: [] });
    for (let i = 0; i < el.count; ++i) {
      for (const p of el.properties) {
        if (p.listCount) {
          const n = next();
          if (!Number.isInteger(n) || n < 0 || n > tokens.length) bad(what, `bad list length ${n}`);
          const l = lists.get(p.name)!;
          l.counts[i] = n;
          for (let k = 0; k < n; ++k) l.vals.push(next());
        } else {
          el.columns.get(p.name)![i] = next();
        }
      }
    }
    for (const [name, l] of lists) {
      const p = el.properties.find((q) => q.name === name)!;
      const col = alloc(p.type, l.vals.length);
      col.set(l.vals);
      el.lists.set(name, { counts: l.counts, values: col });
    }
  }
}

export interface PlyWriteElement {
  name: string;
  count: number;
  columns: Array<{ name: string; type: PlyScalar; data: ArrayLike<number> }>;
  /** One list property (e.g. vertex_indices of faces), written after the columns. */
  list?: { name: string; countType: PlyScalar; type: PlyScalar; counts: ArrayLike<number>; values: ArrayLike<number> };
}

/** Binary little-endian PLY. */
export function writePly(elements: PlyWriteElement[], comments: string[] = []): Uint8Array {
  let header = 'ply\nformat binary_little_endian 1.0\n';
  for (const c of comments) header += `comment ${c}\n`;
  let size = 0;
  for (const el of elements) {
    header += `element ${el.name} ${el.count}\n`;
    for (const c of el.columns) {
      if (c.data.length !== el.count) throw new TesseraError('ERR_SHAPE', `PLY column ${el.name}.${c.name} has ${c.data.length} values for ${el.count} elements`);
      header += `property ${PLY_NAME[c.type]} ${c.name}\n`;
      size += SIZE[c.type] * el.count;
    }
    if (el.list) {
      header += `property list ${PLY_NAME[el.list.countType]} ${PLY_NAME[el.list.type]} ${el.list.name}\n`;
      size += SIZE[el.list.countType] * el.count + SIZE[el.list.type] * el.list.values.length;
    }
  }
  header += 'end_header\n';
  const hb = new TextEncoder().encode(header);
  const out = new Uint8Array(hb.byteLength + size);
  out.set(hb);
  const v = new DataView(out.buffer);
  let off = hb.byteLength;
  const put = (t: PlyScalar, x: number): void => {
    switch (t) {
      case 'int8': v.setInt8(off, x); break;
      case 'uint8': v.setUint8(off, x); break;
      case 'int16': v.setInt16(off, x, true); break;
      case 'uint16': v.setUint16(off, x, true); break;
      case 'int32': v.setInt32(off, x, true); break;
      case 'uint32': v.setUint32(off, x, true); break;
      case 'float32': v.setFloat32(off, x, true); break;
      case 'float64': v.setFloat64(off, x, true); break;
    }
    off += SIZE[t];
  };
  for (const el of elements) {
    let li = 0;
    for (let i = 0; i < el.count; ++i) {
      for (const c of el.columns) put(c.type, c.data[i]!);
      if (el.list) {
        const n = el.list.counts[i]!;
        put(el.list.countType, n);
        for (let k = 0; k < n; ++k) put(el.list.type, el.list.values[li++]!);
      }
    }
  }
  return out;
}

export function findElement(ply: PlyFile, name: string): PlyElement | undefined {
  return ply.elements.find((e) => e.name === name);
}
