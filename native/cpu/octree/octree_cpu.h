// Internals of the octree family: bit tricks for the keys, the parallel radix
// sort, and the CPU implementations behind tessera/octree.h (they may assume
// arguments checked by core/validate_octree.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tessera/octree.h"
#include "tessera/pool.h"

namespace tessera {
// Shared by every backend (core/validate_octree.cpp).
void validate_octree_build(const OctreeBuildArgs& a);
void validate_octree_view(const OctreeView& o, const char* op);
void validate_octree_window(const OctreeWindowArgs& a);
void validate_octree_rows(const RowGatherArgs& a);
void validate_octree_dwconv(const OctreeDwConvArgs& a);
void validate_octree_rpe_bias(const OctreeRpeBiasArgs& a);
}  // namespace tessera

namespace tessera::cpu::octree {

// Spreads the low 16 bits of v to every third bit (bit i -> bit 3i).
inline uint64_t spread3(uint64_t v) {
  v &= 0xffff;
  v = (v | (v << 16)) & 0xff0000ffull;
  v = (v | (v << 8)) & 0x00f00f00f00full;
  v = (v | (v << 4)) & 0x0c30c30c30c3ull;
  v = (v | (v << 2)) & 0x249249249249ull;
  return v;
}
// Inverse of spread3: gathers every third bit (3i -> i).
inline uint32_t compact3(uint64_t v) {
  v &= 0x249249249249ull;
  v = (v ^ (v >> 2)) & 0x0c30c30c30c3ull;
  v = (v ^ (v >> 4)) & 0x00f00f00f00full;
  v = (v ^ (v >> 8)) & 0xff0000ffull;
  v = (v ^ (v >> 16)) & 0xffffull;
  return static_cast<uint32_t>(v);
}
// ocnn's shuffled key: x in bit 3i+2, y in 3i+1, z in 3i.
inline uint64_t xyz_key(uint32_t x, uint32_t y, uint32_t z) {
  return (spread3(x) << 2) | (spread3(y) << 1) | spread3(z);
}
inline int64_t batch_of(int64_t key) { return key >> kOctreeBatchShift; }

// An uninitialised array from the host pool (touched pages are reused from
// call to call instead of faulting in fresh ones), released on destruction.
template <class T>
class Scratch {
 public:
  explicit Scratch(size_t n) : p_(n ? static_cast<T*>(host_acquire(n * sizeof(T))) : nullptr), n_(n) {}
  ~Scratch() { if (p_) host_release(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  size_t size() const { return n_; }

 private:
  T* p_;
  size_t n_;
};

// Stable LSD radix sort of (key, value) pairs on the low `bits` bits of the
// keys, parallel over the thread pool. The passes alternate between
// (*keys, *vals) and (key_tmp, val_tmp); on return *keys/*vals point at the
// sorted data (one of the two). vals_are_iota: the values are 0..n-1 and
// need not be read (nor written beforehand).
void radix_sort_pairs(uint64_t** keys, int32_t** vals, int64_t n, int bits, uint64_t* key_tmp, int32_t* val_tmp,
                      bool vals_are_iota);
// The same on vectors, sorted in place.
void radix_sort_pairs(std::vector<uint64_t>& keys, std::vector<int32_t>& vals, int bits);

// Per-sample node counts of one depth: all nodes and non-empty ones.
void batch_counts(const int64_t* keys, const int32_t* children, int64_t n, int32_t batch_size,
                  std::vector<int64_t>* nnum, std::vector<int64_t>* nnum_nempty);

// Bits needed to hold values 0..v.
inline int bit_length(uint64_t v) {
  int b = 0;
  while (v) { ++b; v >>= 1; }
  return b;
}

Octree build(const OctreeBuildArgs& a, OctreeBuildReport* report);
Octree merge(const std::vector<OctreeView>& parts);
OctreeLevel split(const OctreeLevelView& level, const int32_t* flags, int32_t batch_size);
OctreeLevel grow(const OctreeLevelView& level, int32_t batch_size);
void search_keys(const OctreeLevelView& level, const int64_t* queries, int64_t n, int32_t* out);
std::vector<int32_t> neighbors(const OctreeView& o, const OctreeNeighborArgs& a, int64_t* rows);
std::vector<float> input_features(const OctreeView& o, const std::string& spec, bool nempty, int64_t* rows,
                                  int32_t* channels);
void serialize(const int64_t* keys, int64_t n, int32_t depth, SerialOrder order, int32_t* perm, int32_t* inverse);
OctreeWindowPlan window_plan(const OctreeWindowArgs& a);
void rows(const RowGatherArgs& a);
void dwconv(const OctreeDwConvArgs& a);
void rpe_bias(const OctreeRpeBiasArgs& a);

}  // namespace tessera::cpu::octree
