// Public entry points of the splat family: validate once, then run on the
// device the tensors live on. The output image (render) or the means gradient
// (backward) names the device: CPU outputs run on the CPU backend, whose
// validation refuses CUDA inputs; CUDA outputs go to the CUDA library, which
// runs the same shared validation on its side and refuses any tensor that is
// not on the output's device (ERR_DEVICE), so mixed placements never run.
#include "cpu/splat/splat_cpu.h"
#include "tessera/backend.h"
#include "tessera/splat.h"

namespace tessera {

// validate_splat.cpp
void validate_splat_render(const SplatRenderArgs& a);
void validate_splat_backward(const SplatBackwardArgs& a);

namespace {
template <class Args>
void run_cuda(int (*fn)(const Args*, ErrBuf*), const Args& a) {
  ErrBuf err{};
  const int rc = fn(&a, &err);
  if (rc != 0) throw_cuda_error(rc, err);
}
}  // namespace

void splat_render(const SplatRenderArgs& a) {
  if (a.rgb.device.kind == DeviceKind::kCUDA) return run_cuda(cuda_api().splat_render, a);
  validate_splat_render(a);
  cpu::splat_render(a);
}

void splat_backward(const SplatBackwardArgs& a) {
  if (a.grad_means.device.kind == DeviceKind::kCUDA) return run_cuda(cuda_api().splat_backward, a);
  validate_splat_backward(a);
  cpu::splat_backward(a);
}

}  // namespace tessera
