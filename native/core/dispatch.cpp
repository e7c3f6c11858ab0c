// Public entry points: validate once, then run on the device the tensors live on.
#include "core/validate.h"
#include "cpu/cpu_ops.h"
#include "tessera/backend.h"

namespace tessera {
namespace {
bool on_cpu(const TensorView& t) { return t.device.kind == DeviceKind::kCPU; }

template <class Args>
void run_cuda(int (*fn)(const Args*, ErrBuf*), const Args& a) {
  ErrBuf err{};
  int rc = fn(&a, &err);
  if (rc != 0) throw_cuda_error(rc, err);
}
}  // namespace

void linear(const LinearArgs& a) {
  validate_linear(a);
  if (on_cpu(a.out)) return cpu::linear(a);
  run_cuda(cuda_api().linear, a);
}

void matmul(const MatmulArgs& a) {
  validate_matmul(a);
  if (on_cpu(a.c)) return cpu::matmul(a);
  run_cuda(cuda_api().matmul, a);
}

void attention(const AttentionArgs& a) {
  validate_attention(a);
  if (on_cpu(a.out)) return cpu::attention(a);
  run_cuda(cuda_api().attention, a);
}

void rope_apply(const RopeArgs& a) {
  validate_rope(a);
  if (on_cpu(a.out)) return cpu::rope_apply(a);
  run_cuda(cuda_api().rope_apply, a);
}

void kv_append(const KvAppendArgs& a) {
  validate_kv_append(a);
  if (on_cpu(a.cache_k)) return cpu::kv_append(a);
  run_cuda(cuda_api().kv_append, a);
}

}  // namespace tessera
