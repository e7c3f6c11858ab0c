// Speculative op family: verifyDraft and codebookNeighbours, each a
// Promise-returning worker (a batch of 16 drafts over V = 16384 reads 2 MB
// per row; the neighbour table is a V×V GEMM). Options arrive normalised by
// lib/decoding/verify.ts; the core re-validates every tensor.
#include <limits>
#include <string>

#include "common.h"
#include "tessera/speculative.h"

namespace tessera::bindings {
namespace {

// verifyDraft({p, q?, drafts, neighbours?, lanternK, lanternDelta, seed,
//   rngRow, step, accepted, next, stats?}) -> Promise<void>
class VerifyDraftWorker : public OpWorker {
 public:
  explicit VerifyDraftWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.p = parse_tensor(env, o.Get("p"), "p", &keep_);
    a_.q = parse_optional_tensor(env, o.Get("q"), "q", &keep_);
    a_.drafts = parse_tensor(env, o.Get("drafts"), "drafts", &keep_);
    a_.neighbours = parse_optional_tensor(env, o.Get("neighbours"), "neighbours", &keep_);
    const int64_t k = get_int(env, o, "lanternK", 0);
    if (k < 0 || k > std::numeric_limits<int32_t>::max()) throw_error(env, Code::kInvalidArgument, "lanternK is out of range");
    a_.lantern_k = static_cast<int32_t>(k);
    a_.lantern_delta = static_cast<float>(get_number(env, o, "lanternDelta", 0));
    a_.seed = get_u64(env, o, "seed");
    a_.rng_row = get_u64(env, o, "rngRow");
    a_.step = get_u64(env, o, "step");
    a_.accepted = parse_tensor(env, o.Get("accepted"), "accepted", &keep_);
    a_.next = parse_tensor(env, o.Get("next"), "next", &keep_);
    a_.stats = parse_optional_tensor(env, o.Get("stats"), "stats", &keep_);
  }

 private:
  void run() override { verify_draft(a_); }
  VerifyDraftArgs a_;
};

// codebookNeighbours({codebook, out, distances?, maxDistance?}) -> Promise<void>
class NeighboursWorker : public OpWorker {
 public:
  explicit NeighboursWorker(const Napi::CallbackInfo& info) : OpWorker(info.Env()) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    a_.codebook = parse_tensor(env, o.Get("codebook"), "codebook", &keep_);
    a_.out = parse_tensor(env, o.Get("out"), "out", &keep_);
    a_.distances = parse_optional_tensor(env, o.Get("distances"), "distances", &keep_);
    a_.max_distance = static_cast<float>(get_number(env, o, "maxDistance", std::numeric_limits<double>::infinity()));
  }

 private:
  void run() override { codebook_neighbours(a_); }
  CodebookNeighboursArgs a_;
};

template <class Worker>
Napi::Function op(Napi::Env env) {
  return Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    if (!info[0].IsObject()) throw_error(info.Env(), Code::kInvalidArgument, "expected an options object");
    return (new Worker(info))->start();
  });
}

}  // namespace

void init_speculative(Napi::Env env, Napi::Object exports) {
  exports.Set("verifyDraft", op<VerifyDraftWorker>(env));
  exports.Set("codebookNeighbours", op<NeighboursWorker>(env));
}

}  // namespace tessera::bindings
