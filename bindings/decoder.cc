// Composite decoder steps (tessera/decoder.h): a whole block stack per call
// (LlamaGen: llamaBlocks; VAR: varBlocks).
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "tessera/decoder.h"

namespace tessera::bindings {
namespace {

// Calls fn(layer object, "layers[i]") for every entry of o.layers (an array
// of objects), after sizing `out` to it.
template <class Layer, class Fn>
void parse_layers(Napi::Env env, const Napi::Object& o, std::vector<Layer>& out, Fn&& fn) {
  Napi::Value lv = o.Get("layers");
  if (!lv.IsArray()) throw_error(env, Code::kInvalidArgument, "layers must be an array");
  Napi::Array arr = lv.As<Napi::Array>();
  out.resize(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    const std::string at = "layers[" + std::to_string(i) + "]";
    if (!e.IsObject()) throw_error(env, Code::kInvalidArgument, at + " must be an object");
    fn(e.As<Napi::Object>(), out[i], at);
  }
}

// llamaBlocks({x, layers: [{qkv, wo, w1, w3, w2, attentionNorm, ffnNorm,
//   cacheK, cacheV, lengths: Int32Array}], rows, n, heads, headDim, cos, sin,
//   positions, mask, eps, finalNorm?, head?, logits?}) -> Promise<void>. x is
// replaced by the outputs; every layer's `lengths` is advanced by n; with the
// head, logits receive RMSNorm(x, finalNorm)·headᵀ.
// The stack arguments shared by llamaBlocks and llamaDecode: layers, rows,
// heads, headDim, kvHeads (0 or absent = heads), cos, sin, mask, eps and the
// optional head.
void parse_llama_stack(Napi::Env env, const Napi::Object& o, LlamaBlocksArgs& a, std::vector<LlamaLayer>& layers,
                       KeepAlive* keep) {
  a.rows = get_i32(env, o, "rows", 0);
  a.heads = get_i32(env, o, "heads", 0);
  a.head_dim = get_i32(env, o, "headDim", 0);
  a.kv_heads = get_i32(env, o, "kvHeads", 0);
  a.cos = parse_tensor(env, o.Get("cos"), "cos", keep);
  a.sin = parse_tensor(env, o.Get("sin"), "sin", keep);
  a.mask = static_cast<uint32_t>(get_int(env, o, "mask", 0));
  a.eps = static_cast<float>(get_number(env, o, "eps", 1e-5));
  parse_layers(env, o, layers, [&](const Napi::Object& l, LlamaLayer& L, const std::string& at) {
    L.qkv = unwrap_packed_weight(env, l.Get("qkv"), keep);
    L.wo = unwrap_packed_weight(env, l.Get("wo"), keep);
    L.w1 = unwrap_packed_weight(env, l.Get("w1"), keep);
    L.w3 = unwrap_packed_weight(env, l.Get("w3"), keep);
    L.w2 = unwrap_packed_weight(env, l.Get("w2"), keep);
    L.attention_norm = parse_tensor(env, l.Get("attentionNorm"), "attentionNorm", keep);
    L.ffn_norm = parse_tensor(env, l.Get("ffnNorm"), "ffnNorm", keep);
    L.cache_k = parse_tensor(env, l.Get("cacheK"), "cacheK", keep);
    L.cache_v = parse_tensor(env, l.Get("cacheV"), "cacheV", keep);
    Napi::Value len = l.Get("lengths");
    if (!len.IsTypedArray() || len.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw_error(env, Code::kDtype, at + ".lengths must be an Int32Array");
    Napi::Int32Array la = len.As<Napi::Int32Array>();
    if (static_cast<int64_t>(la.ElementLength()) != a.rows)
      throw_error(env, Code::kShape, at + ".lengths must hold one entry per row (" + std::to_string(a.rows) + ")");
    keep->add(la);
    L.lengths = la.Data();
  });
  // Optional head: finalNorm, head (PackedWeight) and logits, all or none.
  a.final_norm = parse_optional_tensor(env, o.Get("finalNorm"), "finalNorm", keep);
  Napi::Value head = o.Get("head");
  if (!head.IsUndefined() && !head.IsNull()) a.head = unwrap_packed_weight(env, head, keep);
  a.layers = layers.data();
  a.num_layers = static_cast<int32_t>(layers.size());
}

class LlamaBlocksWorker : public OpWorker {
 public:
  explicit LlamaBlocksWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_error(env, Code::kInvalidArgument, "llamaBlocks takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.n = get_i32(env, o, "n", 0);
    a_.positions = parse_tensor(env, o.Get("positions"), "positions", &keep_);
    parse_llama_stack(env, o, a_, layers_, &keep_);
    a_.logits = parse_optional_tensor(env, o.Get("logits"), "logits", &keep_);
  }

 private:
  void run() override { llama_blocks(a_); }
  LlamaBlocksArgs a_;
  std::vector<LlamaLayer> layers_;
};

// llamaDecode({...the llamaBlocks stack without x, n and positions; finalNorm
//   and head required, tokEmbeddings, logits [rows, V] (the prefill's,
//   overwritten), images, cfgScale, temperature, topK, topP, seed, firstStep,
//   bias?, tokens: int32 [images, steps], onStep?: (done) => void})
//   -> Promise<void>: plain AR decoding of `steps` tokens per image in one
// call (tessera/decoder.h llama_decode). onStep is called on the main thread
// once per step, in order, and every call is made before the promise
// settles. If it throws, the loop stops before its next step and the
// promise rejects with what it threw (an exception left in a thread-safe
// function's call would end the process).
class LlamaDecodeWorker : public OpWorker {
  // Shared by the worker and the queued step reports, which can outlive it.
  struct Steps {
    int32_t stop = 0;                    // set on the main thread, read by the decoding thread
    bool failed = false;                 // onStep threw (main thread only)
    Napi::ObjectReference error;         // [what it threw] (an array, so primitives can be held)
    std::optional<Napi::Promise::Deferred> done;  // settled when the last report has run
  };

 public:
  explicit LlamaDecodeWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_error(env, Code::kInvalidArgument, "llamaDecode takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    parse_llama_stack(env, o, a_.blocks, layers_, &keep_);
    a_.tok_embeddings = parse_tensor(env, o.Get("tokEmbeddings"), "tokEmbeddings", &keep_);
    a_.logits = parse_tensor(env, o.Get("logits"), "logits", &keep_);
    a_.images = get_i32(env, o, "images", 0);
    a_.cfg_scale = static_cast<float>(get_number(env, o, "cfgScale", 1));
    a_.temperature = static_cast<float>(get_number(env, o, "temperature", 1));
    a_.top_k = get_i32(env, o, "topK", 0);
    a_.top_p = static_cast<float>(get_number(env, o, "topP", 1));
    a_.seed = get_u64(env, o, "seed");
    a_.first_step = get_u64(env, o, "firstStep");
    a_.bias = parse_optional_tensor(env, o.Get("bias"), "bias", &keep_);
    a_.tokens = parse_tensor(env, o.Get("tokens"), "tokens", &keep_);
    Napi::Value cb = o.Get("onStep");
    if (!cb.IsUndefined() && !cb.IsNull()) {
      if (!cb.IsFunction()) throw_error(env, Code::kInvalidArgument, "onStep must be a function");
      // The finalizer runs after the last queued report: it settles the
      // promise result() handed to OnOK.
      auto* owner = new std::shared_ptr<Steps>(steps_);
      tsfn_ = Napi::ThreadSafeFunction::New(env, cb.As<Napi::Function>(), "tessera.llamaDecode.onStep", 0, 1, owner,
                                            [](Napi::Env env, std::shared_ptr<Steps>* st) {
                                              std::shared_ptr<Steps> s = *st;
                                              delete st;
                                              if (!s->done || env == nullptr) return;
                                              if (!s->failed) s->done->Resolve(env.Undefined());
                                              else s->done->Reject(s->error.Value().Get(uint32_t{0}));
                                            });
      has_tsfn_ = true;
      a_.on_step = [](void* ctx, int32_t done) {
        auto* self = static_cast<LlamaDecodeWorker*>(ctx);
        auto* report = new std::pair<int32_t, std::shared_ptr<Steps>>(done, self->steps_);
        const napi_status st = self->tsfn_.NonBlockingCall(report, [](Napi::Env env, Napi::Function fn, auto* r) {
          const int32_t n = r->first;
          std::shared_ptr<Steps> s = std::move(r->second);
          delete r;
          if (env == nullptr || fn == nullptr || s->failed) return;  // after a throw: no more reports
          try {
            fn.Call({Napi::Number::New(env, n)});
          } catch (const Napi::Error& e) {
            Napi::Array held = Napi::Array::New(env, 1);
            held.Set(uint32_t{0}, e.Value());
            s->error = Napi::Persistent(static_cast<Napi::Object>(held));
            s->failed = true;
            __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
          }
        });
        if (st != napi_ok) delete report;  // closing (the environment is going away): drop the report
      };
      a_.on_step_ctx = this;
      a_.stop = &steps_->stop;
    }
  }
  ~LlamaDecodeWorker() override {
    if (has_tsfn_) tsfn_.Release();
  }

 private:
  void run() override { llama_decode(a_); }
  // With onStep: a promise settled by the thread-safe function's finalizer,
  // once every queued report has run (the outer promise adopts it).
  Napi::Value result(Napi::Env env) override {
    if (!has_tsfn_) return env.Undefined();
    steps_->done.emplace(Napi::Promise::Deferred::New(env));
    Napi::Promise p = steps_->done->Promise();
    tsfn_.Release();
    has_tsfn_ = false;
    return p;
  }
  LlamaDecodeArgs a_;
  std::vector<LlamaLayer> layers_;
  std::shared_ptr<Steps> steps_ = std::make_shared<Steps>();
  Napi::ThreadSafeFunction tsfn_;
  bool has_tsfn_ = false;
};

// varBlocks({x, layers: [{qkv, qkvBias, proj, projBias, fc1, fc1Bias, fc2,
//   fc2Bias, headMultiplier?: Float32Array, s1, b1, s2, b2, g1, g2, cacheK,
//   cacheV}], heads, headDim, cacheLength, eps, headScale?, headShift?, head?,
//   headBias?, logits?}) -> Promise<void>. x is replaced by the outputs; k and
// v of the n new tokens are written after cacheLength (the caller advances it).
class VarBlocksWorker : public OpWorker {
 public:
  explicit VarBlocksWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_error(env, Code::kInvalidArgument, "varBlocks takes an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.heads = get_i32(env, o, "heads", 0);
    a_.head_dim = get_i32(env, o, "headDim", 0);
    a_.cache_length = get_int(env, o, "cacheLength", 0);
    a_.eps = static_cast<float>(get_number(env, o, "eps", 1e-6));
    parse_layers(env, o, layers_, [&](const Napi::Object& l, VarLayer& L, const std::string& at) {
      L.qkv = unwrap_packed_weight(env, l.Get("qkv"), &keep_);
      L.proj = unwrap_packed_weight(env, l.Get("proj"), &keep_);
      L.fc1 = unwrap_packed_weight(env, l.Get("fc1"), &keep_);
      L.fc2 = unwrap_packed_weight(env, l.Get("fc2"), &keep_);
      L.qkv_bias = parse_tensor(env, l.Get("qkvBias"), "qkvBias", &keep_);
      L.proj_bias = parse_tensor(env, l.Get("projBias"), "projBias", &keep_);
      L.fc1_bias = parse_tensor(env, l.Get("fc1Bias"), "fc1Bias", &keep_);
      L.fc2_bias = parse_tensor(env, l.Get("fc2Bias"), "fc2Bias", &keep_);
      L.s1 = parse_tensor(env, l.Get("s1"), "s1", &keep_);
      L.b1 = parse_tensor(env, l.Get("b1"), "b1", &keep_);
      L.s2 = parse_tensor(env, l.Get("s2"), "s2", &keep_);
      L.b2 = parse_tensor(env, l.Get("b2"), "b2", &keep_);
      L.g1 = parse_tensor(env, l.Get("g1"), "g1", &keep_);
      L.g2 = parse_tensor(env, l.Get("g2"), "g2", &keep_);
      L.cache_k = parse_tensor(env, l.Get("cacheK"), "cacheK", &keep_);
      L.cache_v = parse_tensor(env, l.Get("cacheV"), "cacheV", &keep_);
      Napi::Value hm = l.Get("headMultiplier");
      if (!hm.IsUndefined() && !hm.IsNull()) {
        if (!hm.IsTypedArray() || hm.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
          throw_error(env, Code::kDtype, at + ".headMultiplier must be a Float32Array");
        Napi::Float32Array f = hm.As<Napi::Float32Array>();
        if (static_cast<int64_t>(f.ElementLength()) != a_.heads)
          throw_error(env, Code::kShape, at + ".headMultiplier must hold one entry per head (" + std::to_string(a_.heads) + ")");
        keep_.add(f);
        L.head_multiplier = f.Data();
      }
    });
    a_.layers = layers_.data();
    a_.num_layers = static_cast<int32_t>(layers_.size());
    a_.head_scale = parse_optional_tensor(env, o.Get("headScale"), "headScale", &keep_);
    a_.head_shift = parse_optional_tensor(env, o.Get("headShift"), "headShift", &keep_);
    Napi::Value head = o.Get("head");
    if (!head.IsUndefined() && !head.IsNull()) a_.head = unwrap_packed_weight(env, head, &keep_);
    a_.head_bias = parse_optional_tensor(env, o.Get("headBias"), "headBias", &keep_);
    a_.logits = parse_optional_tensor(env, o.Get("logits"), "logits", &keep_);
  }

 private:
  void run() override { var_blocks(a_); }
  VarBlocksArgs a_;
  std::vector<VarLayer> layers_;
};

}  // namespace

void init_decoder(Napi::Env env, Napi::Object exports) {
  exports.Set("llamaBlocks", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new LlamaBlocksWorker(info))->start();
  }));
  exports.Set("llamaDecode", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new LlamaDecodeWorker(info))->start();
  }));
  exports.Set("varBlocks", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new VarBlocksWorker(info))->start();
  }));
}

}  // namespace tessera::bindings
