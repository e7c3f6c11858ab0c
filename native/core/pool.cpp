#include "tessera/pool.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "tessera/status.h"

namespace tessera {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

// Size classes: powers of two up to 1 MiB, then multiples of 2 MiB, so a
// reused block wastes little and large blocks are huge-page aligned.
size_t size_class(size_t bytes) {
  if (bytes < 64) return 64;
  if (bytes <= (size_t(1) << 20)) {
    size_t c = 64;
    while (c < bytes) c <<= 1;
    return c;
  }
  return (bytes + kHuge - 1) / kHuge * kHuge;
}

struct Pool {
  std::mutex m;
  std::map<size_t, std::vector<void*>> free_lists;  // class -> blocks
  std::unordered_map<void*, size_t> live;             // block -> class
  PoolStats stats;

  void* fresh(size_t cls) {
    void* p = nullptr;
    const size_t align = cls >= kHuge ? kHuge : 64;
    if (posix_memalign(&p, align, cls) != 0 || !p)
      throw Error(Code::kOutOfMemory, "host allocation of " + std::to_string(cls) + " bytes failed");
#ifdef MADV_HUGEPAGE
    if (cls >= kHuge) madvise(p, cls, MADV_HUGEPAGE);
#endif
    ++stats.fresh_allocations;
    return p;
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // leaked: blocks may be released during static teardown
  return *p;
}

}  // namespace

void* host_acquire(size_t bytes, size_t* capacity) {
  if (bytes > (size_t(1) << 46))
    throw Error(Code::kOutOfMemory, "host allocation of " + std::to_string(bytes) + " bytes is too large");
  const size_t cls = size_class(bytes);
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.m);
  void* p = nullptr;
  auto it = P.free_lists.find(cls);
  if (it != P.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    P.stats.bytes_cached -= cls;
  } else {
    p = P.fresh(cls);
  }
  P.live[p] = cls;
  P.stats.bytes_in_use += cls;
  ++P.stats.allocations;
  if (capacity) *capacity = cls;
  return p;
}

void host_release(void* p) {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.m);
  auto it = P.live.find(p);
  if (it == P.live.end()) return;  // not ours: ignore rather than corrupt the lists
  const size_t cls = it->second;
  P.live.erase(it);
  P.stats.bytes_in_use -= cls;
  P.stats.bytes_cached += cls;
  P.free_lists[cls].push_back(p);
}

PoolStats host_pool_stats() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.m);
  return P.stats;
}

void host_pool_trim() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.m);
  for (auto& kv : P.free_lists)
    for (void* p : kv.second) std::free(p);
  P.free_lists.clear();
  P.stats.bytes_cached = 0;
}

}  // namespace tessera
