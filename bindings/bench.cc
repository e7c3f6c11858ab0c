// Machine ceilings measured in the same run as a benchmark (FMA peak, copy
// bandwidth), so `tessera bench` can print results as a fraction of them.
#include "common.h"
#include "tessera/bench.h"

namespace tessera::bindings {
namespace {

// measureFmaPeak(threads, bf16) -> Promise<GFLOP/s>
class FmaPeakWorker : public OpWorker {
 public:
  explicit FmaPeakWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    threads_ = info[0].As<Napi::Number>().Int32Value();
    bf16_ = info[1].ToBoolean().Value();
    if (threads_ < 1) throw_error(info.Env(), Code::kInvalidArgument, "threads must be >= 1");
  }

 private:
  void run() override { gflops_ = measure_fma_peak_gflops(threads_, bf16_); }
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, gflops_); }
  int threads_ = 1;
  bool bf16_ = false;
  double gflops_ = 0;
};

// measureCopyBandwidth(threads, bytes) / measureReadBandwidth(threads, bytes) -> Promise<GB/s>
class CopyBandwidthWorker : public OpWorker {
 public:
  CopyBandwidthWorker(const Napi::CallbackInfo& info, bool read_only) : OpWorker(info.Env()), read_only_(read_only) {
    if (!info[0].IsNumber() || !info[1].IsNumber())
      throw_error(info.Env(), Code::kInvalidArgument, "threads and bytes must be numbers");
    threads_ = info[0].As<Napi::Number>().Int32Value();
    const double bytes = info[1].As<Napi::Number>().DoubleValue();
    if (threads_ < 1 || !(bytes >= 4096))
      throw_error(info.Env(), Code::kInvalidArgument, "threads must be >= 1 and bytes >= 4096");
    bytes_ = static_cast<size_t>(bytes);
  }

 private:
  void run() override {
    gbs_ = read_only_ ? measure_read_bandwidth_gbs(threads_, bytes_) : measure_copy_bandwidth_gbs(threads_, bytes_);
  }
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, gbs_); }
  bool read_only_;
  int threads_ = 1;
  size_t bytes_ = 0;
  double gbs_ = 0;
};

}  // namespace

void init_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("measureFmaPeak", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new FmaPeakWorker(info))->start();
  }));
  exports.Set("measureCopyBandwidth", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new CopyBandwidthWorker(info, false))->start();
  }));
  exports.Set("measureReadBandwidth", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return (new CopyBandwidthWorker(info, true))->start();
  }));
}

}  // namespace tessera::bindings
