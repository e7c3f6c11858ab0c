// Attention kernels for the AVX2 + FMA (ymm) instruction set: the shared
// vector-extension sources instantiated at 8 floats per vector.
#define TESSERA_ATTN_NS avx2
#define TESSERA_ATTN_WIDTH 8
#include "cpu/attention/attention_fp32.h"
#include "cpu/attention/attention_rows.h"
#include "cpu/attention/attention_tiled.h"

namespace tessera::cpu::attn {

KernelSet kernels_avx2() {
  return {&avx2::tile_task<avx2::F32Kernel>, &avx2::row_task};
}

}  // namespace tessera::cpu::attn
