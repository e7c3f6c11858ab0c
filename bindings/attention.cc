// Attention family: fused attention, rotary embeddings and KV-cache appends.
// Arguments arrive normalised by lib/ops (mask flags as numbers, layouts as
// the enum values); every tensor is re-validated by parse_tensor and the core.
#include <chrono>
#include <vector>

#include "common.h"
#include "tessera/attention.h"
#include "tessera/threadpool.h"

namespace tessera::bindings {
namespace {

QkvLayout parse_layout(Napi::Env env, const Napi::Object& o) {
  const int64_t v = get_int(env, o, "layout", 0);
  if (v != 0 && v != 1) throw_error(env, Code::kInvalidArgument, "layout must be 0 (bhld) or 1 (blhd)");
  return static_cast<QkvLayout>(v);
}

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Where the wall time of attention calls goes, summed over successful calls
// (main-thread state: updated when a call's promise resolves).
struct AttentionTimings {
  double calls = 0, queue_us = 0, native_us = 0, return_us = 0;
};
AttentionTimings g_timings;

// attention({q, k, v, out, layout, scale, mask, blockLengths?, qSegments?,
//   kSegments?, additive?, kvLengths?, l2norm?, headMultiplier?, lse?}) -> Promise<void>
class AttentionWorker : public OpWorker {
 public:
  explicit AttentionWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()), t_call_(now_us()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.q = parse_tensor(env, o.Get("q"), "q", &keep_);
    a_.k = parse_tensor(env, o.Get("k"), "k", &keep_);
    a_.v = parse_tensor(env, o.Get("v"), "v", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.layout = parse_layout(env, o);
    a_.scale = static_cast<float>(get_number(env, o, "scale", 0.0));
    a_.mask = static_cast<uint32_t>(get_int(env, o, "mask", 0));
    Napi::Value blocks = o.Get("blockLengths");
    if (blocks.IsArray()) {
      Napi::Array arr = blocks.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value b = arr.Get(i);
        if (!b.IsNumber()) throw_error(env, Code::kInvalidArgument, "blockLengths must be numbers");
        block_lengths_.push_back(b.As<Napi::Number>().Int64Value());
      }
      a_.block_lengths = block_lengths_.data();
      a_.num_blocks = static_cast<int32_t>(block_lengths_.size());
    }
    a_.q_segments = parse_optional_tensor(env, o.Get("qSegments"), "qSegments", &keep_);
    a_.k_segments = parse_optional_tensor(env, o.Get("kSegments"), "kSegments", &keep_);
    a_.additive = parse_optional_tensor(env, o.Get("additive"), "additive", &keep_);
    a_.kv_lengths = parse_optional_tensor(env, o.Get("kvLengths"), "kvLengths", &keep_);
    a_.l2norm_qk = get_bool(o, "l2norm", false);
    Napi::Value hm = o.Get("headMultiplier");
    if (hm.IsTypedArray()) {
      Napi::TypedArray ta = hm.As<Napi::TypedArray>();
      if (ta.TypedArrayType() != napi_float32_array)
        throw_error(env, Code::kDtype, "headMultiplier must be a Float32Array");
      Napi::Float32Array f = hm.As<Napi::Float32Array>();
      head_multiplier_.assign(f.Data(), f.Data() + f.ElementLength());
      a_.head_multiplier = head_multiplier_.data();
    }
    a_.lse = parse_optional_tensor(env, o.Get("lse"), "lse", &keep_);
  }

