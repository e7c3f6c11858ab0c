// Attention kernels for the AVX-512 (zmm) instruction set: the shared
// vector-extension sources instantiated at 16 floats per vector, with the
// fp32 tiled path replaced by the fused register-resident one and the row
// (decode) path by the 16-keys-at-a-time one.
#define TESSERA_ATTN_NS avx512
#define TESSERA_ATTN_WIDTH 16
#include "cpu/attention/attention_fp32.h"
#include "cpu/attention/attention_rows512.h"
#include "cpu/attention/attention_tiled512.h"

namespace tessera::cpu::attn {

KernelSet kernels_avx512() {
  return {&avx512::fused_tile_task, &avx512::row_task512};
}

}  // namespace tessera::cpu::attn
