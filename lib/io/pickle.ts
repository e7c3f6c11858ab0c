// A restricted unpickler: it parses pickle protocols 0-5 as DATA and builds
// plain values. It never imports or calls anything a file names. The only
// globals it accepts are the few that state dicts need, each mapped to a
// data constructor written here (OrderedDict → Map, torch tensor rebuild
// → a TensorRecord, storage classes → dtype tags, argparse.Namespace and
// numpy scalars → plain data). Any other global is refused with ERR_UNSAFE.
import { TesseraError } from '../errors.js';

export class PickleTuple extends Array<unknown> {}

/** An object of an allowed class, holding only its state (argparse.Namespace etc.). */
export class PickleObject {
  constructor(readonly className: string, public state: unknown = undefined) {}
}

/** A global that is allowed to appear, with what calling it produces. */
export interface AllowedGlobal {
  /** Result of REDUCE (callable(*args)) / NEWOBJ (cls.__new__(cls, *args)). */
  call?: (args: unknown[]) => unknown;
  /** The global itself as a value (e.g. a storage type tag), when not called. */
  value?: unknown;
}

export interface UnpickleOptions {
  globals: Map<string, AllowedGlobal>; // key "module.name"
  persistentLoad?: (pid: unknown) => unknown;
  what: string; // for messages
  maxDepth?: number;
}

const MAX_CONTAINER = 1 << 26;

function fmt(what: string, why: string): never {
  throw new TesseraError('ERR_FORMAT', `${what}: malformed pickle: ${why}`);
}

function setItem(what: string, target: unknown, k: unknown, v: unknown): void {
  if (target instanceof Map) target.set(k, v);
  else if (target instanceof PickleObject) {
    if (!(target.state instanceof Map)) target.state = new Map();
    (target.state as Map<unknown, unknown>).set(k, v);
  } else fmt(what, 'SETITEM on a value that is not a dict');
}

