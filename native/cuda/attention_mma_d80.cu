// Instantiations for head dim 80 (a file per head dim so they compile in parallel).
#include "cuda/attention_mma.cuh"

namespace tessera::cuda {
template void launch_attention_mma_d<80>(const AttnParams&, bool, int, cudaStream_t);
}  // namespace tessera::cuda
