// PyTorch checkpoints as torch.save writes them, read without Python:
//  - the zip format (torch >= 1.6): <prefix>/data.pkl + <prefix>/data/<key> storages;
//  - the legacy format: magic, protocol and sys-info pickles, the object
//    pickle, a pickle of storage keys, then each storage as u64 count + bytes.
// Tensors are rebuilt from (storage, offset, size, stride) as data; nothing
// the file names is imported or run (see pickle.ts).
import { TesseraError } from '../errors.js';
import { GlobalRef, PickleObject, PickleTruncated, PickleTuple, unpickle, type AllowedGlobal } from './pickle.js';
import type { ByteSource } from './source.js';
import { arrayFor, checkShape, loadArray, numelOf, STORED_DTYPE_BYTES, type HostArray, type StoredDtype, type StoredTensor } from './stored-tensor.js';
import { ZipArchive } from './zip.js';

const STORAGE_DTYPES: Record<string, StoredDtype> = {
  DoubleStorage: 'float64', FloatStorage: 'float32', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8',
  ByteStorage: 'uint8', BoolStorage: 'bool',
};

class StorageType {
  constructor(readonly dtype: StoredDtype) {}
}

/** A storage in the file: `numel` elements of `dtype` at a byte range the reader resolves. */
interface StorageRecord {
  key: string;
  dtype: StoredDtype;
  numel: number;
  /** Byte offset of element 0 in the file (resolved lazily for zip members). */
  fileOffset: () => number;
}

class TorchTensorRecord {
  pickleState?: unknown;
  constructor(
    readonly storage: StorageRecord,
    readonly offset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

function asInt(what: string, v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TesseraError('ERR_FORMAT', `${what}: ${field} is not a non-negative integer`);
  return v;
}

function rebuildTensor(what: string, args: unknown[]): TorchTensorRecord {
  const [storage, offset, size, stride] = args;
  if (!storage || typeof storage !== 'object' || !('dtype' in storage) || !('fileOffset' in storage)) {
    throw new TesseraError('ERR_FORMAT', `${what}: tensor rebuilt from something that is not a storage`);
  }
  const st = storage as StorageRecord;
  const shape = checkShape(what, size);
  // Strides are checked one by one: their product means nothing (a contiguous
  // [1, 1, 2240, 2240] buffer, VAR d36's attn_bias_for_masking, has strides
  // whose product is 5.6e16); the storage bound below is what matters.
  if (!Array.isArray(stride)) throw new TesseraError('ERR_FORMAT', `${what}: stride is not a list`);
  const strides = stride.map((s: unknown, i) => asInt(what, s, `stride ${i}`));
  if (strides.length !== shape.length) throw new TesseraError('ERR_FORMAT', `${what}: size and stride ranks differ`);
  const off = asInt(what, offset, 'storage offset');
  // The furthest element must lie inside the storage.
  if (numelOf(shape) > 0) {
    let last = off;
    for (let i = 0; i < shape.length; ++i) last += (shape[i]! - 1) * strides[i]!;
    if (last >= st.numel) throw new TesseraError('ERR_FORMAT', `${what}: a tensor of shape ${JSON.stringify(shape)} reaches element ${last} of a storage of ${st.numel}`);
  }
  return new TorchTensorRecord(st, off, shape, strides);
}

function torchGlobals(what: string): Map<string, AllowedGlobal> {
  const g = new Map<string, AllowedGlobal>();
  const dict: AllowedGlobal = { call: (args) => {
    const m = new Map<unknown, unknown>();
    const items = args[0];
    if (Array.isArray(items)) for (const kv of items) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
    return m;
  } };
  g.set('collections.OrderedDict', dict);
  g.set('torch._utils._rebuild_tensor_v2', { call: (a) => rebuildTensor(what, a) });
  g.set('torch._utils._rebuild_tensor', { call: (a) => rebuildTensor(what, a) });
  g.set('torch._utils._rebuild_parameter', { call: (a) => a[0] });
  g.set('torch._utils._rebuild_parameter_with_state', { call: (a) => a[0] });
  g.set('torch.nn.parameter.Parameter', { call: (a) => a[0] });
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) g.set(`torch.${name}`, { value: new StorageType(dtype) });
  g.set('torch.device', { call: (a) => String(a[0]) + (a.length > 1 ? `:${String(a[1])}` : '') });
  // Plain data containers that training scripts put next to the weights.
  g.set('argparse.Namespace', { call: () => new PickleObject('argparse.Namespace', new Map()) });
  g.set('builtins.set', { call: (a) => new Set(Array.isArray(a[0]) ? a[0] : []) });
  g.set('_codecs.encode', { call: (a) => new Uint8Array([...String(a[0])].map((c) => c.charCodeAt(0) & 0xff)) });
  return g;
}

function storageDtype(what: string, t: unknown): StoredDtype {
  if (t instanceof GlobalRef && t.def.value instanceof StorageType) return t.def.value.dtype;
  if (t instanceof StorageType) return t.dtype;
  if (t instanceof GlobalRef) throw new TesseraError('ERR_FORMAT', `${what}: unsupported storage type ${t.name}`);
  throw new TesseraError('ERR_FORMAT', `${what}: storage type missing in a persistent id`);
}

class TorchStoredTensor implements StoredTensor {
  readonly numel: number;
  constructor(
    readonly name: string,
    private readonly rec: TorchTensorRecord,
    private readonly src: ByteSource,
  ) {
    this.numel = numelOf(rec.shape);
  }
  get dtype(): StoredDtype { return this.rec.storage.dtype; }
  get shape(): readonly number[] { return this.rec.shape; }

