// `tessera_cuda_tests --bench`: times the CUDA ops on random data (never
// zeros) and prints TFLOP/s counting only useful work (masked keys excluded).
// Timing: warm-up, synchronize, then batches of back-to-back launches on the
// library's stream bracketed by synchronize; the median batch is reported.
// (The library's stream is internal, so device events cannot be recorded on
// it from here; with batches of many launches the host bracket adds < 1%
// for kernels above ~100 µs. The decode row includes launch overhead.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include "cuda_util.h"
#include "tessera/attention.h"
#include "tessera/gemm.h"

namespace ct {
using namespace tessera;
namespace {

double median_ms(const std::function<void()>& op, int reps) {
  op();
  op();
  sync();
  std::vector<double> batches;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) op();
    sync();
    const auto t1 = std::chrono::steady_clock::now();
    batches.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count() / reps);
  }
  std::sort(batches.begin(), batches.end());
  return batches[2];
}

// Random bits in a dtype, quickly (xorshift), in a modest range.
DevBuf random_device(DType dt, size_t n, uint64_t seed) {
  std::vector<unsigned char> raw(n * dtype_size(dt));
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const float f = static_cast<float>((x >> 40) & 0xffff) / 32768.f - 1.f;
    if (dt == DType::kF32) std::memcpy(&raw[i * 4], &f, 4);
    else {
      const uint16_t u = dt == DType::kBF16 ? f32_to_bf16(f) : f32_to_f16(f);
      std::memcpy(&raw[i * 2], &u, 2);
    }
  }
  DevBuf d(raw.size());
  d.upload(raw.data(), raw.size());
  return d;
}

void row(const char* name, double ms, double flops, const char* note = "") {
  std::printf("BENCH | %-44s | %9.3f ms | %8.1f TFLOP/s | %s\n", name, ms, flops / (ms * 1e-3) / 1e12, note);
  std::fflush(stdout);
}

struct AttnBench {
  const char* name;
  int B, Hq, Hkv, Lq, Lk, D;
  DType dt;
  uint32_t mask;
  std::vector<int64_t> blocks;
  std::vector<int32_t> kv_len;
};

void bench_attention(const AttnBench& c) {
  DevBuf q = random_device(c.dt, size_t(c.B) * c.Hq * c.Lq * c.D, 1);
  DevBuf k = random_device(c.dt, size_t(c.B) * c.Hkv * c.Lk * c.D, 2);
  DevBuf v = random_device(c.dt, size_t(c.B) * c.Hkv * c.Lk * c.D, 3);
  DevBuf o(size_t(c.B) * c.Hq * c.Lq * c.D * dtype_size(c.dt));
  AttentionArgs a;
  a.q = view(q, c.dt, {c.B, c.Lq, c.Hq, c.D});  // BLHD, as models produce it
  a.k = view(k, c.dt, {c.B, c.Lk, c.Hkv, c.D});
  a.v = view(v, c.dt, {c.B, c.Lk, c.Hkv, c.D});
  a.out = view(o, c.dt, {c.B, c.Lq, c.Hq, c.D});
  a.layout = QkvLayout::kBLHD;
  a.scale = 1.f / std::sqrt(float(c.D));
  a.mask = c.mask;
  a.block_lengths = c.blocks.empty() ? nullptr : c.blocks.data();
  a.num_blocks = static_cast<int32_t>(c.blocks.size());
  std::vector<int32_t> kvl = c.kv_len;
  if (!kvl.empty()) a.kv_lengths = make_view(kvl.data(), DType::kI32, {c.B});
  // Useful work: 4·D flops per visible (query, key) pair (QKᵀ and PV).
  std::vector<int64_t> end_of;
  for (int64_t b : c.blocks)
    for (int64_t t = 0, e = (end_of.empty() ? 0 : end_of.back()) + b; t < b; ++t) end_of.push_back(e);
  double pairs = 0;
  for (int b = 0; b < c.B; ++b) {
    const int64_t kvl_b = kvl.empty() ? c.Lk : kvl[b];
    for (int64_t i = 0; i < c.Lq; ++i) {
      const int64_t p = kvl_b - c.Lq + i;
      int64_t lim = kvl_b;
      if (c.mask & kMaskCausal) lim = std::min(lim, p + 1);
      if (c.mask & kMaskBlockCausal) lim = p < 0 ? 0 : std::min(lim, end_of[p]);
      pairs += double(std::max<int64_t>(lim, 0));
    }
  }
  const double flops = pairs * c.Hq * 4.0 * c.D;
  const double once = median_ms([&] { call(api().attention, &a); }, 1);
  const int reps = std::max(1, std::min(50, int(300.0 / std::max(once, 1e-3))));
  const double ms = median_ms([&] { call(api().attention, &a); }, reps);
  const double bytes = double(q.bytes + k.bytes + v.bytes + o.bytes);
  char note[96];
  std::snprintf(note, sizeof(note), "%.0f GB/s of q,k,v,out", bytes / (ms * 1e-3) / 1e9);
  row(c.name, ms, flops, note);
}

