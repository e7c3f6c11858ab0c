// Public entry points of the 2D-Gaussian family: validate once, then run on
// the CPU (validation refuses CUDA tensors with ERR_DEVICE until a CUDA
// backend exists, so one can slot in here without changing callers).
#include "cpu/gauss2d/gauss2d_cpu.h"
#include "tessera/gauss2d.h"

namespace tessera {

// validate_gauss2d.cpp
void validate_gauss2d_render(const Gauss2dRenderArgs& a);
void validate_gauss2d_backward(const Gauss2dBackwardArgs& a);

void gauss2d_render(const Gauss2dRenderArgs& a) {
  validate_gauss2d_render(a);
  cpu::gauss2d_render(a);
}

void gauss2d_backward(const Gauss2dBackwardArgs& a) {
  validate_gauss2d_backward(a);
  cpu::gauss2d_backward(a);
}

}  // namespace tessera
