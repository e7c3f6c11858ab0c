// NN op family: conv2d, group/layer/rms norms, resize, vq_nearest, embedding,
// sample, cfgCombine. Every op is a Promise-returning worker (any of them can
// pass 50 µs on real shapes); options arrive normalised by lib/ops and every
// tensor is re-validated by parse_tensor and the core.
#include <cmath>
#include <string>

#include "common.h"
#include "tessera/conv.h"
#include "tessera/norm.h"
#include "tessera/resize.h"
#include "tessera/sampling.h"
#include "tessera/vq.h"

namespace tessera::bindings {

namespace {

float get_f32(Napi::Env env, const Napi::Object& o, const char* key, float dflt) {
  return static_cast<float>(get_number(env, o, key, dflt));
}

// conv2d({x, weight, packed?, bias?, out, strideH, strideW, padTop, padBottom,
//   padLeft, padRight, dilationH, dilationW, groups, accumulate, upsample}) -> Promise<void>
// packed: the weight viewed as [Co, Ci·kh·kw] and packed once by packWeight()
// (weight still gives the kernel's shape); used instead of packing per call.
class Conv2dWorker : public OpWorker {
 public:
  explicit Conv2dWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.weight = parse_tensor(env, o.Get("weight"), "weight", &keep_);
    a_.bias = parse_optional_tensor(env, o.Get("bias"), "bias", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    Napi::Value packed = o.Get("packed");
    if (!packed.IsUndefined() && !packed.IsNull()) a_.packed = unwrap_packed_weight(env, packed, &keep_);
    a_.stride_h = get_i32(env, o, "strideH", 1);
    a_.stride_w = get_i32(env, o, "strideW", 1);
    a_.pad_top = get_i32(env, o, "padTop", 0);
    a_.pad_bottom = get_i32(env, o, "padBottom", 0);
    a_.pad_left = get_i32(env, o, "padLeft", 0);
    a_.pad_right = get_i32(env, o, "padRight", 0);
    a_.dilation_h = get_i32(env, o, "dilationH", 1);
    a_.dilation_w = get_i32(env, o, "dilationW", 1);
    a_.groups = get_i32(env, o, "groups", 1);
    a_.accumulate = get_bool(o, "accumulate", false);
    a_.upsample = get_i32(env, o, "upsample", 1);
  }

 private:
  void run() override { conv2d(a_); }
  Conv2dArgs a_;
};

// groupNorm({x, weight?, bias?, out, groups, eps, silu}) -> Promise<void>
class GroupNormWorker : public OpWorker {
 public:
  explicit GroupNormWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.weight = parse_optional_tensor(env, o.Get("weight"), "weight", &keep_);
    a_.bias = parse_optional_tensor(env, o.Get("bias"), "bias", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.num_groups = get_i32(env, o, "groups", 32);
    a_.eps = get_f32(env, o, "eps", 1e-6f);
    a_.silu = get_bool(o, "silu", false);
  }

 private:
  void run() override { group_norm(a_); }
  GroupNormArgs a_;
};

// layerNorm({x, weight?, bias?, scale?, shift?, out, eps}) -> Promise<void>
class LayerNormWorker : public OpWorker {
 public:
  explicit LayerNormWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.weight = parse_optional_tensor(env, o.Get("weight"), "weight", &keep_);
    a_.bias = parse_optional_tensor(env, o.Get("bias"), "bias", &keep_);
    a_.scale = parse_optional_tensor(env, o.Get("scale"), "scale", &keep_);
    a_.shift = parse_optional_tensor(env, o.Get("shift"), "shift", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.eps = get_f32(env, o, "eps", 1e-6f);
  }

 private:
  void run() override { layer_norm(a_); }
  LayerNormArgs a_;
};

// rmsNorm({x, weight?, out, eps}) -> Promise<void>
class RmsNormWorker : public OpWorker {
 public:
  explicit RmsNormWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.weight = parse_optional_tensor(env, o.Get("weight"), "weight", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.eps = get_f32(env, o, "eps", 1e-5f);
  }

 private:
  void run() override { rms_norm(a_); }
  RmsNormArgs a_;
};

// resize({x, out, mode: 0 nearest | 1 area | 2 bicubic | 3 bilinear}) -> Promise<void>
class ResizeWorker : public OpWorker {
 public:
  explicit ResizeWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.mode = static_cast<ResizeMode>(get_i32(env, o, "mode", 2));
  }

