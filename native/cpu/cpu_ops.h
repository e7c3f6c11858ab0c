// CPU implementations behind the public entry points (called after validation).
#pragma once
#include "tessera/attention.h"
#include "tessera/gemm.h"

namespace tessera::cpu {

void linear(const LinearArgs& a);
void matmul(const MatmulArgs& a);
PackedWeight* pack_weight(const TensorView& w, DType compute);
void free_packed_weight(PackedWeight* w);
size_t packed_weight_bytes(const PackedWeight* w);

void attention(const AttentionArgs& a);
void rope_apply(const RopeArgs& a);
void kv_append(const KvAppendArgs& a);

}  // namespace tessera::cpu
