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

// split_keys = false keeps every (batch, kv head) of a few-query-row call in
// one task; true lets it split the keys when those pairs are too few to
// occupy the pool (attention_splits_keys), which changes the summation order.
void attention(const AttentionArgs& a, bool split_keys = true);
bool attention_splits_keys(int64_t pairs, int64_t Lq, int64_t Lk);
void rope_apply(const RopeArgs& a);
void kv_append(const KvAppendArgs& a);

}  // namespace tessera::cpu
