// Pooled host memory. Blocks are kept on size-class free lists and reused,
// large ones are madvise(MADV_HUGEPAGE)d; nothing is returned to the OS until
// trim() or process exit. Used for tensors the engine allocates (outputs,
// KV caches, packed weights).
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

struct PoolStats {
  uint64_t bytes_in_use = 0;     // handed out and not yet released
  uint64_t bytes_cached = 0;     // on free lists, ready for reuse
  uint64_t allocations = 0;      // acquire() calls
  uint64_t fresh_allocations = 0;  // acquire() calls that had to map new memory
};

void* host_acquire(size_t bytes, size_t* capacity = nullptr);  // 64-byte aligned, throws Error(kOutOfMemory)
void host_release(void* p);
PoolStats host_pool_stats();
void host_pool_trim();

}  // namespace tessera