  load(): HostArray {
    const { storage, offset, shape, strides } = this.rec;
    const es = STORED_DTYPE_BYTES[storage.dtype];
    const n = this.numel;
    const base = storage.fileOffset();
    // Contiguous (row-major) tensors are one read; others gather row by row.
    let contiguous = true;
    let expect = 1;
    for (let i = shape.length - 1; i >= 0; --i) {
      if (shape[i] !== 1 && strides[i] !== expect) contiguous = false;
      expect *= shape[i]!;
    }
    if (n === 0) return { dtype: storage.dtype, shape: [...shape], data: arrayFor(storage.dtype, new Uint8Array(0)) };
    if (contiguous) return { dtype: storage.dtype, shape: [...shape], data: loadArray(this.src, base + offset * es, n * es, storage.dtype) };
    const out = new Uint8Array(n * es);
    // Read the spanned range once, then gather.
    let lo = offset, hi = offset;
    for (let i = 0; i < shape.length; ++i) {
      const e = (shape[i]! - 1) * strides[i]!;
      if (e < 0) lo += e; else hi += e;
    }
    const span = this.src.read(base + lo * es, (hi - lo + 1) * es);
    const idx = new Array<number>(shape.length).fill(0);
    for (let k = 0; k < n; ++k) {
      let e = offset - lo;
      for (let i = 0; i < shape.length; ++i) e += idx[i]! * strides[i]!;
      out.set(span.subarray(e * es, e * es + es), k * es);
      for (let i = shape.length - 1; i >= 0; --i) {
        if (++idx[i]! < shape[i]!) break;
        idx[i] = 0;
      }
    }
    return { dtype: storage.dtype, shape: [...shape], data: arrayFor(storage.dtype, out) };
  }
}

export interface TorchCheckpoint {
  format: 'torch-zip' | 'torch-legacy';
  /** The whole unpickled object, tensors as records (for inspection). */
  root: unknown;
  /** The state dict found in it (wrappers such as {model: ...} unwrapped). */
  tensors: Map<string, StoredTensor>;
  /** Non-tensor entries next to the weights (steps, args...), as plain data. */
  extras: Map<string, unknown>;
}

// 'trainer' then 'var_wo_ddp': the official VAR trainer's checkpoints (ckpt['trainer']['var_wo_ddp']).
const WRAPPER_KEYS = ['state_dict', 'model', 'module', 'model_state_dict', 'net', 'params', 'params_ema', 'ema', 'gpt', 'vae', 'var_wo_ddp', 'trainer'];

function collectTensors(value: unknown, src: ByteSource): { tensors: Map<string, StoredTensor>; extras: Map<string, unknown> } {
  const tensors = new Map<string, StoredTensor>();
  const extras = new Map<string, unknown>();
  const visit = (v: unknown, prefix: string, depth: number): void => {
    if (v instanceof TorchTensorRecord) { tensors.set(prefix, new TorchStoredTensor(prefix, v, src)); return; }
    if (v instanceof Map && depth < 8) {
      for (const [k, x] of v) visit(x, prefix ? `${prefix}.${String(k)}` : String(k), depth + 1);
      return;
    }
    extras.set(prefix, v);
  };
  // Unwrap {model: {...}} style wrappers while the root holds no tensors itself.
  let root = value;
  for (let guard = 0; guard < 4 && root instanceof Map; ++guard) {
    const hasTensor = [...root.values()].some((x) => x instanceof TorchTensorRecord);
    if (hasTensor) break;
    const key = WRAPPER_KEYS.find((k) => root instanceof Map && root.get(k) instanceof Map);
    if (!key) break;
    for (const [k, x] of root) if (k !== key) extras.set(String(k), x);
    root = (root as Map<unknown, unknown>).get(key);
  }
  if (!(root instanceof Map)) throw new TesseraError('ERR_FORMAT', 'checkpoint holds no dict of tensors');
  visit(root, '', 0);
  return { tensors, extras };
}

export function isTorchZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

export function isTorchLegacy(head: Uint8Array): boolean {
  // The legacy format starts with a pickled long magic number 0x1950a86a20f9469cfc6c: PROTO 2, LONG1 10 bytes.
  return head.length >= 5 && head[0] === 0x80 && head[2] === 0x8a && head[3] === 0x0a && head[4] === 0x6c;
}

export function readTorchZip(src: ByteSource, path: string): TorchCheckpoint {
  const zip = ZipArchive.open(src, path);
  const pkl = [...zip.entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pkl) throw new TesseraError('ERR_FORMAT', `${path}: ZIP archive has no data.pkl (not a torch.save file)`);
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const bo = zip.entries.has(`${prefix}byteorder`) ? new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim() : 'little';
  if (bo !== 'little') throw new TesseraError('ERR_FORMAT', `${path}: big-endian checkpoints are not supported`);
  const storages = new Map<string, StorageRecord>();
  const persistentLoad = (pid: unknown): unknown => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new TesseraError('ERR_FORMAT', `${path}: unexpected persistent id`);
    const dtype = storageDtype(path, pid[1]);
    const key = String(pid[2]);
    const numel = asInt(path, pid[4], 'storage size');
    const member = `${prefix}data/${key}`;
    const entry = zip.entries.get(member);
    if (!entry) throw new TesseraError('ERR_FORMAT', `${path}: storage ${member} is missing`);
    if (entry.method !== 0) throw new TesseraError('ERR_FORMAT', `${path}: storage ${member} is compressed (torch.save stores them uncompressed)`);
    if (entry.size < numel * STORED_DTYPE_BYTES[dtype]) throw new TesseraError('ERR_FORMAT', `${path}: storage ${member} has ${entry.size} bytes, needs ${numel * STORED_DTYPE_BYTES[dtype]}`);
    let rec = storages.get(key);
    if (!rec) {
      let off: number | undefined;
      rec = { key, dtype, numel, fileOffset: () => (off ??= zip.dataOffset(entry)) };
      storages.set(key, rec);
    }
    return rec;
  };
  const { value } = unpickle(zip.read(pkl), { globals: torchGlobals(path), persistentLoad, what: path });
  return { format: 'torch-zip', root: value, ...collectTensors(value, src) };
}

