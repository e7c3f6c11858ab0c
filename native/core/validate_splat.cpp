// Validation of splat_render() and splat_backward(): the same calls are
// accepted or refused on every backend, with messages that say what to fix.
// Values inside the scene are not checked here (invalid Gaussians are
// skipped and counted by the rasterizer); shapes, dtypes, devices, cameras,
// options and aliasing are.
#include <cmath>
#include <string>
#include <vector>

#include "tessera/splat.h"

namespace tessera {
namespace {

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t v : d) s += (s.size() > 1 ? ", " : "") + std::to_string(v);
  return s + "]";
}

bool shape_is(const TensorView& t, std::initializer_list<int64_t> d) {
  if (t.rank != static_cast<int32_t>(d.size())) return false;
  int i = 0;
  for (int64_t v : d)
    if (t.shape[i++] != v) return false;
  return true;
}

void check_tensor(const char* op, const char* name, const TensorView& t, DType dt, bool contiguous) {
  const std::string who = std::string(op) + ": " + name;
  TESSERA_CHECK(t.device.kind == DeviceKind::kCPU, kDevice,
                who + " is on CUDA while the output is on the CPU: put every tensor of the call on one device");
  TESSERA_CHECK(t.dtype == dt, kDtype, who + " must be " + dtype_name(dt) + ", got " + dtype_name(t.dtype));
  TESSERA_CHECK(t.numel() == 0 || !t.empty(), kInvalidArgument, who + " is missing (null data)");
  if (contiguous)
    TESSERA_CHECK(t.is_contiguous(), kShape, who + " must be contiguous, got strides of " + shape_str(t));
  else
    TESSERA_CHECK(t.rank == 0 || t.shape[t.rank - 1] <= 1 || t.strides[t.rank - 1] == 1, kShape,
                  who + " must be contiguous along its last dimension");
}

void check_shape(const char* op, const char* name, const TensorView& t, std::initializer_list<int64_t> d) {
  TESSERA_CHECK(shape_is(t, d), kShape,
                std::string(op) + ": " + name + " must be " + dims(d) + ", got " + shape_str(t));
}

// Returns K (SH coefficients per colour).
int64_t check_scene(const char* op, const SplatScene& s) {
  const TensorView& m = s.means;
  TESSERA_CHECK(m.rank == 2 && m.shape[1] == 3, kShape, std::string(op) + ": means must be [N, 3], got " + shape_str(m));
  const int64_t N = m.shape[0];
  TESSERA_CHECK(N < (int64_t(1) << 31), kShape, std::string(op) + ": at most 2^31 - 1 Gaussians per call");
  check_shape(op, "logScales", s.log_scales, {N, 3});
  check_shape(op, "rotations", s.rotations, {N, 4});
  check_shape(op, "opacityLogits", s.opacity_logits, {N});
  TESSERA_CHECK(s.sh_degree >= 0 && s.sh_degree <= 3, kInvalidArgument,
                std::string(op) + ": shDegree must be 0..3, got " + std::to_string(s.sh_degree));
  const int64_t need = int64_t(s.sh_degree + 1) * (s.sh_degree + 1);
  TESSERA_CHECK(s.sh.rank == 3 && s.sh.shape[0] == N && s.sh.shape[2] == 3 && s.sh.shape[1] >= need, kShape,
                std::string(op) + ": sh must be [N, K, 3] with N = " + std::to_string(N) + " and K >= " +
                    std::to_string(need) + " for degree " + std::to_string(s.sh_degree) + ", got " + shape_str(s.sh));
  const std::pair<const char*, const TensorView*> all[] = {{"means", &s.means}, {"logScales", &s.log_scales},
      {"rotations", &s.rotations}, {"opacityLogits", &s.opacity_logits}, {"sh", &s.sh}};
  for (const auto& [name, t] : all) check_tensor(op, name, *t, DType::kF32, false);
  return s.sh.shape[1];
}

void check_cameras(const char* op, const SplatCamera* cams, int32_t n, SplatMode mode, const float* bg, float near_plane) {
  TESSERA_CHECK(cams != nullptr && n >= 1, kInvalidArgument, std::string(op) + ": at least one camera is needed");
  TESSERA_CHECK(mode == SplatMode::kClassic || mode == SplatMode::kAntialiased, kInvalidArgument,
                std::string(op) + ": mode must be classic (0) or antialiased (1)");
  TESSERA_CHECK(std::isfinite(near_plane) && near_plane > 0, kInvalidArgument,
                std::string(op) + ": near plane must be a positive finite number");
  for (int c = 0; c < 3; ++c)
    TESSERA_CHECK(std::isfinite(bg[c]), kInvalidArgument, std::string(op) + ": background must be finite");
  for (int32_t i = 0; i < n; ++i) {
    const SplatCamera& k = cams[i];
    const std::string who = std::string(op) + ": camera " + std::to_string(i);
    TESSERA_CHECK(k.width >= 1 && k.height >= 1 && k.width <= 32768 && k.height <= 32768, kInvalidArgument,
                  who + " size must be 1..32768 pixels per side, got " + std::to_string(k.width) + "x" + std::to_string(k.height));
    TESSERA_CHECK(k.width == cams[0].width && k.height == cams[0].height, kInvalidArgument,
                  who + " is " + std::to_string(k.width) + "x" + std::to_string(k.height) +
                      " but camera 0 is " + std::to_string(cams[0].width) + "x" + std::to_string(cams[0].height) +
                      "; render cameras of different sizes in separate calls");
    TESSERA_CHECK(std::isfinite(k.fx) && std::isfinite(k.fy) && k.fx > 0 && k.fy > 0 && std::isfinite(k.cx) && std::isfinite(k.cy),
                  kInvalidArgument, who + ": fx and fy must be positive and fx, fy, cx, cy finite");
    for (float v : k.view) TESSERA_CHECK(std::isfinite(v), kInvalidArgument, who + ": view matrix must be finite");
    const float* V = k.view;
    TESSERA_CHECK(std::fabs(V[12]) < 1e-6f && std::fabs(V[13]) < 1e-6f && std::fabs(V[14]) < 1e-6f && std::fabs(V[15] - 1) < 1e-6f,
                  kInvalidArgument, who + ": the view matrix's last row must be [0, 0, 0, 1] (a rigid world-to-camera transform)");
    // The upper 3×3 must be a rotation (within float tolerance): the camera
    // centre is computed as −Rᵀ·t.
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 3; ++s) {
        const float d = V[4 * r] * V[4 * s] + V[4 * r + 1] * V[4 * s + 1] + V[4 * r + 2] * V[4 * s + 2];
        TESSERA_CHECK(std::fabs(d - (r == s ? 1.f : 0.f)) < 1e-3f, kInvalidArgument,
                      who + ": the view matrix's upper 3x3 must be a rotation (orthonormal rows)");
      }
  }
}

