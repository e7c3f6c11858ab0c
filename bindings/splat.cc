// Gaussian-splatting family: 3DGS render and its backward, one Promise each
// (a frame takes milliseconds, so the work runs on a libuv worker).
#include <cmath>
#include <vector>

#include "common.h"
#include "tessera/splat.h"

namespace tessera::bindings {
namespace {

// {means, logScales, rotations, opacityLogits, sh, shDegree}
SplatScene parse_scene(Napi::Env env, const Napi::Object& o, KeepAlive* keep) {
  SplatScene s;
  s.means = parse_tensor(env, o.Get("means"), "means", keep);
  s.log_scales = parse_tensor(env, o.Get("logScales"), "logScales", keep);
  s.rotations = parse_tensor(env, o.Get("rotations"), "rotations", keep);
  s.opacity_logits = parse_tensor(env, o.Get("opacityLogits"), "opacityLogits", keep);
  s.sh = parse_tensor(env, o.Get("sh"), "sh", keep);
  const int64_t deg = get_int(env, o, "shDegree", 0);
  if (deg < 0 || deg > 3) throw_error(env, Code::kInvalidArgument, "shDegree must be 0..3");
  s.sh_degree = static_cast<int32_t>(deg);
  return s;
}

float get_float(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_error(env, Code::kInvalidArgument, std::string("camera.") + key + " must be a number");
  return static_cast<float>(v.As<Napi::Number>().DoubleValue());
}

// [{fx, fy, cx, cy, width, height, view: 16 numbers, row-major world→camera}]
std::vector<SplatCamera> parse_cameras(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) throw_error(env, Code::kInvalidArgument, "cameras must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<SplatCamera> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsObject()) throw_error(env, Code::kInvalidArgument, "each camera must be an object");
    Napi::Object c = e.As<Napi::Object>();
    SplatCamera& k = out[i];
    k.fx = get_float(env, c, "fx");
    k.fy = get_float(env, c, "fy");
    k.cx = get_float(env, c, "cx");
    k.cy = get_float(env, c, "cy");
    k.width = static_cast<int32_t>(get_int(env, c, "width", 0));
    k.height = static_cast<int32_t>(get_int(env, c, "height", 0));
    Napi::Value view = c.Get("view");
    if (!view.IsTypedArray() && !view.IsArray())
      throw_error(env, Code::kInvalidArgument, "camera.view must be 16 numbers (row-major 4x4)");
    Napi::Object vo = view.As<Napi::Object>();
    if (vo.Get("length").ToNumber().Uint32Value() != 16)
      throw_error(env, Code::kInvalidArgument, "camera.view must have 16 entries (row-major 4x4)");
    for (uint32_t j = 0; j < 16; ++j) k.view[j] = vo.Get(j).ToNumber().FloatValue();
  }
  return out;
}

// mode, background, near
void parse_options(Napi::Env env, const Napi::Object& o, SplatMode* mode, float bg[3], float* near_plane) {
  const int64_t m = get_int(env, o, "mode", 0);
  if (m != 0 && m != 1) throw_error(env, Code::kInvalidArgument, "mode must be 0 (classic) or 1 (antialiased)");
  *mode = static_cast<SplatMode>(m);
  Napi::Value b = o.Get("background");
  if (!b.IsUndefined() && !b.IsNull()) {
    if (!b.IsArray() || b.As<Napi::Array>().Length() != 3)
      throw_error(env, Code::kInvalidArgument, "background must be [r, g, b]");
    for (uint32_t c = 0; c < 3; ++c) bg[c] = b.As<Napi::Array>().Get(c).ToNumber().FloatValue();
  }
  *near_plane = static_cast<float>(get_number(env, o, "near", kSplatNear));
}

Napi::Object stats_object(Napi::Env env, const SplatStats& s, const SplatStageTimes& times) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("gaussians", static_cast<double>(s.gaussians));
  o.Set("invalid", static_cast<double>(s.invalid));
  o.Set("culledNear", static_cast<double>(s.culled_near));
  o.Set("culledOutside", static_cast<double>(s.culled_outside));
  o.Set("visible", static_cast<double>(s.visible));
  o.Set("intersections", static_cast<double>(s.intersections));
  Napi::Object stages = Napi::Object::New(env);  // {stage: {wallMs, cpuMs}} of the CPU rasterizer
  for (int k = 0; k < kSplatStages; ++k) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("wallMs", times.wall_ms[k]);
    t.Set("cpuMs", times.cpu_ms[k]);
    stages.Set(kSplatStageNames[k], t);
  }
  o.Set("stages", stages);
  return o;
}

