// Core services: thread pool, pooled memory, CPU features, 16-bit float conversions.
#include <atomic>
#include <thread>
#include <cstring>
#include <vector>

#include "harness.h"
#include "tessera/cpu.h"
#include "tessera/dtype_convert.h"
#include "tessera/pool.h"
#include "tessera/status.h"
#include "tessera/threadpool.h"

using namespace tessera;

TEST(threadpool_covers_every_index_once) {
  auto& pool = ThreadPool::global();
  for (int64_t n : {1, 7, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(n);
    for (auto& h : hits) h = 0;
    pool.parallel_for(n, 13, [&](int64_t b, int64_t e, int tid) {
      CHECK(tid >= 0 && tid < pool.num_threads());
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) CHECK(hits[i] == 1) << "index " << i << " of " << n;
  }
}

TEST(threadpool_propagates_exceptions_and_survives) {
  auto& pool = ThreadPool::global();
  bool caught = false;
  try {
    pool.parallel_for(1000, 1, [&](int64_t b, int64_t, int) {
      if (b == 500) throw Error(Code::kInternal, "boom");
    });
  } catch (const Error& e) {
    caught = std::strcmp(e.what(), "boom") == 0;
  }
  CHECK(caught);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(100, 1, [&](int64_t b, int64_t e, int) { for (int64_t i = b; i < e; ++i) sum += i; });
  CHECK(sum == 4950);
}

TEST(threadpool_nested_calls_run_inline) {
  auto& pool = ThreadPool::global();
  std::atomic<int64_t> count{0};
  pool.parallel_for(8, 1, [&](int64_t, int64_t, int) {
    pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int) { count += e - b; });
  });
  CHECK(count == 80);
}

TEST(host_pool_reuses_blocks) {
  void* a = host_acquire(3 << 20);
  const auto before = host_pool_stats();
  host_release(a);
  void* b = host_acquire(3 << 20);
  const auto after = host_pool_stats();
  CHECK(a == b) << "a released block of the same class must be reused";
  CHECK(after.fresh_allocations == before.fresh_allocations);
  CHECK(reinterpret_cast<uintptr_t>(b) % 64 == 0);
  host_release(b);
}

TEST(cpu_features_are_consistent) {
  const auto& f = cpu_features();
  CHECK(f.physical_cores >= 1 && f.physical_cores <= f.logical_cpus);
  if (f.avx512_bf16) CHECK(f.avx512f);
  if (f.avx2) CHECK(f.avx);
  set_isa_override(Isa::kScalar);
  CHECK(active_isa() == Isa::kScalar);
  clear_isa_override();
}

TEST(bf16_and_f16_round_trip_and_round_to_nearest_even) {
  // bf16: 1 + 2^-8 is a tie between 1 and 1+2^-7: rounds to even (1).
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  // f16: every half value round-trips exactly.
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    if (f32_to_f16(f) != h) ++bad;
  }
  CHECK(bad == 0) << bad << " half values do not round-trip";
  // Ties to even in the normal and subnormal ranges.
  CHECK(f16_to_f32(f32_to_f16(1.0f + std::ldexp(1.0f, -11))) == 1.0f);
  CHECK(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -25))) == 0.0f);          // half of the smallest subnormal
  CHECK(f16_to_f32(f32_to_f16(std::ldexp(3.0f, -25))) == std::ldexp(1.0f, -23));  // 1.5 units -> 2
  CHECK(std::isinf(f16_to_f32(f32_to_f16(70000.f))));
  // Random values agree with the hardware conversion path's definition: nearest half.
  th::Rng rng(1);
  for (int i = 0; i < 10000; ++i) {
    const float x = rng.uniform(-100, 100);
    const float y = f16_to_f32(f32_to_f16(x));
    CHECK(std::fabs(x - y) <= std::fabs(x) * std::ldexp(1.0f, -11) * 1.0001f) << x << " -> " << y;
  }
}

TEST(threadpool_concurrent_callers_never_share_scratch) {
  // Two callers (as two libuv workers would be) run small jobs that execute
  // inline as tid 0. Each writes its id into tid 0's scratch, yields, and
  // checks the value survived: sharing would let the other caller overwrite it.
  auto& pool = ThreadPool::global();
  std::atomic<int> clobbered{0};
  auto caller = [&](int id) {
    for (int it = 0; it < 2000; ++it) {
      pool.parallel_for(1, 1, [&](int64_t, int64_t, int tid) {
        volatile int* s = static_cast<int*>(thread_scratch(tid, 7, 64));
        *s = id;
        for (int spin = 0; spin < 50; ++spin) std::this_thread::yield();
        if (*s != id) ++clobbered;
      });
    }
  };
  std::thread a(caller, 1), b(caller, 2);
  a.join();
  b.join();
  CHECK(clobbered == 0) << clobbered.load() << " jobs saw another caller's scratch";
}
