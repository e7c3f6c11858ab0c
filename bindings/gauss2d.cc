// 2D image Gaussians: render and backward, one Promise each (libuv worker).
#include "common.h"
#include "tessera/gauss2d.h"

namespace tessera::bindings {
namespace {

// {xy, cholesky, color, width, height}
Gauss2dImage parse_image(Napi::Env env, const Napi::Object& o, KeepAlive* keep) {
  Gauss2dImage im;
  im.xy = parse_tensor(env, o.Get("xy"), "xy", keep);
  im.cholesky = parse_tensor(env, o.Get("cholesky"), "cholesky", keep);
  im.color = parse_tensor(env, o.Get("color"), "color", keep);
  const int64_t w = get_int(env, o, "width", 0), h = get_int(env, o, "height", 0);
  if (w < 1 || h < 1 || w > 65536 || h > 65536)
    throw_error(env, Code::kInvalidArgument, "width and height must be integers in 1..65536");
  im.width = static_cast<int32_t>(w);
  im.height = static_cast<int32_t>(h);
  return im;
}

Napi::Object stats_object(Napi::Env env, const Gauss2dStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("gaussians", static_cast<double>(s.gaussians));
  o.Set("invalid", static_cast<double>(s.invalid));
  o.Set("visible", static_cast<double>(s.visible));
  o.Set("intersections", static_cast<double>(s.intersections));
  return o;
}

// gauss2dRender({xy, cholesky, color, width, height, rgb: [Ho,Wo,3], clamp?}) -> Promise<stats>
class RenderWorker : public OpWorker {
 public:
  explicit RenderWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_error(env, Code::kInvalidArgument, "gauss2dRender expects an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    a_.image = parse_image(env, o, &keep_);
    a_.rgb = parse_tensor(env, o.Get("rgb"), "rgb", &keep_);
    a_.clamp = get_bool(o, "clamp", true);
    a_.stats = &stats_;
  }

 private:
  void run() override { gauss2d_render(a_); }
  Napi::Value result(Napi::Env env) override { return stats_object(env, stats_); }
  Gauss2dRenderArgs a_;
  Gauss2dStats stats_;
};

// gauss2dBackward({xy, cholesky, color, width, height, gradRgb, clamp?, gradXy, gradCholesky, gradColor}) -> Promise<stats>
class BackwardWorker : public OpWorker {
 public:
  explicit BackwardWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_error(env, Code::kInvalidArgument, "gauss2dBackward expects an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    a_.image = parse_image(env, o, &keep_);
    a_.grad_rgb = parse_tensor(env, o.Get("gradRgb"), "gradRgb", &keep_);
    a_.clamp = get_bool(o, "clamp", true);
    a_.grad_xy = parse_tensor(env, o.Get("gradXy"), "gradXy", &keep_);
    a_.grad_cholesky = parse_tensor(env, o.Get("gradCholesky"), "gradCholesky", &keep_);
    a_.grad_color = parse_tensor(env, o.Get("gradColor"), "gradColor", &keep_);
    a_.stats = &stats_;
  }

 private:
  void run() override { gauss2d_backward(a_); }
  Napi::Value result(Napi::Env env) override { return stats_object(env, stats_); }
  Gauss2dBackwardArgs a_;
  Gauss2dStats stats_;
};

}  // namespace

void init_gauss2d(Napi::Env env, Napi::Object exports) {
  exports.Set("gauss2dRender", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new RenderWorker(info))->start();
  }));
  exports.Set("gauss2dBackward", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new BackwardWorker(info))->start();
  }));
}

}  // namespace tessera::bindings