// splatRender({scene fields, cameras, mode, background, near, rgb, alpha?, depth?, contributors?}) -> Promise<stats>
class RenderWorker : public OpWorker {
 public:
  explicit RenderWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.scene = parse_scene(env, o, &keep_);
    cams_ = parse_cameras(env, o.Get("cameras"));
    a_.cameras = cams_.data();
    a_.num_cameras = static_cast<int32_t>(cams_.size());
    parse_options(env, o, &a_.mode, a_.background, &a_.near_plane);
    a_.rgb = parse_tensor(env, o.Get("rgb"), "rgb", &keep_);
    a_.alpha = parse_optional_tensor(env, o.Get("alpha"), "alpha", &keep_);
    a_.depth = parse_optional_tensor(env, o.Get("depth"), "depth", &keep_);
    a_.contributors = parse_optional_tensor(env, o.Get("contributors"), "contributors", &keep_);
    a_.stats = &stats_;
  }

 private:
  void run() override {
    splat_take_stage_times();
    splat_render(a_);
    times_ = splat_take_stage_times();
  }
  Napi::Value result(Napi::Env env) override { return stats_object(env, stats_, times_); }
  SplatRenderArgs a_;
  std::vector<SplatCamera> cams_;
  SplatStats stats_;
  SplatStageTimes times_;
};

// splatBackward({scene fields, cameras, mode, background, near, gradRgb, gradAlpha?, gradDepth?,
//                gradMeans, gradLogScales, gradRotations, gradOpacityLogits, gradSh}) -> Promise<stats>
class BackwardWorker : public OpWorker {
 public:
  explicit BackwardWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.scene = parse_scene(env, o, &keep_);
    cams_ = parse_cameras(env, o.Get("cameras"));
    a_.cameras = cams_.data();
    a_.num_cameras = static_cast<int32_t>(cams_.size());
    parse_options(env, o, &a_.mode, a_.background, &a_.near_plane);
    a_.grad_rgb = parse_tensor(env, o.Get("gradRgb"), "gradRgb", &keep_);
    a_.grad_alpha = parse_optional_tensor(env, o.Get("gradAlpha"), "gradAlpha", &keep_);
    a_.grad_depth = parse_optional_tensor(env, o.Get("gradDepth"), "gradDepth", &keep_);
    a_.grad_means = parse_tensor(env, o.Get("gradMeans"), "gradMeans", &keep_);
    a_.grad_log_scales = parse_tensor(env, o.Get("gradLogScales"), "gradLogScales", &keep_);
    a_.grad_rotations = parse_tensor(env, o.Get("gradRotations"), "gradRotations", &keep_);
    a_.grad_opacity_logits = parse_tensor(env, o.Get("gradOpacityLogits"), "gradOpacityLogits", &keep_);
    a_.grad_sh = parse_tensor(env, o.Get("gradSh"), "gradSh", &keep_);
    a_.stats = &stats_;
  }

 private:
  void run() override {
    splat_take_stage_times();
    splat_backward(a_);
    times_ = splat_take_stage_times();
  }
  Napi::Value result(Napi::Env env) override { return stats_object(env, stats_, times_); }
  SplatBackwardArgs a_;
  std::vector<SplatCamera> cams_;
  SplatStats stats_;
  SplatStageTimes times_;
};

}  // namespace

void init_splat(Napi::Env env, Napi::Object exports) {
  exports.Set("splatRender", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new RenderWorker(info))->start();
  }));
  exports.Set("splatBackward", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new BackwardWorker(info))->start();
  }));
}

}  // namespace tessera::bindings
