// Public entry points of the NN op family: validate once, then run on the
// device of the output. These ops exist on the CPU only for now; a CUDA
// tensor is refused with a message instead of being copied behind the
// caller's back.
#include <string>

#include "cpu/nn/nn_ops.h"

namespace tessera {
namespace {
void require_cpu(const TensorView& t, const char* op) {
  TESSERA_CHECK(t.device.kind == DeviceKind::kCPU, kDevice,
                std::string(op) + " runs on the CPU only for now; copy the tensors to the CPU (toCpu()) first");
}
}  // namespace

void conv2d(const Conv2dArgs& a) {
  validate_conv2d(a);
  require_cpu(a.out, "conv2d");
  cpu::conv2d(a);
}

void group_norm(const GroupNormArgs& a) {
  validate_group_norm(a);
  require_cpu(a.out, "group_norm");
  cpu::group_norm(a);
}

void layer_norm(const LayerNormArgs& a) {
  validate_layer_norm(a);
  require_cpu(a.out, "layer_norm");
  cpu::layer_norm(a);
}

void rms_norm(const RmsNormArgs& a) {
  validate_rms_norm(a);
  require_cpu(a.out, "rms_norm");
  cpu::rms_norm(a);
}

void resize(const ResizeArgs& a) {
  validate_resize(a);
  require_cpu(a.out, "resize");
  cpu::resize(a);
}

void vq_nearest(const VqNearestArgs& a) {
  validate_vq_nearest(a);
  require_cpu(a.indices, "vq_nearest");
  cpu::vq_nearest(a);
}

void embedding(const EmbeddingArgs& a) {
  validate_embedding(a);
  require_cpu(a.out, "embedding");
  cpu::embedding(a);
}

void sample(const SampleArgs& a) {
  validate_sample(a);
  require_cpu(a.tokens, "sample");
  cpu::sample(a);
}

void cfg_combine(const CfgArgs& a) {
  validate_cfg_combine(a);
  require_cpu(a.out, "cfg_combine");
  cpu::cfg_combine(a);
}

}  // namespace tessera
