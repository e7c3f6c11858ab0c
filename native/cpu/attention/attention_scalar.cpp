// Attention kernels for the portable (SSE2 on x86-64, plain C++ elsewhere), compiled with no -m flags instruction set: the shared
// vector-extension sources instantiated at 4 floats per vector.
#define TESSERA_ATTN_NS scalar
#define TESSERA_ATTN_WIDTH 4
#include "cpu/attention/attention_fp32.h"
#include "cpu/attention/attention_rows.h"
#include "cpu/attention/attention_tiled.h"

namespace tessera::cpu::attn {

KernelSet kernels_scalar() {
  return {&scalar::tile_task<scalar::F32Kernel>, &scalar::row_task};
}

}  // namespace tessera::cpu::attn
