#include "tessera/cpu.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace tessera {
namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

int count_physical_cores(int logical) {
  // Count distinct (package, core) pairs among the CPUs we may run on.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return logical;
  std::set<std::string> cores;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::ifstream pk(base + "physical_package_id"), co(base + "core_id");
    std::string p, k;
    if (!(pk >> p) || !(co >> k)) return logical;
    cores.insert(p + ":" + k);
  }
  return cores.empty() ? logical : static_cast<int>(cores.size());
}

CpuFeatures detect() {
  CpuFeatures f;
  cpu_set_t set;
  CPU_ZERO(&set);
  f.logical_cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                                : static_cast<int>(std::thread::hardware_concurrency());
  if (f.logical_cpus < 1) f.logical_cpus = 1;
  f.physical_cores = count_physical_cores(f.logical_cpus);
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = c & bit_SSE4_2;
  f.fma = c & bit_FMA;
  f.f16c = c & bit_F16C;
  const bool osxsave = c & bit_OSXSAVE;
  const bool avx_hw = c & bit_AVX;
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  f.avx = avx_hw && os_ymm;
  if (!f.avx) f.fma = f.f16c = false;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = f.avx && (b & bit_AVX2);
    if (os_zmm) {
      f.avx512f = b & bit_AVX512F;
      f.avx512dq = b & bit_AVX512DQ;
      f.avx512bw = b & bit_AVX512BW;
      f.avx512vl = b & bit_AVX512VL;
      f.avx512_vnni = c & bit_AVX512VNNI;
      unsigned a1, b1, c1, d1;
      __cpuid_count(7, 1, a1, b1, c1, d1);
      f.avx512_bf16 = a1 & (1u << 5);
    }
  }
  char brand[49] = {0};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  f.brand = brand;
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
#endif
  return f;
}

Isa hardware_isa() {
  const CpuFeatures& f = cpu_features();
  const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.f16c;
  if (avx512 && f.avx512_bf16) return Isa::kAvx512Bf16;
#ifdef TESSERA_BF16_EMULATION  // the test build only: the bf16 kernels run on stand-ins (cpu/bf16_emulation.h)
  if (avx512) return Isa::kAvx512Bf16;
#endif
  if (avx512) return Isa::kAvx512;
  if (f.avx2 && f.fma && f.f16c) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa env_cap() {
  const char* e = std::getenv("TESSERA_ISA");
  if (!e || !*e) return Isa::kAvx512Bf16;
  std::string s(e);
  if (s == "scalar") return Isa::kScalar;
  if (s == "avx2") return Isa::kAvx2;
  if (s == "avx512") return Isa::kAvx512;
  return Isa::kAvx512Bf16;
}

std::atomic<int> g_override{-1};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

Isa active_isa() {
  static const Isa base = static_cast<Isa>(std::min(static_cast<int>(hardware_isa()), static_cast<int>(env_cap())));
  const int o = g_override.load(std::memory_order_relaxed);
  if (o >= 0) return static_cast<Isa>(std::min(o, static_cast<int>(hardware_isa())));
  return base;
}

void set_isa_override(Isa isa) { g_override.store(static_cast<int>(isa)); }
void clear_isa_override() { g_override.store(-1); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512bf16";
  }
  return "?";
}

}  // namespace tessera
