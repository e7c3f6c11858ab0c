// Run-time machine ceilings (tessera/bench.h), measured on the global pool.
#include "tessera/bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "cpu/bench/peak_loops.h"
#include "tessera/cpu.h"
#include "tessera/pool.h"
#include "tessera/threadpool.h"

namespace tessera {
namespace {

volatile float g_sink;  // keeps the peak loops' results alive

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

float peak_scalar(int64_t iters) {
  float acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t it = 0; it < iters; ++it)
    for (float& a : acc) a = a * 0.999f + 1e-7f;
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

struct PeakLoop {
  float (*fn)(int64_t);
  double flops_per_iter;
};

PeakLoop pick(bool bf16) {
  switch (active_isa()) {
    case Isa::kAvx512Bf16:
      if (bf16) return {cpu::bench::peak_avx512bf16, cpu::bench::kFlopsAvx512Bf16};
      return {cpu::bench::peak_avx512, cpu::bench::kFlopsAvx512};
    case Isa::kAvx512: return {cpu::bench::peak_avx512, cpu::bench::kFlopsAvx512};
    case Isa::kAvx2: return {cpu::bench::peak_avx2, cpu::bench::kFlopsAvx2};
    case Isa::kScalar: break;
  }
  return {peak_scalar, cpu::bench::kFlopsScalar};
}

int clamp_threads(int threads) { return std::clamp(threads, 1, ThreadPool::global().num_threads()); }

}  // namespace

double measure_fma_peak_gflops(int threads, bool bf16) {
  const PeakLoop loop = pick(bf16);
  threads = clamp_threads(threads);
  // Calibrate on one thread to about 0.2 s per thread, then run all at once.
  int64_t iters = 1 << 14;
  for (;;) {
    const double t0 = now_s();
    g_sink = loop.fn(iters);
    const double dt = now_s() - t0;
    if (dt > 0.02) {
      iters = static_cast<int64_t>(iters * (0.2 / dt));
      break;
    }
    iters *= 4;
  }
  const double t0 = now_s();
  ThreadPool::global().parallel_for(threads, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) g_sink = loop.fn(iters);
  });
  const double dt = now_s() - t0;
  return loop.flops_per_iter * static_cast<double>(iters) * threads / dt * 1e-9;
}

double measure_copy_bandwidth_gbs(int threads, size_t bytes) {
  threads = clamp_threads(threads);
  bytes = std::max<size_t>(bytes, 4096);
  char* src = static_cast<char*>(host_acquire(bytes));
  char* dst = static_cast<char*>(host_acquire(bytes));
  std::memset(src, 1, bytes);  // pre-touch: page faults are not bandwidth
  std::memset(dst, 0, bytes);
  const size_t slice = (bytes / threads + 63) / 64 * 64;
  auto pass = [&] {
    const double t0 = now_s();
    ThreadPool::global().parallel_for(threads, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const size_t lo = std::min(bytes, i * slice), hi = std::min(bytes, lo + slice);
        std::memcpy(dst + lo, src + lo, hi - lo);
      }
    });
    return now_s() - t0;
  };
  pass();  // warm-up
  const int passes = std::clamp(static_cast<int>((size_t(2) << 30) / bytes), 5, 200);  // ~2 GiB moved in all
  std::vector<double> times(passes);
  for (double& t : times) t = pass();
  host_release(src);
  host_release(dst);
  std::nth_element(times.begin(), times.begin() + passes / 2, times.end());
  return 2.0 * static_cast<double>(bytes) / times[passes / 2] * 1e-9;
}

double measure_read_bandwidth_gbs(int threads, size_t bytes) {
  threads = clamp_threads(threads);
  bytes = std::max<size_t>(bytes, 4096) / 64 * 64;
  float* buf = static_cast<float*>(host_acquire(bytes));
  std::memset(buf, 0, bytes);  // pre-touch
  const int64_t n = static_cast<int64_t>(bytes / sizeof(float));
  const int64_t slice = (n / threads + 15) / 16 * 16;
  const Isa isa = active_isa();
  const bool wide = isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16;
  auto pass = [&] {
    const double t0 = now_s();
    ThreadPool::global().parallel_for(threads, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t lo = std::min(n, t * slice), hi = std::min(n, lo + slice);
        int64_t i = lo;
        float s = 0;
        if (wide) {  // 64-byte loads, as the AVX-512 kernels read
          const int64_t m = (hi - lo) / 64 * 64;
          s += cpu::bench::read_sum_avx512(buf + lo, m);
          i += m;
        }
        // 16-byte vectors (baseline x86-64) in 8 independent sums: enough add
        // chains in flight that the loads, not the add latency, set the pace.
        typedef float v4 __attribute__((vector_size(16)));
        v4 acc[8] = {};
        for (; i + 32 <= hi; i += 32) {
          // Prefetch 4 KiB ahead: with 16-byte loads the out-of-order window
          // alone would keep too few cache lines in flight.
          __builtin_prefetch(buf + i + 1024);
          __builtin_prefetch(buf + i + 1040);
          for (int j = 0; j < 8; ++j) {
            v4 v;
            std::memcpy(&v, buf + i + 4 * j, sizeof v);
            acc[j] += v;
          }
        }
        for (; i < hi; ++i) s += buf[i];
        for (const v4& a : acc) s += a[0] + a[1] + a[2] + a[3];
        g_sink = s;
      }
    });
    return now_s() - t0;
  };
  pass();  // warm-up
  const int passes = std::clamp(static_cast<int>((size_t(2) << 30) / bytes), 5, 200);  // ~2 GiB read in all
  std::vector<double> times(passes);
  for (double& t : times) t = pass();
  host_release(buf);
  std::nth_element(times.begin(), times.begin() + passes / 2, times.end());
  return static_cast<double>(bytes) / times[passes / 2] * 1e-9;
}

}  // namespace tessera
