// What the loaded engine found: CPU, kernel ISA, thread pool, backends.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { fail } from './errors.js';
import {
  native, nativePath, packageRoot, type NativeCpuInfo, type NativeCudaDevice, type NativePoolStats,
} from './native.js';

export interface RuntimeInfo {
  version: string;
  addon: string;
  node: string;
  cpu: NativeCpuInfo;
  threads: number;
  backends: {
    cpu: { available: true; isa: string };
    cuda: {
      available: boolean;
      /** Why CUDA cannot be used ('' when it can). */
      reason: string;
      library: string;
      buildInfo: string;
      devices: NativeCudaDevice[];
    };
  };
  hostPool: NativePoolStats;
}

export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function runtimeInfo(): RuntimeInfo {
  const addon = native();
  const status = addon.backendStatus();
  const devices: NativeCudaDevice[] = [];
  let reason = status.cudaError;
  if (status.cudaLoaded && status.cudaDevices > 0) {
    for (let i = 0; i < status.cudaDevices; i++) {
      try {
        devices.push(addon.cudaDevice(i));
      } catch (e) {
        reason = `cuda:${i}: ${(e as Error).message}`;
      }
    }
  }
  if (!status.compiledWithCuda && !status.cudaBuilt)
    reason = `this build has no CUDA backend (${status.cudaError || 'no library'}); rebuild with \`npx tessera build --cuda\` where nvcc exists`;
  const cpu = addon.cpuInfo();
  return {
    version: packageVersion(),
    addon: nativePath(),
    node: process.version,
    cpu,
    threads: addon.getThreads(),
    backends: {
      cpu: { available: true, isa: cpu.isa },
      cuda: {
        available: devices.length > 0,
        reason: devices.length > 0 ? '' : reason || 'CUDA backend unavailable',
        library: status.cudaLibrary,
        buildInfo: status.cudaBuildInfo,
        devices,
      },
    },
    hostPool: addon.hostPoolStats(),
  };
}

export function getThreads(): number {
  return native().getThreads();
}

/** Resizes the native thread pool every CPU kernel shares. */
export function setThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1) fail('ERR_INVALID_ARGUMENT', `thread count must be a positive integer, got ${n}`);
  return native().setThreads(n);
}

export function hostPoolStats(): NativePoolStats {
  return native().hostPoolStats();
}

/** Caps the CPU kernels' instruction set (tests exercise every path); null restores the default. */
export function setIsa(isa: 'scalar' | 'avx2' | 'avx512' | 'avx512bf16' | null): string {
  return native().setIsa(isa);
}