export function readTorchLegacy(src: ByteSource, path: string): TorchCheckpoint {
  const globals = torchGlobals(path);
  const roots = new Map<string, { dtype: StoredDtype; numel: number; rec?: StorageRecord }>();
  const views: Array<{ rec: StorageRecord; root: string; offset: number }> = [];
  const persistentLoad = (pid: unknown): unknown => {
    if (!(pid instanceof PickleTuple) || pid[0] !== 'storage' || pid.length < 5) throw new TesseraError('ERR_FORMAT', `${path}: unexpected persistent id`);
    const dtype = storageDtype(path, pid[1]);
    const rootKey = String(pid[2]);
    const numel = asInt(path, pid[4], 'storage size');
    if (!roots.has(rootKey)) roots.set(rootKey, { dtype, numel });
    const view = pid[5];
    let viewOffset = 0;
    let viewNumel = numel;
    if (view instanceof PickleTuple && view.length === 3) {
      viewOffset = asInt(path, view[1], 'view offset');
      viewNumel = asInt(path, view[2], 'view size');
    }
    const rec: StorageRecord = { key: rootKey, dtype, numel: viewNumel, fileOffset: () => { throw new TesseraError('ERR_INTERNAL', 'storage offsets not resolved'); } };
    views.push({ rec, root: rootKey, offset: viewOffset });
    return rec;
  };
  // The pickles are small and sit at the start; read a growing prefix until they parse.
  let prefixLen = Math.min(src.size, 1 << 20);
  for (;;) {
    const bytes = src.read(0, prefixLen);
    try {
      roots.clear();
      views.length = 0;
      let at = 0;
      const magic = unpickle(bytes, { globals, what: path }, at);
      if (magic.value !== 0x1950a86a20f9469cfc6cn) throw new TesseraError('ERR_FORMAT', `${path}: not a PyTorch legacy checkpoint (bad magic number)`);
      at = unpickle(bytes, { globals, what: path }, magic.end).end; // protocol version
      at = unpickle(bytes, { globals, what: path }, at).end; // sys info
      const obj = unpickle(bytes, { globals, persistentLoad, what: path }, at);
      const keys = unpickle(bytes, { globals, what: path }, obj.end);
      if (!Array.isArray(keys.value)) throw new TesseraError('ERR_FORMAT', `${path}: storage key list missing`);
      // Storages follow in key order: u64 element count, then the bytes.
      let off = keys.end;
      const offsets = new Map<string, number>();
      for (const k of keys.value) {
        const key = String(k);
        const root = roots.get(key);
        if (!root) throw new TesseraError('ERR_FORMAT', `${path}: storage ${key} is listed but never used`);
        const head = src.read(off, 8);
        const count = Number(new DataView(head.buffer, head.byteOffset, 8).getBigInt64(0, true));
        if (count !== root.numel) throw new TesseraError('ERR_FORMAT', `${path}: storage ${key} holds ${count} elements, expected ${root.numel}`);
        offsets.set(key, off + 8);
        off += 8 + count * STORED_DTYPE_BYTES[root.dtype];
        if (off > src.size) throw new TesseraError('ERR_FORMAT', `${path}: storage ${key} runs past the end of the file`);
      }
      for (const v of views) {
        const base = offsets.get(v.root);
        if (base === undefined) throw new TesseraError('ERR_FORMAT', `${path}: storage ${v.root} has no data`);
        const root = roots.get(v.root)!;
        if (v.offset + v.rec.numel > root.numel) throw new TesseraError('ERR_FORMAT', `${path}: a storage view lies outside storage ${v.root}`);
        const at0 = base + v.offset * STORED_DTYPE_BYTES[root.dtype];
        v.rec.fileOffset = () => at0;
      }
      return { format: 'torch-legacy', root: obj.value, ...collectTensors(obj.value, src) };
    } catch (err) {
      if (err instanceof PickleTruncated && prefixLen < src.size) {
        prefixLen = Math.min(src.size, prefixLen * 4);
        continue;
      }
      throw err;
    }
  }
}
