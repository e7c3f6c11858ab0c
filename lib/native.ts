// Finds and loads the native addon. Every place a binary can be is tried in
// order; if none loads, ONE error lists each path with its failure and says
// what to run (sharp's loader habit).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TesseraError, type TesseraErrorCode } from './errors.js';

/** A tensor as the addon reads it: strides and offset in elements. */
export interface NativeTensor {
  data: ArrayBufferView | NativeDeviceBuffer;
  dtype: string;
  shape: readonly number[];
  strides?: readonly number[];
  offset?: number;
  device: string;
}

export interface NativeDeviceBuffer {
  readonly bytes: number;
  readonly deviceIndex: number;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativePackedWeight {
  readonly bytes: number;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeBackendStatus {
  cudaBuilt: boolean;
  cudaLoaded: boolean;
  cudaDevices: number;
  cudaLibrary: string;
  cudaError: string;
  cudaBuildInfo: string;
  compiledWithCuda: boolean;
}

export interface NativeCudaDevice {
  name: string;
  totalMemory: number;
  freeMemory: number;
  computeCapability: string;
  multiprocessors: number;
  driverVersion: number;
  runtimeVersion: number;
}

export interface NativeCpuInfo {
  brand: string;
  logicalCpus: number;
  physicalCores: number;
  features: Record<string, boolean>;
  isa: string;
}

export interface NativePoolStats {
  bytesInUse: number;
  bytesCached: number;
  allocations: number;
  freshAllocations: number;
}

export interface NativeAddon {
  moduleDir: string;
  setErrorClass(ctor: new (code: TesseraErrorCode, message: string) => Error): void;
  cpuInfo(): NativeCpuInfo;
  setIsa(isa: string | null): string;
  getThreads(): number;
  setThreads(n: number): number;
  backendStatus(): NativeBackendStatus;
  cudaDevice(index: number): NativeCudaDevice;

  DeviceBuffer: new (deviceIndex: number, bytes: number) => NativeDeviceBuffer;
  copyDevice(kind: 0 | 1 | 2, dst: ArrayBufferView | NativeDeviceBuffer, src: ArrayBufferView | NativeDeviceBuffer,
    bytes: number, dstByteOffset: number, srcByteOffset: number): Promise<void>;
  hostAlloc(bytes: number, zero: boolean): ArrayBuffer;
  hostFree(buffer: ArrayBuffer): boolean;
  hostPoolStats(): NativePoolStats;
  hostPoolTrim(): void;
  dataAddress(view: ArrayBufferView): bigint;
  readFloat32(t: NativeTensor, flatIndex: number): number;

  attention(args: Record<string, unknown>): Promise<void>;
  ropeApply(args: Record<string, unknown>): Promise<void>;
  kvAppend(args: Record<string, unknown>): Promise<void>;
  llamaBlocks(args: Record<string, unknown>): Promise<void>;
  llamaDecode(args: Record<string, unknown>): Promise<void>;
  varBlocks(args: Record<string, unknown>): Promise<void>;
  ropeTable1d(positions: number, rotaryDim: number, base: number, cos: Float32Array, sin: Float32Array): void;
  ropeTable2d(grid: number, numPrefix: number, rotaryDim: number, base: number, cos: Float32Array,
    sin: Float32Array): void;
  ropeTable3d(positions: number, heads: number, rotaryDim: number, xyz: Float32Array, freqs: Float32Array,
    cos: Float32Array, sin: Float32Array): void;

  linear(args: Record<string, unknown>): Promise<void>;
  matmul(args: Record<string, unknown>): Promise<void>;
  packWeight(weight: NativeTensor, compute: string): Promise<NativePackedWeight>;

  measureFmaPeak(threads: number, bf16: boolean): Promise<number>;
  measureCopyBandwidth(threads: number, bytes: number): Promise<number>;
  measureReadBandwidth(threads: number, bytes: number): Promise<number>;

  /** A whole file as an ArrayBuffer over a private copy-on-write mapping. */
  mapFile(path: string): ArrayBuffer;
}

/** The package root: the nearest directory above this file with a package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'CMakeLists.txt'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolve(dirname(fileURLToPath(import.meta.url)), '..');
    dir = up;
  }
}

/** `${platform}-${arch}`, with `-musl` on musl Linux: the key of the platform packages. */
export function platformKey(): string {
  return `${process.platform}-${process.arch}${libcFamily() === 'musl' ? '-musl' : ''}`;
}

let libc: 'glibc' | 'musl' | '' | undefined;

/**
 * glibc or musl on Linux ('' elsewhere), as napi-rs and detect-libc decide it:
 * /usr/bin/ldd names its libc; otherwise a process report carries
 * glibcVersionRuntime only under glibc.
 */
export function libcFamily(): 'glibc' | 'musl' | '' {
  if (libc !== undefined) return libc;
  if (process.platform !== 'linux') return (libc = '');
  try {
    const ldd = readFileSync('/usr/bin/ldd', 'utf8');
    if (ldd.includes('musl')) return (libc = 'musl');
    if (ldd.includes('GLIBC') || ldd.includes('GNU C Library')) return (libc = 'glibc');
  } catch { /* no ldd: ask the process report */ }
  return (libc = glibcVersion() ? 'glibc' : 'musl');
}

/** The running glibc's version ('' under musl or off Linux). */
export function glibcVersion(): string {
  if (process.platform !== 'linux') return '';
  const report = process.report;
  if (!report) return '';
  (report as { excludeNetwork?: boolean }).excludeNetwork = true; // no DNS look-ups for the report
  const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return header?.glibcVersionRuntime ?? '';
}

// The platform packages, as a static switch so bundlers and readers see every
// name (sharp's loader). A new platform is one case here and one npm/<key>/.
function platformAddon(req: NodeJS.Require, key: string): string {
  switch (key) {
    case 'linux-x64': return req.resolve('@tessera/linux-x64/tessera.node');
    default: throw new Error(`no prebuilt package is published for ${key}`);
  }
}

function platformCudaLibrary(req: NodeJS.Require, key: string): string {
  switch (key) {
    case 'linux-x64': return req.resolve('@tessera/linux-x64-cuda/libtessera_cuda.so');
    default: throw new Error(`no CUDA package is published for ${key}`);
  }
}

interface Candidate {
  source: string;
  path: string;
  /** Why there is no path to try (package not installed, no package for this platform). */
  missing?: string;
}

function candidates(req: NodeJS.Require): Candidate[] {
  const root = packageRoot();
  const list: Candidate[] = [];
  if (process.env.TESSERA_ADDON_PATH) list.push({ source: 'TESSERA_ADDON_PATH', path: resolve(process.env.TESSERA_ADDON_PATH) });
  list.push({ source: 'local build', path: join(root, 'build', 'Release', 'tessera.node') });
  list.push({ source: 'local build', path: join(root, 'build', 'Debug', 'tessera.node') });
  const key = platformKey();
  const pkg = `@tessera/${key}`;
  try {
    list.push({ source: pkg, path: platformAddon(req, key) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    list.push({
      source: pkg, path: '',
      missing: code === 'MODULE_NOT_FOUND'
        ? 'not installed (was npm run with --omit=optional or --no-optional, or on another platform?)'
        : (e as Error).message,
    });
  }
  return list;
}

/** Every addon path the loader tries, in order (a platform package only if installed). */
export function addonCandidates(): string[] {
  return candidates(createRequire(import.meta.url)).filter((c) => c.path).map((c) => c.path);
}

/** What the loader chose, and why: `tessera info` prints it. */
export interface NativeSelection {
  /** The loaded tessera.node and where it came from (TESSERA_ADDON_PATH, local build, @tessera/<platform>). */
  addon: string;
  addonSource: string;
  platform: string;
  libc: string;
  /** Where the native side looks for libtessera_cuda.so, and why ('' = nowhere). */
  cudaLibrary: string;
  cudaSource: string;
  /** Every place tried before the one that loaded. */
  attempts: string[];
}

let loaded: NativeAddon | undefined;
let selection: NativeSelection | undefined;
let forcedCudaError: TesseraError | undefined;
let cudaEnvSetByLoader = false;

// The native side reads TESSERA_CUDA_LIB on its first backend query, else looks
// next to the addon. A user's TESSERA_CUDA_LIB wins; then a library beside the
// addon (a local CUDA build); then the CUDA platform package. process.env
// writes reach getenv() on the main thread only, so load the addon there first.
function pointCudaLibrary(req: NodeJS.Require, addonPath: string): { path: string; source: string } {
  if (cudaEnvSetByLoader) delete process.env.TESSERA_CUDA_LIB;
  cudaEnvSetByLoader = false;
  if (process.env.TESSERA_CUDA_LIB) return { path: process.env.TESSERA_CUDA_LIB, source: 'TESSERA_CUDA_LIB' };
  const beside = join(dirname(addonPath), 'libtessera_cuda.so');
  if (existsSync(beside)) return { path: beside, source: 'next to the addon' };
  try {
    const path = platformCudaLibrary(req, platformKey());
    process.env.TESSERA_CUDA_LIB = path;
    cudaEnvSetByLoader = true;
    return { path, source: `@tessera/${platformKey()}-cuda` };
  } catch {
    return { path: '', source: '' };
  }
}

function checkBackendEnv(): string {
  const b = process.env.TESSERA_BACKEND ?? '';
  if (b !== '' && b !== 'cpu' && b !== 'cuda')
    throw new TesseraError('ERR_INVALID_ARGUMENT', `TESSERA_BACKEND must be cpu or cuda, got '${b}'`);
  return b;
}

export function native(): NativeAddon {
  if (forcedCudaError) throw forcedCudaError;
  if (loaded) return loaded;
  const forced = checkBackendEnv();
  const req = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const c of candidates(req)) {
    const where = `${c.source}: ${c.path || '(none)'}`;
    if (c.missing) { failures.push(`  ${c.source}: ${c.missing}`); continue; }
    if (!existsSync(c.path)) { failures.push(`  ${where}: not found`); continue; }
    const cuda = pointCudaLibrary(req, c.path);
    try {
      const addon = req(c.path) as NativeAddon;
      addon.setErrorClass(TesseraError);
      loaded = addon;
      selection = {
        addon: c.path, addonSource: c.source, platform: platformKey(), libc: libcFamily(),
        cudaLibrary: cuda.path, cudaSource: cuda.source, attempts: failures.map((f) => f.trim()),
      };
      break;
    } catch (e) {
      failures.push(`  ${where}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (!loaded) {
    throw new TesseraError('ERR_NO_BINARY',
      `The Tessera native addon could not be loaded (${platformKey()}, node ${process.version}). Tried:\n` +
      failures.join('\n') + '\n' + noBinaryAdvice(failures.join('\n')));
  }
  if (forced === 'cuda') {
    const choice = selectBackend();
    if (choice.backend !== 'cuda') {
      forcedCudaError = new TesseraError('ERR_DEVICE',
        `TESSERA_BACKEND=cuda but CUDA cannot be used: ${choice.reason}. ` +
        'Unset TESSERA_BACKEND (or set it to cpu) to run on the CPU.');
      throw forcedCudaError;
    }
  }
  return loaded;
}

function noBinaryAdvice(tried: string): string {
  const tips = [];
  if (/GLIBC_|GLIBCXX_|CXXABI_/.test(tried))
    tips.push(`This glibc (${glibcVersion() || 'unknown'}) is older than the binary needs: build from source with \`npx tessera build\`.`);
  if (platformKey() === 'linux-x64')
    tips.push('Reinstall with optional dependencies (`npm install --include=optional tessera`); a lockfile made on another OS can omit them (npm/cli#4828).');
  else
    tips.push(`No prebuilt binary exists for ${platformKey()}.`);
  tips.push('Or build from source: `npx tessera build` (needs cmake >= 3.20 and a C++20 compiler),' +
    ' or point TESSERA_ADDON_PATH at a built tessera.node.');
  return tips.join('\n');
}

/** Path of the loaded addon ('' before the first load). */
export function nativePath(): string {
  return selection?.addon ?? '';
}

/** Where the addon and the CUDA library come from (undefined before the first load). */
export function nativeSelection(): NativeSelection | undefined {
  return selection;
}

export interface BackendChoice {
  backend: 'cpu' | 'cuda';
  /** The device a caller that has no preference should use. */
  device: 'cpu' | 'cuda:0';
  reason: string;
}

let choice: BackendChoice | undefined;

/**
 * The backend for callers with no preference: CUDA when the test load (dlopen
 * of libtessera_cuda.so, driver and device count) succeeds, else the CPU,
 * announced once on stderr. TESSERA_BACKEND=cpu|cuda forces it.
 */
export function selectBackend(): BackendChoice {
  if (choice) return choice;
  const forced = checkBackendEnv();
  const s = (loaded ?? native()).backendStatus();
  if (forced === 'cpu') return (choice = { backend: 'cpu', device: 'cpu', reason: 'forced by TESSERA_BACKEND=cpu' });
  if (s.cudaLoaded && s.cudaDevices > 0)
    return (choice = { backend: 'cuda', device: 'cuda:0', reason: `${s.cudaDevices} CUDA device(s) via ${s.cudaLibrary}` });
  const reason = cudaUnavailableReason(s);
  choice = { backend: 'cpu', device: 'cpu', reason };
  if (forced !== 'cuda') process.stderr.write(`tessera: CUDA unavailable (${reason}); using the CPU backend\n`);
  return choice;
}

/** Why CUDA cannot be used, with what to do about it. */
export function cudaUnavailableReason(s: NativeBackendStatus): string {
  if (s.cudaLoaded && s.cudaDevices > 0) return '';
  if (!selection?.cudaLibrary && !s.cudaBuilt)
    return `no CUDA library (install @tessera/${platformKey()}-cuda, or build with \`npx tessera build --cuda\`)`;
  return s.cudaError || 'CUDA backend unavailable';
}
