// Validation of gauss2d_render() and gauss2d_backward(): shapes, dtypes,
// devices, sizes and aliasing; values inside the parameters are not checked
// here (invalid Gaussians are skipped and counted by the renderer).
#include <string>
#include <vector>

#include "tessera/gauss2d.h"

namespace tessera {
namespace {

void check_f32(const char* op, const char* name, const TensorView& t, bool contiguous) {
  const std::string who = std::string(op) + ": " + name;
  TESSERA_CHECK(t.device.kind == DeviceKind::kCPU, kDevice, who + " is on CUDA; 2D Gaussians render on the CPU only so far");
  TESSERA_CHECK(t.dtype == DType::kF32, kDtype, who + " must be float32, got " + dtype_name(t.dtype));
  TESSERA_CHECK(t.numel() == 0 || !t.empty(), kInvalidArgument, who + " is missing (null data)");
  if (contiguous)
    TESSERA_CHECK(t.is_contiguous(), kShape, who + " must be contiguous, got " + shape_str(t));
  else
    TESSERA_CHECK(t.rank == 0 || t.shape[t.rank - 1] <= 1 || t.strides[t.rank - 1] == 1, kShape,
                  who + " must be contiguous along its last dimension");
}

void check_rows(const char* op, const char* name, const TensorView& t, int64_t n, int64_t cols) {
  TESSERA_CHECK(t.rank == 2 && t.shape[0] == n && t.shape[1] == cols, kShape,
                std::string(op) + ": " + name + " must be [" + std::to_string(n) + ", " + std::to_string(cols) +
                    "], got " + shape_str(t));
}

int64_t check_image(const char* op, const Gauss2dImage& im) {
  TESSERA_CHECK(im.xy.rank == 2 && im.xy.shape[1] == 2, kShape, std::string(op) + ": xy must be [N, 2], got " + shape_str(im.xy));
  const int64_t n = im.xy.shape[0];
  TESSERA_CHECK(n < (int64_t(1) << 31), kShape, std::string(op) + ": at most 2^31 - 1 Gaussians per call");
  check_rows(op, "cholesky", im.cholesky, n, 3);
  check_rows(op, "color", im.color, n, 3);
  check_f32(op, "xy", im.xy, false);
  check_f32(op, "cholesky", im.cholesky, false);
  check_f32(op, "color", im.color, false);
  TESSERA_CHECK(im.width >= 1 && im.height >= 1 && im.width <= 65536 && im.height <= 65536, kInvalidArgument,
                std::string(op) + ": width and height must be 1..65536, got " + std::to_string(im.width) + "x" +
                    std::to_string(im.height));
  return n;
}

void check_output(const char* op, const char* name, const TensorView& t) {
  check_f32(op, name, t, true);
  TESSERA_CHECK(t.rank == 3 && t.shape[2] == 3 && t.shape[0] >= 1 && t.shape[1] >= 1 && t.shape[0] <= 65536 &&
                    t.shape[1] <= 65536, kShape,
                std::string(op) + ": " + name + " must be [Ho, Wo, 3] with 1 <= Ho, Wo <= 65536, got " + shape_str(t));
}

using Named = std::pair<const char*, const TensorView*>;
void check_no_alias(const char* op, const std::vector<Named>& outs, const std::vector<Named>& ins) {
  for (size_t i = 0; i < outs.size(); ++i) {
    for (const auto& in : ins)
      TESSERA_CHECK(!overlaps(*outs[i].second, *in.second), kAlias,
                    std::string(op) + ": " + outs[i].first + " overlaps " + in.first + "; use separate buffers");
    for (size_t j = i + 1; j < outs.size(); ++j)
      TESSERA_CHECK(!overlaps(*outs[i].second, *outs[j].second), kAlias,
                    std::string(op) + ": " + outs[i].first + " overlaps " + outs[j].first + "; use separate buffers");
  }
}

}  // namespace

void validate_gauss2d_render(const Gauss2dRenderArgs& a) {
  const char* op = "gauss2dRender";
  check_image(op, a.image);
  check_output(op, "rgb", a.rgb);
  check_no_alias(op, {{"rgb", &a.rgb}}, {{"xy", &a.image.xy}, {"cholesky", &a.image.cholesky}, {"color", &a.image.color}});
}

void validate_gauss2d_backward(const Gauss2dBackwardArgs& a) {
  const char* op = "gauss2dBackward";
  const int64_t n = check_image(op, a.image);
  check_output(op, "gradRgb", a.grad_rgb);
  check_f32(op, "gradXy", a.grad_xy, true);
  check_f32(op, "gradCholesky", a.grad_cholesky, true);
  check_f32(op, "gradColor", a.grad_color, true);
  check_rows(op, "gradXy", a.grad_xy, n, 2);
  check_rows(op, "gradCholesky", a.grad_cholesky, n, 3);
  check_rows(op, "gradColor", a.grad_color, n, 3);
  check_no_alias(op, {{"gradXy", &a.grad_xy}, {"gradCholesky", &a.grad_cholesky}, {"gradColor", &a.grad_color}},
                 {{"xy", &a.image.xy}, {"cholesky", &a.image.cholesky}, {"color", &a.image.color},
                  {"gradRgb", &a.grad_rgb}});
}

}  // namespace tessera