 private:
  void run() override { resize(a_); }
  ResizeArgs a_;
};

// vqNearest({z, codebook, indices, l2Normalize}) -> Promise<void>
class VqNearestWorker : public OpWorker {
 public:
  explicit VqNearestWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.z = parse_tensor(env, o.Get("z"), "z", &keep_);
    a_.codebook = parse_tensor(env, o.Get("codebook"), "codebook", &keep_);
    a_.indices = parse_tensor(env, o.Get("indices"), "indices", &keep_);
    a_.l2_normalize = get_bool(o, "l2Normalize", false);
  }

 private:
  void run() override { vq_nearest(a_); }
  VqNearestArgs a_;
};

// embedding({table, indices, out, l2Normalize}) -> Promise<void>
class EmbeddingWorker : public OpWorker {
 public:
  explicit EmbeddingWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.table = parse_tensor(env, o.Get("table"), "table", &keep_);
    a_.indices = parse_tensor(env, o.Get("indices"), "indices", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.l2_normalize = get_bool(o, "l2Normalize", false);
  }

 private:
  void run() override { embedding(a_); }
  EmbeddingArgs a_;
};

// sample({logits, uncond?, cfgScale, temperature, topK, topP, seed, step,
//   rowOffset, tokens, probs?}) -> Promise<void>; seed/step: Number or BigInt
class SampleWorker : public OpWorker {
 public:
  explicit SampleWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.logits = parse_tensor(env, o.Get("logits"), "logits", &keep_);
    a_.uncond = parse_optional_tensor(env, o.Get("uncond"), "uncond", &keep_);
    a_.cfg_scale = get_f32(env, o, "cfgScale", 1.f);
    a_.temperature = get_f32(env, o, "temperature", 1.f);
    a_.top_k = get_i32(env, o, "topK", 0);
    a_.top_p = get_f32(env, o, "topP", 1.f);
    a_.seed = get_u64(env, o, "seed");
    a_.step = get_u64(env, o, "step");
    a_.row_offset = static_cast<int64_t>(get_u64(env, o, "rowOffset"));
    a_.tokens = parse_tensor(env, o.Get("tokens"), "tokens", &keep_);
    a_.probs = parse_optional_tensor(env, o.Get("probs"), "probs", &keep_);
  }

 private:
  void run() override { sample(a_); }
  SampleArgs a_;
};

// cfgCombine({cond, uncond, out, scale}) -> Promise<void>
class CfgWorker : public OpWorker {
 public:
  explicit CfgWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.cond = parse_tensor(env, o.Get("cond"), "cond", &keep_);
    a_.uncond = parse_tensor(env, o.Get("uncond"), "uncond", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.scale = get_f32(env, o, "scale", 1.f);
  }

 private:
  void run() override { cfg_combine(a_); }
  CfgArgs a_;
};

// philoxUniform(seed, row, step) -> number in [0, 1): the draw sample() makes
// for that RNG row and step (for speculative-decoding code in TS). Synchronous.
Napi::Value philox_uniform_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("seed", info[0]);
  o.Set("row", info[1]);
  o.Set("step", info[2]);
  return Napi::Number::New(env, philox_uniform(get_u64(env, o, "seed"), get_u64(env, o, "row"), get_u64(env, o, "step")));
}

template <class Worker>
Napi::Function op(Napi::Env env) {
  return Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    if (!info[0].IsObject()) throw_error(info.Env(), Code::kInvalidArgument, "expected an options object");
    return (new Worker(info))->start();
  });
}

}  // namespace

void init_nn(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2d", op<Conv2dWorker>(env));
  exports.Set("groupNorm", op<GroupNormWorker>(env));
  exports.Set("layerNorm", op<LayerNormWorker>(env));
  exports.Set("rmsNorm", op<RmsNormWorker>(env));
  exports.Set("resize", op<ResizeWorker>(env));
  exports.Set("vqNearest", op<VqNearestWorker>(env));
  exports.Set("embedding", op<EmbeddingWorker>(env));
  exports.Set("sample", op<SampleWorker>(env));
  exports.Set("cfgCombine", op<CfgWorker>(env));
  exports.Set("philoxUniform", Napi::Function::New(env, philox_uniform_js));
}

}  // namespace tessera::bindings
