// Composite decoder steps (tessera/decoder.h): a whole block stack per call.
#include <string>
#include <vector>

#include "common.h"
#include "tessera/decoder.h"

namespace tessera::bindings {
namespace {

int32_t get_i32(Napi::Env env, const Napi::Object& o, const char* key) {
  const int64_t v = get_int(env, o, key, 0);
  if (v < 0 || v > INT32_MAX) throw_error(env, Code::kInvalidArgument, std::string(key) + " is out of range");
  return static_cast<int32_t>(v);
}

// llamaBlocks({x, layers: [{qkv, wo, w1, w3, w2, attentionNorm, ffnNorm,
//   cacheK, cacheV, lengths: Int32Array}], rows, n, heads, headDim, cos, sin,
//   positions, mask, eps, finalNorm?, head?, logits?}) -> Promise<void>. x is
// replaced by the outputs; every layer's `lengths` is advanced by n; with the
// head, logits receive RMSNorm(x, finalNorm)·headᵀ.
class LlamaBlocksWorker : public OpWorker {
 public:
  explicit LlamaBlocksWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_error(env, Code::kInvalidArgument, "llamaBlocks takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.rows = get_i32(env, o, "rows");
    a_.n = get_i32(env, o, "n");
    a_.heads = get_i32(env, o, "heads");
    a_.head_dim = get_i32(env, o, "headDim");
    a_.cos = parse_tensor(env, o.Get("cos"), "cos", &keep_);
    a_.sin = parse_tensor(env, o.Get("sin"), "sin", &keep_);
    a_.positions = parse_tensor(env, o.Get("positions"), "positions", &keep_);
    a_.mask = static_cast<uint32_t>(get_int(env, o, "mask", 0));
    a_.eps = static_cast<float>(get_number(env, o, "eps", 1e-5));
    Napi::Value lv = o.Get("layers");
    if (!lv.IsArray()) throw_error(env, Code::kInvalidArgument, "layers must be an array");
    Napi::Array arr = lv.As<Napi::Array>();
    layers_.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value e = arr.Get(i);
      if (!e.IsObject()) throw_error(env, Code::kInvalidArgument, "layers[" + std::to_string(i) + "] must be an object");
      Napi::Object l = e.As<Napi::Object>();
      LlamaLayer& L = layers_[i];
      L.qkv = unwrap_packed_weight(env, l.Get("qkv"), &keep_);
      L.wo = unwrap_packed_weight(env, l.Get("wo"), &keep_);
      L.w1 = unwrap_packed_weight(env, l.Get("w1"), &keep_);
      L.w3 = unwrap_packed_weight(env, l.Get("w3"), &keep_);
      L.w2 = unwrap_packed_weight(env, l.Get("w2"), &keep_);
      L.attention_norm = parse_tensor(env, l.Get("attentionNorm"), "attentionNorm", &keep_);
      L.ffn_norm = parse_tensor(env, l.Get("ffnNorm"), "ffnNorm", &keep_);
      L.cache_k = parse_tensor(env, l.Get("cacheK"), "cacheK", &keep_);
      L.cache_v = parse_tensor(env, l.Get("cacheV"), "cacheV", &keep_);
      Napi::Value len = l.Get("lengths");
      if (!len.IsTypedArray() || len.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw_error(env, Code::kDtype, "layers[" + std::to_string(i) + "].lengths must be an Int32Array");
      Napi::Int32Array la = len.As<Napi::Int32Array>();
      if (static_cast<int64_t>(la.ElementLength()) != a_.rows)
        throw_error(env, Code::kShape, "layers[" + std::to_string(i) + "].lengths must hold one entry per row (" +
                                           std::to_string(a_.rows) + ")");
      keep_.add(la);
      L.lengths = la.Data();
    }
    // Optional head: finalNorm, head (PackedWeight) and logits, all or none.
    a_.final_norm = parse_optional_tensor(env, o.Get("finalNorm"), "finalNorm", &keep_);
    Napi::Value head = o.Get("head");
    if (!head.IsUndefined() && !head.IsNull()) a_.head = unwrap_packed_weight(env, head, &keep_);
    a_.logits = parse_optional_tensor(env, o.Get("logits"), "logits", &keep_);
    a_.layers = layers_.data();
    a_.num_layers = static_cast<int32_t>(layers_.size());
  }

 private:
  void run() override { llama_blocks(a_); }
  LlamaBlocksArgs a_;
  std::vector<LlamaLayer> layers_;
};

}  // namespace

void init_decoder(Napi::Env env, Napi::Object exports) {
  exports.Set("llamaBlocks", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new LlamaBlocksWorker(info))->start();
  }));
}

}  // namespace tessera::bindings