 private:
  void run() override {
    t_begin_ = now_us();
    attention(a_);
    t_end_ = now_us();
  }
  Napi::Value result(Napi::Env env) override {
    g_timings.calls += 1;
    g_timings.queue_us += t_begin_ - t_call_;
    g_timings.native_us += t_end_ - t_begin_;
    g_timings.return_us += now_us() - t_end_;
    return env.Undefined();
  }
  double t_call_, t_begin_ = 0, t_end_ = 0;
  AttentionArgs a_;
  std::vector<int64_t> block_lengths_;
  std::vector<float> head_multiplier_;
};

// ropeApply({x, out, layout, cos, sin, positions?, style, rotaryDim}) -> Promise<void>
class RopeWorker : public OpWorker {
 public:
  explicit RopeWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.x = parse_tensor(env, o.Get("x"), "x", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.layout = parse_layout(env, o);
    a_.cos = parse_tensor(env, o.Get("cos"), "cos", &keep_);
    a_.sin = parse_tensor(env, o.Get("sin"), "sin", &keep_);
    a_.positions = parse_optional_tensor(env, o.Get("positions"), "positions", &keep_);
    const int64_t style = get_int(env, o, "style", 0);
    if (style != 0 && style != 1) throw_error(env, Code::kInvalidArgument, "style must be 0 (interleaved) or 1 (half)");
    a_.style = static_cast<RopeStyle>(style);
    a_.rotary_dim = static_cast<int32_t>(get_int(env, o, "rotaryDim", 0));
  }

 private:
  void run() override { rope_apply(a_); }
  RopeArgs a_;
};

// kvAppend({cacheK, cacheV, kNew, vNew, layout, lengths: Int32Array, counts?: Int32Array})
// -> Promise<void>. `lengths` is advanced in place by the native call.
class KvAppendWorker : public OpWorker {
 public:
  explicit KvAppendWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.cache_k = parse_tensor(env, o.Get("cacheK"), "cacheK", &keep_);
    a_.cache_v = parse_tensor(env, o.Get("cacheV"), "cacheV", &keep_);
    a_.k_new = parse_tensor(env, o.Get("kNew"), "kNew", &keep_);
    a_.v_new = parse_tensor(env, o.Get("vNew"), "vNew", &keep_);
    a_.layout = parse_layout(env, o);
    const int64_t batch = a_.cache_k.rank > 0 ? a_.cache_k.shape[0] : 0;
    a_.lengths = host_int32(env, o.Get("lengths"), "lengths", batch, false);
    a_.counts = host_int32(env, o.Get("counts"), "counts", batch, true);
  }

 private:
  int32_t* host_int32(Napi::Env env, const Napi::Value& v, const char* what, int64_t batch, bool optional) {
    if (optional && (v.IsUndefined() || v.IsNull())) return nullptr;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw_error(env, Code::kDtype, std::string(what) + " must be an Int32Array");
    Napi::Int32Array arr = v.As<Napi::Int32Array>();
    if (static_cast<int64_t>(arr.ElementLength()) != batch)
      throw_error(env, Code::kShape, std::string(what) + " must hold one entry per batch row (" +
                                         std::to_string(batch) + ")");
    keep_.add(arr);
    return arr.Data();
  }
  void run() override { kv_append(a_); }
  KvAppendArgs a_;
};

Napi::Float32Array f32_out(Napi::Env env, const Napi::Value& v, size_t need, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_error(env, Code::kDtype, std::string(what) + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (a.ElementLength() < need)
    throw_error(env, Code::kShape, std::string(what) + " must hold " + std::to_string(need) + " floats");
  return a;
}

int32_t positive_int(Napi::Env env, const Napi::Value& v, const char* what) {
  const int64_t n = v.IsNumber() ? v.As<Napi::Number>().Int64Value() : -1;
  if (n < 0 || n > (int64_t(1) << 30)) throw_error(env, Code::kInvalidArgument, std::string(what) + " out of range");
  return static_cast<int32_t>(n);
}

// Table builders are cheap (one row per position) and run synchronously.
// ropeTable1d(positions, rotaryDim, base, cos, sin)
Napi::Value rope_table_1d_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t P = positive_int(env, info[0], "positions"), R = positive_int(env, info[1], "rotaryDim");
  const double base = info[2].As<Napi::Number>().DoubleValue();
  Napi::Float32Array c = f32_out(env, info[3], size_t(P) * (R / 2), "cos");
  Napi::Float32Array s = f32_out(env, info[4], size_t(P) * (R / 2), "sin");
  guarded(env, [&] { rope_table_1d(P, R, base, c.Data(), s.Data()); });
  return env.Undefined();
}

