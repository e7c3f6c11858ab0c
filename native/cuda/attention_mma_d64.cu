// Instantiations for head dim 64 (a file per head dim so they compile in parallel).
#include "cuda/attention_mma.cuh"

namespace tessera::cuda {
template void launch_attention_mma_d<64>(const AttnParams&, bool, int, cudaStream_t);
}  // namespace tessera::cuda
