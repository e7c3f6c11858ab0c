// CPU feature detection and the run-time choice of instruction set.
// One shipped binary serves every x86-64: kernels exist per ISA in files
// compiled with their own flags, and the dispatcher picks one by CPUID.
#pragma once
#include <string>

namespace tessera {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3 };

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false;
  int logical_cpus = 1;   // usable by this process (affinity mask)
  int physical_cores = 1; // logical_cpus / SMT siblings
  std::string brand;
};

const CpuFeatures& cpu_features();

// The best ISA this CPU supports, capped by TESSERA_ISA=scalar|avx2|avx512|avx512bf16
// (used by tests to exercise every code path on one machine). Asking for an ISA
// the CPU lacks is capped at what it has.
Isa active_isa();
// For tests: override the ISA for subsequent calls (capped by the hardware).
void set_isa_override(Isa isa);
void clear_isa_override();
const char* isa_name(Isa isa);

}  // namespace tessera