// ropeTable2d(grid, numPrefix, rotaryDim, base, cos, sin)
Napi::Value rope_table_2d_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t grid = positive_int(env, info[0], "grid"), prefix = positive_int(env, info[1], "numPrefix");
  const int32_t R = positive_int(env, info[2], "rotaryDim");
  const double base = info[3].As<Napi::Number>().DoubleValue();
  const size_t rows = size_t(prefix) + size_t(grid) * grid;
  Napi::Float32Array c = f32_out(env, info[4], rows * (R / 2), "cos");
  Napi::Float32Array s = f32_out(env, info[5], rows * (R / 2), "sin");
  guarded(env, [&] { rope_table_2d(grid, prefix, R, base, c.Data(), s.Data()); });
  return env.Undefined();
}

// ropeTable3d(positions, heads, rotaryDim, xyz, freqs, cos, sin)
Napi::Value rope_table_3d_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t P = positive_int(env, info[0], "positions"), H = positive_int(env, info[1], "heads");
  const int32_t R = positive_int(env, info[2], "rotaryDim");
  Napi::Float32Array xyz = f32_out(env, info[3], size_t(P) * 3, "xyz");
  Napi::Float32Array freqs = f32_out(env, info[4], size_t(H) * (R / 2) * 3, "freqs");
  Napi::Float32Array c = f32_out(env, info[5], size_t(P) * H * (R / 2), "cos");
  Napi::Float32Array s = f32_out(env, info[6], size_t(P) * H * (R / 2), "sin");
  guarded(env, [&] { rope_table_3d(P, H, R, xyz.Data(), freqs.Data(), c.Data(), s.Data()); });
  return env.Undefined();
}

// attentionTimings(reset) -> {calls, queueUs, nativeUs, returnUs, pool: {...}}: sums
// since the last reset. queue = call -> native start on a libuv thread, native =
// the native call, return = native end -> promise resolution on the main thread.
// The pool part counts every op's jobs, not only attention's.
Napi::Value attention_timings_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool reset = info.Length() > 0 && info[0].ToBoolean().Value();
  Napi::Object o = Napi::Object::New(env);
  o.Set("calls", g_timings.calls);
  o.Set("queueUs", g_timings.queue_us);
  o.Set("nativeUs", g_timings.native_us);
  o.Set("returnUs", g_timings.return_us);
  const ThreadPool::Stats s = ThreadPool::global().stats(reset);
  Napi::Object p = Napi::Object::New(env);
  p.Set("jobs", static_cast<double>(s.jobs));
  p.Set("workerStarts", static_cast<double>(s.worker_starts));
  p.Set("workerSleeps", static_cast<double>(s.worker_sleeps));
  p.Set("callerSleeps", static_cast<double>(s.caller_sleeps));
  p.Set("wakeUs", s.wake_us);
  p.Set("joinUs", s.join_us);
  p.Set("spinUs", ThreadPool::global().spin_us());
  o.Set("pool", p);
  if (reset) g_timings = AttentionTimings{};
  return o;
}

// setSpinUs(us) -> us: the pool's spin window before a waiting thread sleeps.
Napi::Value set_spin_us_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double us = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(us >= 0 && us <= 10000) || us != static_cast<int>(us))
    throw_error(env, Code::kInvalidArgument, "spin window must be an integer number of us in [0, 10000]");
  guarded(env, [&] { ThreadPool::global().set_spin_us(static_cast<int>(us)); });
  return Napi::Number::New(env, ThreadPool::global().spin_us());
}

}  // namespace

void init_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new AttentionWorker(info))->start();
  }));
  exports.Set("ropeApply", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new RopeWorker(info))->start();
  }));
  exports.Set("kvAppend", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new KvAppendWorker(info))->start();
  }));
  exports.Set("attentionTimings", Napi::Function::New(env, attention_timings_js));
  exports.Set("setSpinUs", Napi::Function::New(env, set_spin_us_js));
  exports.Set("ropeTable1d", Napi::Function::New(env, rope_table_1d_js));
  exports.Set("ropeTable2d", Napi::Function::New(env, rope_table_2d_js));
  exports.Set("ropeTable3d", Napi::Function::New(env, rope_table_3d_js));
}

}  // namespace tessera::bindings