/** Parses one pickle starting at `start`; returns the value and the offset after STOP. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions, start = 0): { value: unknown; end: number } {
  const what = opts.what;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let p = start;

  const need = (n: number): void => {
    if (p + n > bytes.byteLength) throw new PickleTruncated(what, p);
  };
  const u8 = (): number => { need(1); return bytes[p++]!; };
  const u16 = (): number => { need(2); const v = view.getUint16(p, true); p += 2; return v; };
  const u32 = (): number => { need(4); const v = view.getUint32(p, true); p += 4; return v; };
  const i32 = (): number => { need(4); const v = view.getInt32(p, true); p += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(bytes.byteLength)) fmt(what, 'a length exceeds the data');
    return Number(v);
  };
  const take = (n: number): Uint8Array => { need(n); const s = bytes.subarray(p, p + n); p += n; return s; };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw new PickleTruncated(what, p);
    const s = new TextDecoder('latin1').decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const str = (n: number): string => {
    try {
      return decoder.decode(take(n));
    } catch {
      fmt(what, 'invalid UTF-8 in a string');
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) fmt(what, 'stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fmt(what, 'stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fmt(what, 'MARK missing');
    return stack.splice(m);
  };
  const tuple = (items: unknown[]): PickleTuple => {
    const t = new PickleTuple();
    for (const x of items) t.push(x);
    return t;
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.byteLength === 0) return 0;
    let v = 0n;
    for (let i = b.byteLength - 1; i >= 0; --i) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.byteLength - 1]! & 0x80) v -= 1n << BigInt(8 * b.byteLength);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const findGlobal = (mod: string, name: string): AllowedGlobal => {
    const g = opts.globals.get(`${mod}.${name}`);
    if (!g) {
      throw new TesseraError('ERR_UNSAFE', `${what}: refuses to load global ${mod}.${name}: only tensors, storages and plain containers are allowed (Tessera never runs code from a file). If this file is a checkpoint, re-save its state_dict only.`);
    }
    return g;
  };
  const callable = (g: unknown, kind: string): AllowedGlobal => {
    if (!(g instanceof GlobalRef)) fmt(what, `${kind} on a value that is not an allowed global`);
    if (!g.def.call) throw new TesseraError('ERR_UNSAFE', `${what}: ${g.name} cannot be called`);
    return g.def;
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) fmt(what, `protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: u64(); break; // FRAME: the length is advisory
      case 0x2e: // STOP
        if (stack.length !== 1) fmt(what, `STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: p };
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: stack.push(longFrom(take(u8()))); break; // LONG1
      case 0x8b: { const n = i32(); if (n < 0) fmt(what, 'negative LONG4 size'); stack.push(longFrom(take(n))); break; }
      case 0x49: { // INT (text); "01"/"00" are booleans in protocol 0
        const s = line();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else { const v = Number(s); if (!Number.isFinite(v)) fmt(what, `bad INT ${s}`); stack.push(v); }
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        try { const v = BigInt(s); stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v); } catch { fmt(what, `bad LONG ${s}`); }
        break;
      }
      case 0x47: { need(8); stack.push(view.getFloat64(p, false)); p += 8; break; } // BINFLOAT (big-endian)
      case 0x46: { const s = line(); const v = Number(s); if (Number.isNaN(v) && !/nan/i.test(s)) fmt(what, `bad FLOAT ${s}`); stack.push(v); break; }
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x56: stack.push(line()); break; // UNICODE (raw-unicode-escape; ASCII in practice)
      case 0x55: stack.push(new TextDecoder('latin1').decode(take(u8()))); break; // SHORT_BINSTRING
      case 0x54: { const n = i32(); if (n < 0) fmt(what, 'negative BINSTRING size'); stack.push(new TextDecoder('latin1').decode(take(n))); break; }
      case 0x53: { // STRING (quoted text)
        const s = line().trim();
        const q = s[0];
        if ((q !== "'" && q !== '"') || s[s.length - 1] !== q) fmt(what, 'bad STRING quoting');
        stack.push(s.slice(1, -1));
        break;
      }
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(take(u64()).slice()); break; // BYTEARRAY8
      case 0x74: stack.push(tuple(popMark())); break; // TUPLE
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(tuple([a, b, c])); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) fmt(what, 'DICT with an odd number of items');
        const d = new Map();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) fmt(what, 'APPEND to a non-list'); if (l.length >= MAX_CONTAINER) fmt(what, 'list too long'); l.push(v); break; }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fmt(what, 'APPENDS to a non-list');
        if (l.length + items.length > MAX_CONTAINER) fmt(what, 'list too long');
        for (const x of items) l.push(x);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItem(what, top(), k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) fmt(what, 'SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(what, d, items[i], items[i + 1]);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fmt(what, 'ADDITEMS to a non-set');
        for (const x of items) s.add(x);
        break;
      }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: { const i = Number(line()); if (!Number.isInteger(i)) fmt(what, 'bad PUT'); memo.set(i, top()); break; }
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const i = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(i)) fmt(what, `memo ${i} is missing`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const mod = line();
        const name = line();
        stack.push(new GlobalRef(`${mod}.${name}`, findGlobal(mod, name)));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const mod = pop();
        if (typeof mod !== 'string' || typeof name !== 'string') fmt(what, 'STACK_GLOBAL needs two strings');
        stack.push(new GlobalRef(`${mod}.${name}`, findGlobal(mod, name)));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!Array.isArray(args)) fmt(what, 'REDUCE arguments are not a tuple');
        stack.push(callable(fn, 'REDUCE').call!(args));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fmt(what, 'NEWOBJ arguments are not a tuple');
        stack.push(callable(cls, 'NEWOBJ').call!(args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        pop(); // kwargs: allowed classes take none that matter
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fmt(what, 'NEWOBJ_EX arguments are not a tuple');
        stack.push(callable(cls, 'NEWOBJ_EX').call!(args));
        break;
      }
      case 0x62: { // BUILD: set state on an object; dicts/tensors accept and keep it as data
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        else if (obj instanceof Map && state instanceof Map) for (const [k, v] of state) obj.set(k, v);
        else if (obj && typeof obj === 'object') (obj as { pickleState?: unknown }).pickleState = state;
        else fmt(what, 'BUILD on a plain value');
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fmt(what, 'persistent id without a loader');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      case 0x50: { // PERSID (text)
        const pid = line();
        if (!opts.persistentLoad) fmt(what, 'persistent id without a loader');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      case 0x82: case 0x83: case 0x84: // EXT1/2/4: the copyreg extension registry
        throw new TesseraError('ERR_UNSAFE', `${what}: refuses the pickle extension registry (EXT opcodes)`);
      case 0x69: // INST
      case 0x6f: // OBJ
        throw new TesseraError('ERR_UNSAFE', `${what}: refuses protocol-0 object construction (INST/OBJ)`);
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        fmt(what, 'out-of-band buffers are not supported');
      default:
        fmt(what, `unknown opcode 0x${op.toString(16)} at byte ${p - 1}`);
    }
    if (stack.length > MAX_CONTAINER) fmt(what, 'stack too deep');
  }
}

/** The data ended before STOP (a reader may retry with more bytes). */
export class PickleTruncated extends TesseraError {
  constructor(what: string, at: number) {
    super('ERR_FORMAT', `${what}: malformed pickle: truncated at byte ${at}`);
  }
}

export class GlobalRef {
  constructor(readonly name: string, readonly def: AllowedGlobal) {}
}
