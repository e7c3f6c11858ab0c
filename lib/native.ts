// Finds and loads the native addon. Every place a binary can be is tried in
// order; if none loads, ONE error lists each path with its failure and says
// what to run (sharp's loader habit).
import { existsSync } from 'node:fs';
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

export function addonCandidates(): string[] {
  const root = packageRoot();
  const paths: string[] = [];
  if (process.env.TESSERA_ADDON_PATH) paths.push(resolve(process.env.TESSERA_ADDON_PATH));
  paths.push(join(root, 'build', 'Release', 'tessera.node'), join(root, 'build', 'Debug', 'tessera.node'));
  return paths;
}

let loaded: NativeAddon | undefined;
let loadedFrom = '';

export function native(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const path of addonCandidates()) {
    if (!existsSync(path)) {
      failures.push(`  ${path}: not found`);
      continue;
    }
    try {
      const addon = require(path) as NativeAddon;
      addon.setErrorClass(TesseraError);
      loaded = addon;
      loadedFrom = path;
      return addon;
    } catch (e) {
      failures.push(`  ${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new TesseraError('ERR_NO_BINARY',
    'The Tessera native addon could not be loaded. Tried:\n' + failures.join('\n') +
    '\nBuild it from the package directory with `npm run build` (or `npx tessera build`),' +
    ' or point TESSERA_ADDON_PATH at a built tessera.node.');
}

/** Path of the loaded addon ('' before the first load). */
export function nativePath(): string {
  return loadedFrom;
}
