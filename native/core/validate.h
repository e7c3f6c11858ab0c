// Argument validation shared by every backend, so that the same call is
// accepted or refused identically on CPU and CUDA. Each throws tessera::Error.
#pragma once
#include "tessera/attention.h"
#include "tessera/gemm.h"

namespace tessera {

void validate_linear(const LinearArgs& a);
void validate_matmul(const MatmulArgs& a);
void validate_attention(const AttentionArgs& a);
void validate_rope(const RopeArgs& a);
void validate_kv_append(const KvAppendArgs& a);

}  // namespace tessera
