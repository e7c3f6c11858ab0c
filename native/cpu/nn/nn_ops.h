// The NN op family behind tessera/{conv,norm,resize,vq,sampling}.h: the
// shared validators (core/validate_nn.cpp, the same for every backend) and the
// CPU implementations (cpu/nn/*.cpp), which may assume validated arguments.
#pragma once
#include "tessera/conv.h"
#include "tessera/norm.h"
#include "tessera/resize.h"
#include "tessera/sampling.h"
#include "tessera/vq.h"

namespace tessera {

void validate_conv2d(const Conv2dArgs& a);
void validate_group_norm(const GroupNormArgs& a);
void validate_layer_norm(const LayerNormArgs& a);
void validate_rms_norm(const RmsNormArgs& a);
void validate_resize(const ResizeArgs& a);
void validate_vq_nearest(const VqNearestArgs& a);
void validate_embedding(const EmbeddingArgs& a);
void validate_sample(const SampleArgs& a);
void validate_cfg_combine(const CfgArgs& a);

namespace cpu {
void conv2d(const Conv2dArgs& a);
void group_norm(const GroupNormArgs& a);
void layer_norm(const LayerNormArgs& a);
void rms_norm(const RmsNormArgs& a);
void resize(const ResizeArgs& a);
void vq_nearest(const VqNearestArgs& a);
void embedding(const EmbeddingArgs& a);
void sample(const SampleArgs& a);
void cfg_combine(const CfgArgs& a);
}  // namespace cpu

namespace cpu::nn {
// Element offset of row r of a view whose rows are all dims but the last
// (row-major order over the leading dims, any strides).
inline int64_t row_offset(const TensorView& t, int64_t r) {
  int64_t off = 0;
  for (int d = t.rank - 2; d >= 0; --d) {
    off += (r % t.shape[d]) * t.strides[d];
    r /= t.shape[d];
  }
  return off;
}
}  // namespace cpu::nn

}  // namespace tessera