void bench_linear(const char* name, DType dt, DType out_dt, int64_t M, int64_t N, int64_t K) {
  DevBuf x = random_device(dt, M * K, 4), w = random_device(dt, N * K, 5), o(M * N * dtype_size(out_dt));
  LinearArgs a;
  a.x = view(x, dt, {M, K});
  a.weight = view(w, dt, {N, K});
  a.out = view(o, out_dt, {M, N});
  const double once = median_ms([&] { call(api().linear, &a); }, 1);
  const int reps = std::max(1, std::min(50, int(300.0 / std::max(once, 1e-3))));
  row(name, median_ms([&] { call(api().linear, &a); }, reps), 2.0 * M * N * K);
}

}  // namespace

int run_bench() {
  std::vector<int64_t> var10 = {1, 4, 9, 16, 25, 36, 64, 100, 169, 256};
  const AttnBench cases[] = {
      {"attn bf16 causal L4096 D128 B16 H32", 16, 32, 32, 4096, 4096, 128, DType::kBF16, kMaskCausal, {}, {}},
      {"attn bf16 full   L4096 D128 B16 H32", 16, 32, 32, 4096, 4096, 128, DType::kBF16, kMaskNone, {}, {}},
      {"attn f16  causal L4096 D128 B16 H32", 16, 32, 32, 4096, 4096, 128, DType::kF16, kMaskCausal, {}, {}},
      {"attn bf16 causal L4096 D64  B16 H32", 16, 32, 32, 4096, 4096, 64, DType::kBF16, kMaskCausal, {}, {}},
      {"attn bf16 VAR block-causal L680 D64 B32 H16", 32, 16, 16, 680, 680, 64, DType::kBF16, kMaskBlockCausal, var10, {}},
      {"attn bf16 decode Lq1 Lk1024 D128 B16 Hq32 Hkv8", 16, 32, 8, 1, 1024, 128, DType::kBF16, kMaskCausal, {}, {}},
      {"attn f32 (SIMT) causal L1024 D64 B4 H16", 4, 16, 16, 1024, 1024, 64, DType::kF32, kMaskCausal, {}, {}},
  };
  std::printf("BENCH | %-44s | %12s | %16s | %s\n", "case", "time", "rate", "note");
  for (const auto& c : cases) bench_attention(c);
  bench_linear("linear bf16 4096^3 (mma.sync) out bf16", DType::kBF16, DType::kBF16, 4096, 4096, 4096);
  bench_linear("linear f16 4096^3 (mma.sync) out f32", DType::kF16, DType::kF32, 4096, 4096, 4096);
  bench_linear("linear f32 4096^3 (SIMT)", DType::kF32, DType::kF32, 4096, 4096, 4096);
  return 0;
}

}  // namespace ct