void check_no_alias(const char* op, const std::vector<std::pair<const char*, const TensorView*>>& outs,
                    const std::vector<std::pair<const char*, const TensorView*>>& ins) {
  for (size_t i = 0; i < outs.size(); ++i) {
    for (const auto& in : ins)
      TESSERA_CHECK(!overlaps(*outs[i].second, *in.second), kAlias,
                    std::string(op) + ": " + outs[i].first + " overlaps " + in.first + "; use separate buffers");
    for (size_t j = i + 1; j < outs.size(); ++j)
      TESSERA_CHECK(!overlaps(*outs[i].second, *outs[j].second), kAlias,
                    std::string(op) + ": " + outs[i].first + " overlaps " + outs[j].first + "; use separate buffers");
  }
}

void check_image(const char* op, const char* name, const TensorView& t, DType dt, int64_t C, int64_t H, int64_t W,
                 int channels, bool optional) {
  if (optional && t.empty() && t.rank == 0) return;
  check_tensor(op, name, t, dt, true);
  if (channels) check_shape(op, name, t, {C, H, W, channels});
  else check_shape(op, name, t, {C, H, W});
}

}  // namespace

void validate_splat_render(const SplatRenderArgs& a) {
  const char* op = "splatRender";
  check_scene(op, a.scene);
  check_cameras(op, a.cameras, a.num_cameras, a.mode, a.background, a.near_plane);
  const int64_t C = a.num_cameras, H = a.cameras[0].height, W = a.cameras[0].width;
  check_image(op, "rgb", a.rgb, DType::kF32, C, H, W, 3, false);
  check_image(op, "alpha", a.alpha, DType::kF32, C, H, W, 0, true);
  check_image(op, "depth", a.depth, DType::kF32, C, H, W, 0, true);
  check_image(op, "contributors", a.contributors, DType::kI32, C, H, W, 0, true);
  const SplatScene& s = a.scene;
  check_no_alias(op, {{"rgb", &a.rgb}, {"alpha", &a.alpha}, {"depth", &a.depth}, {"contributors", &a.contributors}},
                 {{"means", &s.means}, {"logScales", &s.log_scales}, {"rotations", &s.rotations},
                  {"opacityLogits", &s.opacity_logits}, {"sh", &s.sh}});
}

void validate_splat_backward(const SplatBackwardArgs& a) {
  const char* op = "splatBackward";
  const int64_t K = check_scene(op, a.scene);
  check_cameras(op, a.cameras, a.num_cameras, a.mode, a.background, a.near_plane);
  const int64_t C = a.num_cameras, H = a.cameras[0].height, W = a.cameras[0].width, N = a.scene.means.shape[0];
  check_image(op, "gradRgb", a.grad_rgb, DType::kF32, C, H, W, 3, false);
  check_image(op, "gradAlpha", a.grad_alpha, DType::kF32, C, H, W, 0, true);
  check_image(op, "gradDepth", a.grad_depth, DType::kF32, C, H, W, 0, true);
  const std::pair<const char*, const TensorView*> outs[] = {{"gradMeans", &a.grad_means},
      {"gradLogScales", &a.grad_log_scales}, {"gradRotations", &a.grad_rotations},
      {"gradOpacityLogits", &a.grad_opacity_logits}, {"gradSh", &a.grad_sh}};
  for (const auto& [name, t] : outs) check_tensor(op, name, *t, DType::kF32, true);
  check_shape(op, "gradMeans", a.grad_means, {N, 3});
  check_shape(op, "gradLogScales", a.grad_log_scales, {N, 3});
  check_shape(op, "gradRotations", a.grad_rotations, {N, 4});
  check_shape(op, "gradOpacityLogits", a.grad_opacity_logits, {N});
  check_shape(op, "gradSh", a.grad_sh, {N, K, 3});
  const SplatScene& s = a.scene;
  check_no_alias(op, {outs[0], outs[1], outs[2], outs[3], outs[4]},
                 {{"means", &s.means}, {"logScales", &s.log_scales}, {"rotations", &s.rotations},
                  {"opacityLogits", &s.opacity_logits}, {"sh", &s.sh}, {"gradRgb", &a.grad_rgb},
                  {"gradAlpha", &a.grad_alpha}, {"gradDepth", &a.grad_depth}});
}

}  // namespace tessera
