// Public entry points of the splat family: validate once, then run on the
// device the tensors live on. Only the CPU backend exists so far; validation
// refuses CUDA tensors with ERR_DEVICE, so a CUDA backend can slot in here
// with the same semantics (splat.h) without changing callers.
#include "cpu/splat/splat_cpu.h"
#include "tessera/splat.h"

namespace tessera {

// validate_splat.cpp
void validate_splat_render(const SplatRenderArgs& a);
void validate_splat_backward(const SplatBackwardArgs& a);

void splat_render(const SplatRenderArgs& a) {
  validate_splat_render(a);
  cpu::splat_render(a);
}

void splat_backward(const SplatBackwardArgs& a) {
  validate_splat_backward(a);
  cpu::splat_backward(a);
}

}  // namespace tessera
